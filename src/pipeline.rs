//! The submission pipeline, in the order a comment goes through it:
//!
//! validate → (a retry gets its first answer) → rate limit → CAPTCHA → classify → decide →
//! store.
//!
//! Cheap checks come first, so invalid or flooding requests cost neither a CAPTCHA lookup nor a
//! classification. Every stage that waits on something outside the process runs against the
//! request's deadline: when storage is slow or down the answer is "unavailable, retry", never a
//! hang, and an acceptance is only answered once storage has the comment.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::captcha::{CaptchaError, CaptchaVerifier};
use crate::classifier::{Explanation, Reason as Feature};
use crate::classify::Classifier;
use crate::comment::{CommentId, Limits, NewComment, RawSubmission, Violation};
use crate::decide::{self, BotRules, BotSignals, Decision, Reason, ReasonCode, Thresholds};
use crate::rate_limit::{RateLimitError, RateLimiter};
use crate::review::Explained;
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
    /// Decision thresholds.
    pub thresholds: Thresholds,
    /// What bot signals do.
    pub bots: BotRules,
    /// Rate-limit stage.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// CAPTCHA stage.
    pub captcha: Arc<dyn CaptchaVerifier>,
    /// Classification stage.
    pub classifier: Arc<dyn Classifier>,
    /// Storage stage.
    pub store: Arc<dyn Store>,
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
        let comment = NewComment::parse(raw, &self.limits).map_err(SubmitError::Invalid)?;
        let fingerprint = comment.fingerprint();

        // A retry of a stored submission gets the first answer: it is not charged again and
        // its (single-use) CAPTCHA is not checked again.
        let key = &comment.idempotency_key;
        if let Some(receipt) =
            within(deadline, "storage", self.store.receipt(key, &fingerprint)).await?
        {
            return Ok(Submitted {
                receipt,
                replayed: true,
            });
        }

        within(
            deadline,
            "the rate limiter",
            self.rate_limiter.admit(&comment, deadline),
        )
        .await?;

        within(
            deadline,
            "the CAPTCHA verifier",
            self.captcha.verify(&comment, deadline),
        )
        .await?;

        let (scores, model_version) = self.classifier.score(&comment);

        let now_ms = jiff::Timestamp::now().as_millisecond();
        let seen = BotSignals {
            honeypot_filled: comment.honeypot_filled,
            // A render time in the future (the portal's clock ahead of ours) tells nothing.
            fill_time: comment
                .form_rendered_at_ms
                .and_then(|rendered| u64::try_from(now_ms - rendered).ok())
                .map(std::time::Duration::from_millis),
        };
        let decision = decide::decide(scores, &self.thresholds, &self.bots, seen);

        let explanation = self.explain(&comment, &decision);
        let receipt = Receipt {
            comment_id: CommentId::new(),
            outcome: decision.outcome,
            spam: scores.spam,
            toxic: scores.toxic,
            reasons: decision
                .rules
                .iter()
                .map(|&rule| reason(rule, explanation.as_ref(), seen, &self.bots))
                .collect(),
            model_version: model_version.to_string(),
        };
        let explained = explanation.map(explained).unwrap_or_default();
        let submission = Submission {
            comment: &comment,
            receipt: &receipt,
            fingerprint: &fingerprint,
            created_at_ms: now_ms,
            explanation: &explained,
        };
        match within(deadline, "storage", self.store.save(submission)).await? {
            Saved::Stored => Ok(Submitted {
                receipt,
                replayed: false,
            }),
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

    /// The features that weighed most in a decision. Explaining is ten times the cost of
    /// scoring, so it is done only when a classifier rule fired.
    fn explain(&self, comment: &NewComment, decision: &Decision) -> Option<Explanation> {
        let classified = decision.rules.iter().any(|r| {
            matches!(
                r,
                ReasonCode::SpamCertain | ReasonCode::SpamLikely | ReasonCode::ToxicLikely
            )
        });
        classified.then(|| self.classifier.explain(comment))
    }
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
fn reason(rule: ReasonCode, e: Option<&Explanation>, seen: BotSignals, bots: &BotRules) -> Reason {
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
        (_, None) => String::new(),
    };
    Reason {
        code: rule.as_str().to_owned(),
        message,
    }
}
