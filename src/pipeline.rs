//! The submission pipeline, in the order a comment goes through it:
//!
//! validate → (a retry gets its first answer) → block and allow lists → rate limit → CAPTCHA
//! → classify → decide → store.
//!
//! Cheap checks come first, so invalid or flooding requests cost neither a CAPTCHA lookup nor a
//! classification. Ops' runtime settings are read once per request ([`Live::snapshot`]): the
//! thresholds, the lists, and which stages run in shadow mode (they record and count what they
//! would do and let the comment through as if they were off). Every stage that waits on something outside the process runs against the
//! request's deadline: when storage is slow or down the answer is "unavailable, retry", never a
//! hang, and an acceptance is only answered once storage has the comment.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::captcha::{CaptchaError, CaptchaVerifier};
use crate::classifier::{Explanation, Reason as Feature};
use crate::classify::Classifier;
use crate::comment::{CommentId, Limits, NewComment, RawSubmission, Violation};
use crate::decide::{self, BotRules, BotSignals, Decision, Outcome, Reason, ReasonCode};
use crate::metrics::{Metrics, Stage};
use crate::rate_limit::{RateLimitError, RateLimiter};
use crate::review::Explained;
use crate::settings::live::Live;
use crate::store::{Receipt, Saved, Store, StoreError, StoredComment, Submission};

/// Why a submission got no decision. The gRPC layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The submission is invalid; every violation is listed.
    #[error("invalid submission ({} violations)", .0.len())]
    Invalid(Vec<Violation>),
    /// The idempotency key was used for a different comment.
    #[error("the idempotency key was already used for a different comment")]
    KeyReused,
    /// A rate limit refused the comment.
    #[error(transparent)]
    RateLimited(#[from] RateLimitError),
    /// The CAPTCHA answer was refused.
    #[error(transparent)]
    Captcha(#[from] CaptchaError),
    /// Storage did not answer in time or at all.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or broken data; details are logged, not sent.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => SubmitError::Unavailable(why),
            StoreError::KeyReused => SubmitError::KeyReused,
            StoreError::Corrupt(why) => SubmitError::Unexpected(anyhow::anyhow!(why)),
        }
    }
}

/// The answer to a submission.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    /// What was decided.
    pub receipt: Receipt,
    /// True when this repeats the first answer for a retried idempotency key.
    pub replayed: bool,
}

/// The stages, wired.
#[derive(Clone)]
pub struct Pipeline {
    /// Field limits.
    pub limits: Limits,
    /// What bot signals do.
    pub bots: BotRules,
    /// Ops' runtime settings: thresholds, lists, shadow switches.
    pub live: Arc<Live>,
    /// Rate-limit stage.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// CAPTCHA stage.
    pub captcha: Arc<dyn CaptchaVerifier>,
    /// Classification stage.
    pub classifier: Arc<dyn Classifier>,
    /// Storage stage.
    pub store: Arc<dyn Store>,
    /// What is counted and timed.
    pub metrics: Arc<Metrics>,
}

/// Runs `stage`, failing with [`SubmitError::Unavailable`] if it has not finished by
/// `deadline`.
async fn within<T, E>(
    deadline: Instant,
    what: &str,
    stage: impl Future<Output = Result<T, E>>,
) -> Result<T, SubmitError>
where
    SubmitError: From<E>,
{
    match tokio::time::timeout_at(deadline.into(), stage).await {
        Ok(result) => result.map_err(SubmitError::from),
        Err(_) => Err(SubmitError::Unavailable(format!(
            "{what} did not answer before the deadline"
        ))),
    }
}

impl Pipeline {
    /// Takes a comment through every stage; `deadline` bounds all waiting.
    pub async fn submit(
        &self,
        raw: &RawSubmission,
        deadline: Instant,
    ) -> Result<Submitted, SubmitError> {
        let m = &self.metrics;
        // The clock is read once, on arrival: validation (a render time ahead of it), the
        // time the form was open and the comment's creation time all use it.
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let comment = m
            .time(Stage::Validate, || {
                NewComment::parse_at(raw, &self.limits, now_ms)
            })
            .map_err(SubmitError::Invalid)?;
        let fingerprint = comment.fingerprint();

        // A retry of a stored submission gets the first answer: it is not charged again and
        // its (single-use) CAPTCHA is not checked again.
        let key = &comment.idempotency_key;
        let started = Instant::now();
        let replay = within(deadline, "storage", self.store.receipt(key, &fingerprint)).await?;
        m.stage(Stage::Replay, started.elapsed());
        if let Some(receipt) = replay {
            return Ok(Submitted {
                receipt,
                replayed: true,
            });
        }

        let live = self.live.snapshot();
        let settings = &live.effective.tunables;
        let listing = m.time(Stage::Lists, || live.lists.check(&comment));
        // Shadow findings, counted with the comment's outcome for the statistics.
        let mut tallies: Vec<&str> = Vec::new();

        // The newsroom's addresses skip rate limits and the CAPTCHA.
        if !listing.allowed_ip {
            let started = Instant::now();
            within(
                deadline,
                "the rate limiter",
                self.rate_limiter.admit(&comment, deadline),
            )
            .await?;
            m.stage(Stage::RateLimit, started.elapsed());
        }

        // A blocked comment is rejected whatever its CAPTCHA says.
        if !listing.allowed_ip && listing.blocked.is_none() {
            let started = Instant::now();
            let verified = within(
                deadline,
                "the CAPTCHA verifier",
                self.captcha.verify(&comment, deadline),
            )
            .await;
            m.stage(Stage::Captcha, started.elapsed());
            match verified {
                Ok(()) => {}
                // In shadow the stage never stops a comment: a verifier that cannot answer
                // counts as an outage, a refusal as what would have been refused.
                Err(
                    SubmitError::Unavailable(_)
                    | SubmitError::Captcha(CaptchaError::Unavailable(_)),
                ) if settings.captcha_shadow => {
                    m.shadow("captcha", "unavailable");
                    tallies.push("shadow_captcha_unavailable");
                }
                Err(SubmitError::Captcha(e)) if settings.captcha_shadow => {
                    m.captcha_refused(e.reason(), true);
                    m.shadow("captcha", e.reason());
                    tallies.push("shadow_captcha_refused");
                }
                Err(e) => {
                    if let SubmitError::Captcha(c) = &e {
                        m.captcha_refused(c.reason(), false);
                    }
                    return Err(e);
                }
            }
        }

        // A blocked comment is not scored: the block is the reason.
        let scored = listing
            .blocked
            .is_none()
            .then(|| m.time(Stage::Classify, || self.classifier.score(&comment)));

        let seen = BotSignals {
            honeypot_filled: comment.honeypot_filled,
            // A render time in the future (the portal's clock ahead of ours) tells nothing.
            fill_time: comment
                .form_rendered_at_ms
                .and_then(|rendered| u64::try_from(now_ms - rendered).ok())
                .map(std::time::Duration::from_millis),
        };
        let decide = |scores, thresholds| {
            decide::decide_live(
                scores,
                thresholds,
                &self.bots,
                seen,
                listing.blocked.as_ref().map(|b| b.0),
                settings.decision_shadow,
            )
        };
        let decision = decide(scored.as_ref().map(|s| s.scores), &settings.thresholds);
        if let Some(would) = decision.shadow {
            m.shadow("decision", would.as_str());
            tallies.push(match would {
                Outcome::Accepted => "shadow_decision_accepted",
                Outcome::PendingReview => "shadow_decision_pending_review",
                Outcome::Rejected => "shadow_decision_rejected",
            });
        }
        // A candidate model is judged by the decision it would lead to.
        if let Some((candidate_scores, candidate)) = scored.as_ref().and_then(|s| s.shadow.clone())
        {
            let thresholds = live
                .candidate_thresholds
                .as_ref()
                .unwrap_or(&settings.thresholds);
            let theirs = decide(Some(candidate_scores), thresholds);
            let agrees = theirs.outcome == decision.outcome && theirs.shadow == decision.shadow;
            m.model_shadow(&candidate, agrees);
            tallies.push(if agrees {
                "model_shadow_same"
            } else {
                "model_shadow_different"
            });
        }

        let explanation = match &scored {
            Some(s) if classifier_ruled(&decision) => {
                Some(m.time(Stage::Explain, || s.explain(&comment)))
            }
            _ => None,
        };
        let receipt = Receipt {
            comment_id: CommentId::new(),
            outcome: decision.outcome,
            spam: scored.as_ref().map_or(0.0, |s| s.scores.spam),
            toxic: scored.as_ref().map_or(0.0, |s| s.scores.toxic),
            reasons: decision
                .rules
                .iter()
                .map(|&rule| {
                    let block = listing.blocked.as_ref().map(|b| b.1.as_str());
                    reason(rule, explanation.as_ref(), seen, &self.bots, block)
                })
                .collect(),
            model_version: scored
                .as_ref()
                .map_or(String::new(), |s| s.version.to_string()),
        };
        let explained = explanation.map(explained).unwrap_or_default();
        let submission = Submission {
            comment: &comment,
            receipt: &receipt,
            fingerprint: &fingerprint,
            created_at_ms: now_ms,
            explanation: &explained,
            tallies: &tallies,
        };
        let started = Instant::now();
        let saved = within(deadline, "storage", self.store.save(submission)).await?;
        m.stage(Stage::Store, started.elapsed());
        match saved {
            Saved::Stored => {
                m.comment(
                    receipt.outcome.as_str(),
                    scored.as_ref().map(|s| s.scores.spam),
                    scored.as_ref().map(|s| s.scores.toxic),
                );
                Ok(Submitted {
                    receipt,
                    replayed: false,
                })
            }
            Saved::Replayed(first) => Ok(Submitted {
                receipt: first,
                replayed: true,
            }),
        }
    }

    /// Reads a stored comment.
    pub async fn comment(
        &self,
        id: CommentId,
        deadline: Instant,
    ) -> Result<Option<StoredComment>, SubmitError> {
        within(deadline, "storage", self.store.comment(id)).await
    }
}

/// Whether a classifier rule weighed in the decision: explaining is ten times the cost of
/// scoring, so only then are reasons explained.
fn classifier_ruled(decision: &Decision) -> bool {
    decision.rules.iter().any(|r| {
        matches!(
            r,
            ReasonCode::SpamCertain | ReasonCode::SpamLikely | ReasonCode::ToxicLikely
        )
    })
}

/// An explanation flattened for storage: both heads' top features, kept for moderators.
fn explained(e: Explanation) -> Vec<Explained> {
    let head = |name: &str, features: Vec<Feature>| {
        features.into_iter().map({
            let name = name.to_owned();
            move |f| Explained {
                head: name.clone(),
                feature: f.feature,
                weight: f.weight,
            }
        })
    };
    head("spam", e.spam).chain(head("toxic", e.toxic)).collect()
}

/// One rule as a reason: its code and a readable message ("spam score 0.93: 1 phone number,
/// link to bit.ly").
fn reason(
    rule: ReasonCode,
    e: Option<&Explanation>,
    seen: BotSignals,
    bots: &BotRules,
    block: Option<&str>,
) -> Reason {
    let message = |what: &str, score: f32, features: &[Feature]| {
        let named: Vec<&str> = features.iter().map(|f| f.feature.as_str()).collect();
        if named.is_empty() {
            format!("{what} score {score:.2}")
        } else {
            format!("{what} score {score:.2}: {}", named.join(", "))
        }
    };
    let message = match (rule, e) {
        (ReasonCode::SpamCertain | ReasonCode::SpamLikely, Some(e)) => {
            message("spam", e.scores.spam, &e.spam)
        }
        (ReasonCode::ToxicLikely, Some(e)) => message("toxic", e.scores.toxic, &e.toxic),
        (ReasonCode::BotHoneypot, _) => "the hidden form field was filled in".to_owned(),
        (ReasonCode::BotTooFast, _) => format!(
            "the form was sent {:.1} s after it was shown (a person needs {:.0} s)",
            seen.fill_time.unwrap_or_default().as_secs_f32(),
            bots.min_fill_time.as_secs_f32()
        ),
        (
            ReasonCode::BlockedWord
            | ReasonCode::BlockedLink
            | ReasonCode::BlockedIp
            | ReasonCode::BlockedEmail,
            _,
        ) => block.unwrap_or_default().to_owned(),
        (_, None) => String::new(),
    };
    Reason {
        code: rule.as_str().to_owned(),
        message,
    }
}
