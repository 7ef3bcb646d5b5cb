//! The submission pipeline, in the order a comment goes through it ([`Pipeline::submit`]):
//!
//! validate → admit (block and allow lists, the rate limiter's flood gate, the CAPTCHA's
//! in-process checks) → score → decide → store (one atomic call of the submissions' store: a
//! retry gets its first answer, the rate-limit cells are charged, the CAPTCHA answer claimed
//! and the comment stored, or nothing at all).
//!
//! Cheap checks come first, so invalid or flooding requests cost neither storage nor a
//! classification; a submission then costs one storage round trip. Scoring comes before the
//! retry check, which a retry pays for (~20 µs), far less than a second round trip would cost
//! every submission. Two things still answer from storage first: a hosted CAPTCHA provider
//! (asked over HTTP, and it accepts a token once) and a rate limiter with counters of its own
//! (so a retry is not charged twice); and a refusal found before storage is checked against
//! storage, so a retry of a stored submission still gets its first answer.
//!
//! Ops' runtime settings are read once per request ([`Live::snapshot`]): the thresholds, the
//! lists, and which stages run in shadow mode (they record and count what they would do and let
//! the comment through as if they were off; [`Shadow`] collects what they found). Every stage
//! that waits on something outside the process runs against the request's deadline: when
//! storage is slow or down the answer is "unavailable, retry", never a hang, and an acceptance
//! is only answered once storage has the comment.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::captcha::store::Claim;
use crate::captcha::{CaptchaError, CaptchaVerifier, Checked};
use crate::classifier::{Explanation, Reason as Feature};
use crate::classify::{Classifier, Scored};
use crate::comment::{CommentId, Limits, NewComment, RawSubmission, Violation};
use crate::decide::{self, BotRules, BotSignals, Decision, Outcome, Reason, ReasonCode};
use crate::metrics::{Metrics, Stage};
use crate::rate_limit::cluster::Cell;
use crate::rate_limit::{Admit, RateLimitError, RateLimiter};
use crate::review::Explained;
use crate::settings::lists::Listing;
use crate::settings::live::{Live, Snapshot};
use crate::store::{Admission, Admitted, Receipt, Store, StoreError, StoredComment, Submission};

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
    /// The article is closed to comments.
    #[error("comments on this article are closed")]
    ArticleClosed,
    /// The reader is banned or suspended.
    #[error("the reader is {}", .0.standing.as_str())]
    Reader(crate::readers::Refusal),
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
    /// How readers are known.
    pub keyring: Arc<crate::readers::Keyring>,
    /// Readers' comments (to find a reader's first one).
    pub readers: Arc<dyn crate::readers::ReaderStore>,
    /// Where rejections are announced (automatic pre-moderation).
    pub rejections: crate::readers::desk::Rejections,
    /// Recent texts, for near copies across readers.
    pub campaigns: Arc<crate::campaigns::Detector>,
    /// Where earlier copies of a campaign are sent to be flagged.
    pub flags: crate::campaigns::Flags,
    /// What is counted and timed.
    pub metrics: Arc<Metrics>,
    /// The inputs of the latest decisions (operators' what-if).
    pub recent: Arc<crate::traffic::Recent>,
    /// Where a held comment is announced to moderators' live views.
    pub events: crate::review::Events,
    /// Where webhooks are told what became of each comment.
    pub notifier: crate::webhooks::Notifier,
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

/// What stages in shadow mode found for one submission, counted once it is stored: in the
/// statistics with the comment's outcome (by the store), and in the metrics (a retry answered
/// from storage, or a refusal, counts nothing again).
#[derive(Debug, Default)]
struct Shadow {
    /// Names counted in the statistics.
    tallies: Vec<&'static str>,
    /// (stage, what it would have done).
    would: Vec<(&'static str, &'static str)>,
    /// CAPTCHA refusals only counted.
    captcha_refusals: Vec<&'static str>,
    /// The candidate model, and whether its decision agreed.
    candidate: Option<(String, bool)>,
}

impl Shadow {
    /// Notes that `stage` would have done `would`, counted in the statistics as `tally`.
    fn note(&mut self, stage: &'static str, would: &'static str, tally: &'static str) {
        self.would.push((stage, would));
        self.tallies.push(tally);
    }

    /// Counts the findings in the metrics.
    fn count(&self, m: &Metrics) {
        for &(stage, would) in &self.would {
            m.shadow(stage, would);
        }
        for reason in &self.captcha_refusals {
            m.captcha_refused(reason, true);
        }
        if let Some((candidate, agrees)) = &self.candidate {
            m.model_shadow(candidate, *agrees);
        }
    }
}

/// What the storage step must check and charge with the submission (see [`Admission`]).
#[derive(Debug, Default)]
struct Pending {
    cells: Vec<Cell>,
    claim: Option<Claim>,
    claim_shadow: bool,
}

impl Pending {
    fn admission(&self) -> Admission<'_> {
        Admission {
            cells: &self.cells,
            claim: self.claim.as_ref(),
            claim_shadow: self.claim_shadow,
        }
    }
}

/// How admission ended before storage.
enum Admitting {
    /// A retry of a stored submission, answered from storage before a remote check.
    Replayed(Receipt),
    /// What remains for the storage step.
    Pending(Pending),
}

/// Who sent a submission, when, what their standing does to it, and whether its text is a
/// near copy of recent ones.
#[derive(Clone, Debug)]
struct Standing {
    at_ms: i64,
    id: CommentId,
    reader: crate::readers::ReaderId,
    effect: crate::readers::Effect,
    first_comment: bool,
    found: crate::campaigns::Found,
}

/// A scored and decided submission, ready to store.
struct Decided {
    reader: crate::readers::ReaderId,
    found: crate::campaigns::Found,
    receipt: Receipt,
    explained: Vec<Explained>,
    scored: Option<Scored>,
    sample: crate::traffic::Sample,
}

impl Pipeline {
    /// Takes a comment through every stage; `deadline` bounds all waiting.
    pub async fn submit(
        &self,
        raw: &RawSubmission,
        deadline: Instant,
    ) -> Result<Submitted, SubmitError> {
        // The clock is read once, on arrival: validation (a render time ahead of it), the
        // time the form was open and the comment's creation time all use it.
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let comment = self.validate(raw, now_ms)?;
        let live = self.live.snapshot();
        if live.articles.closed(comment.article_id.as_str()) {
            return self
                .unless_stored(&comment, SubmitError::ArticleClosed, deadline)
                .await;
        }
        let reader = self.reader(&comment, deadline).await?;
        let readers = &live.effective.tunables.readers;
        if let Some(refused) = readers.directory.refusal(&reader, now_ms) {
            let refused = SubmitError::Reader(refused);
            return self.unless_stored(&comment, refused, deadline).await;
        }
        if let Some(parent) = comment.parent_id {
            self.check_parent(&comment, parent, deadline).await?;
        }
        let listing = self
            .metrics
            .time(Stage::Lists, || live.lists.check(&comment));
        let mut shadow = Shadow::default();
        let pending = match self
            .admit(&comment, &listing, &live, &mut shadow, deadline)
            .await
        {
            Ok(Admitting::Pending(pending)) => pending,
            Ok(Admitting::Replayed(first)) => return Ok(replayed(first)),
            Err(refused) => return self.unless_stored(&comment, refused, deadline).await,
        };
        // A comment whose CAPTCHA answer is refused is not stored: it is not worth scoring.
        let worth_scoring =
            listing.blocked.is_none() && !matches!(pending.claim, Some(Claim::Refused(_)));
        let scored = worth_scoring.then(|| self.score(&comment));
        let id = CommentId::new();
        let copies = live.effective.tunables.campaign_copies;
        let found = match worth_scoring {
            true => self.metrics.time(Stage::Campaigns, || {
                let key = comment.idempotency_key.as_str();
                let text = comment.body.as_str();
                self.campaigns.check(text, &reader, key, id, copies, now_ms)
            }),
            false => crate::campaigns::Found::default(),
        };
        let effect = readers.directory.effect(&reader, now_ms);
        let standing = Standing {
            at_ms: now_ms,
            id,
            reader,
            effect,
            first_comment: self
                .first_comment(&reader, effect, readers, deadline)
                .await?,
            found,
        };
        let decided = self.decide(&comment, &listing, &live, &mut shadow, scored, standing);
        self.store(&comment, &pending, decided, &shadow, now_ms, deadline)
            .await
    }

    /// The comment's reader. Their key is read from storage once (at start, or by the first
    /// submission that needs it if storage did not answer then).
    async fn reader(
        &self,
        comment: &NewComment,
        deadline: Instant,
    ) -> Result<crate::readers::ReaderId, SubmitError> {
        if self.keyring.get().is_none() {
            let load = self.keyring.load(self.readers.as_ref());
            within(deadline, "storage", load).await?;
        }
        let key = self.keyring.get().ok_or_else(|| {
            SubmitError::Unavailable("the readers' key is not read from storage yet".into())
        })?;
        Ok(key.id(comment.author_email.as_str()))
    }

    /// Whether this is the reader's first comment, when ops hold first comments (the one
    /// storage read that costs, and only then; a trusted reader's is not held).
    async fn first_comment(
        &self,
        reader: &crate::readers::ReaderId,
        effect: crate::readers::Effect,
        readers: &crate::readers::ReaderTunables,
        deadline: Instant,
    ) -> Result<bool, SubmitError> {
        if !readers.hold_first_comment || effect == crate::readers::Effect::Trusted {
            return Ok(false);
        }
        let latest = within(deadline, "storage", self.readers.reader_comments(reader, 1)).await?;
        Ok(latest.is_empty())
    }

    /// Reads a stored comment.
    pub async fn comment(
        &self,
        id: CommentId,
        deadline: Instant,
    ) -> Result<Option<StoredComment>, SubmitError> {
        within(deadline, "storage", self.store.comment(id)).await
    }

    fn validate(&self, raw: &RawSubmission, now_ms: i64) -> Result<NewComment, SubmitError> {
        self.metrics
            .time(Stage::Validate, || {
                NewComment::parse_at(raw, &self.limits, now_ms)
            })
            .map_err(SubmitError::Invalid)
    }

    /// A reply must answer a stored comment under the same article. This costs replies (and
    /// only them) one more storage read; a reply to nothing would otherwise be published
    /// under no comment the portal can show.
    async fn check_parent(
        &self,
        comment: &NewComment,
        parent: CommentId,
        deadline: Instant,
    ) -> Result<(), SubmitError> {
        let stored = within(deadline, "storage", self.store.comment(parent)).await?;
        let refused = |description: &str| {
            SubmitError::Invalid(vec![Violation::new("parent_id", description.to_owned())])
        };
        match stored {
            None => Err(refused("is not a stored comment")),
            Some(p) if p.article_id != comment.article_id.as_str() => {
                Err(refused("is a comment under another article"))
            }
            Some(_) => Ok(()),
        }
    }

    /// The rate limiter and the CAPTCHA, as far as they go before storage. The newsroom's
    /// addresses skip both; a blocked comment skips the CAPTCHA (it is rejected whatever its
    /// answer).
    async fn admit(
        &self,
        comment: &NewComment,
        listing: &Listing,
        live: &Snapshot,
        shadow: &mut Shadow,
        deadline: Instant,
    ) -> Result<Admitting, SubmitError> {
        let checks_captcha = !listing.allowed_ip && listing.blocked.is_none();
        let remote = checks_captcha && self.captcha.remote(comment);
        if (remote || (!listing.allowed_ip && self.rate_limiter.charges_separately()))
            && let Some(first) = self.replay(comment, deadline).await?
        {
            return Ok(Admitting::Replayed(first));
        }
        let mut pending = Pending::default();
        if !listing.allowed_ip {
            let started = Instant::now();
            let admit = self.rate_limiter.admit(comment, deadline);
            if let Admit::Charge(cells) = within(deadline, "the rate limiter", admit).await? {
                pending.cells = cells;
            }
            self.metrics.stage(Stage::RateLimit, started.elapsed());
        }
        if checks_captcha {
            let in_shadow = live.effective.tunables.captcha_shadow;
            pending.claim_shadow = in_shadow;
            pending.claim = self
                .check_captcha(comment, in_shadow, shadow, deadline)
                .await?;
        }
        Ok(Admitting::Pending(pending))
    }

    /// The first answer to this submission's idempotency key, if it was stored.
    async fn replay(
        &self,
        comment: &NewComment,
        deadline: Instant,
    ) -> Result<Option<Receipt>, SubmitError> {
        let started = Instant::now();
        let key = &comment.idempotency_key;
        let fingerprint = comment.fingerprint();
        let first = within(deadline, "storage", self.store.receipt(key, &fingerprint)).await;
        self.metrics.stage(Stage::Replay, started.elapsed());
        first
    }

    /// A refusal found before storage (the flood gate's), unless the submission is a retry of a
    /// stored one: then its first answer.
    async fn unless_stored(
        &self,
        comment: &NewComment,
        refused: SubmitError,
        deadline: Instant,
    ) -> Result<Submitted, SubmitError> {
        if !matches!(
            refused,
            SubmitError::RateLimited(_) | SubmitError::ArticleClosed | SubmitError::Reader(_)
        ) {
            return Err(refused);
        }
        match self.replay(comment, deadline).await {
            Ok(Some(first)) => Ok(replayed(first)),
            Err(SubmitError::KeyReused) => Err(SubmitError::KeyReused),
            // Storage's trouble does not hide the refusal.
            Ok(None) | Err(_) => Err(refused),
        }
    }

    /// The CAPTCHA's in-process checks: the claim to make with the submission (a refusal is a
    /// claim refused in advance, made by the storage step as every refusal is), or a verifier
    /// that cannot answer. In shadow the stage never stops a comment: a verifier that cannot
    /// answer counts as an outage, a refusal as what would have been refused.
    async fn check_captcha(
        &self,
        comment: &NewComment,
        in_shadow: bool,
        shadow: &mut Shadow,
        deadline: Instant,
    ) -> Result<Option<Claim>, SubmitError> {
        let m = &self.metrics;
        let started = Instant::now();
        let verify = self.captcha.verify(comment, deadline);
        let checked = within(deadline, "the CAPTCHA verifier", verify).await;
        m.stage(Stage::Captcha, started.elapsed());
        match checked {
            Ok(Checked::Passed) => Ok(None),
            Ok(Checked::Claim(claim)) => Ok(Some(claim)),
            Err(
                SubmitError::Unavailable(_) | SubmitError::Captcha(CaptchaError::Unavailable(_)),
            ) if in_shadow => {
                shadow.note("captcha", "unavailable", "shadow_captcha_unavailable");
                Ok(None)
            }
            Err(SubmitError::Captcha(e)) if in_shadow => {
                shadow.captcha_refusals.push(e.reason());
                shadow.note("captcha", e.reason(), "shadow_captcha_refused");
                Ok(None)
            }
            // Refused, but by the storage step: after the retry check and the charge.
            Err(SubmitError::Captcha(e)) => Ok(Some(Claim::Refused(e))),
            Err(e) => Err(e),
        }
    }

    /// Both heads' scores (and a candidate model's, in shadow).
    fn score(&self, comment: &NewComment) -> Scored {
        self.metrics
            .time(Stage::Classify, || self.classifier.score(comment))
    }

    /// Decides on the scores (`None`: a blocked comment, or one whose CAPTCHA answer is
    /// refused) and writes the answer; a candidate model in shadow is judged by the decision it
    /// would lead to.
    fn decide(
        &self,
        comment: &NewComment,
        listing: &Listing,
        live: &Snapshot,
        shadow: &mut Shadow,
        scored: Option<Scored>,
        standing: Standing,
    ) -> Decided {
        let now_ms = standing.at_ms;
        let m = &self.metrics;
        let settings = &live.effective.tunables;
        let seen = BotSignals {
            honeypot_filled: comment.honeypot_filled,
            // A render time in the future (the portal's clock ahead of ours) tells nothing.
            fill_time: comment
                .form_rendered_at_ms
                .and_then(|rendered| u64::try_from(now_ms - rendered).ok())
                .map(std::time::Duration::from_millis),
        };
        let block = listing.blocked.as_ref();
        let premoderation = live
            .articles
            .premoderation(comment.article_id.as_str(), now_ms);
        let seen_all = decide::Seen {
            bots: seen,
            premoderated: premoderation.is_some(),
            reader: standing.effect,
            first_comment: standing.first_comment,
            duplicate: standing.found.duplicate,
        };
        let decide = |scores, thresholds| {
            decide::decide_with(
                scores,
                thresholds,
                &self.bots,
                seen_all,
                block.map(|b| b.0),
                settings.decision_shadow,
            )
        };
        let decision = decide(scored.as_ref().map(|s| s.scores), &settings.thresholds);
        if let Some(would) = decision.shadow {
            let tally = match would {
                Outcome::Accepted => "shadow_decision_accepted",
                Outcome::PendingReview => "shadow_decision_pending_review",
                Outcome::Rejected => "shadow_decision_rejected",
            };
            shadow.note("decision", would.as_str(), tally);
        }
        if let Some((candidate_scores, candidate)) = scored.as_ref().and_then(|s| s.shadow.clone())
        {
            let thresholds = live
                .candidate_thresholds
                .as_ref()
                .unwrap_or(&settings.thresholds);
            let theirs = decide(Some(candidate_scores), thresholds);
            let agrees = theirs.outcome == decision.outcome && theirs.shadow == decision.shadow;
            shadow.candidate = Some((candidate.to_string(), agrees));
            shadow.tallies.push(if agrees {
                "model_shadow_same"
            } else {
                "model_shadow_different"
            });
        }
        let explanation = match &scored {
            Some(s) if classifier_ruled(&decision) => {
                Some(m.time(Stage::Explain, || s.explain(comment)))
            }
            _ => None,
        };
        let receipt = Receipt {
            comment_id: standing.id,
            outcome: decision.outcome,
            spam: scored.as_ref().map_or(0.0, |s| s.scores.spam),
            toxic: scored.as_ref().map_or(0.0, |s| s.scores.toxic),
            reasons: decision
                .rules
                .iter()
                .map(|&rule| match rule {
                    ReasonCode::Premoderated => Reason {
                        code: rule.as_str().to_owned(),
                        message: premoderated_because(premoderation, &settings.articles),
                    },
                    ReasonCode::DuplicateCampaign => Reason {
                        code: rule.as_str().to_owned(),
                        message: format!(
                            "the same text came from {} readers within the campaign window",
                            standing.found.copies
                        ),
                    },
                    ReasonCode::ReaderPremoderated => Reason {
                        code: rule.as_str().to_owned(),
                        message: settings
                            .readers
                            .directory
                            .get(&standing.reader)
                            .map(|s| format!("the reader is pre-moderated: {s}"))
                            .unwrap_or_default(),
                    },
                    _ => {
                        let block = block.map(|b| b.1.as_str());
                        reason(rule, explanation.as_ref(), seen, &self.bots, block)
                    }
                })
                .collect(),
            model_version: scored
                .as_ref()
                .map_or(String::new(), |s| s.version.to_string()),
        };
        let sample = crate::traffic::Sample {
            scores: scored.as_ref().map(|s| s.scores),
            seen: seen_all,
            blocked: block.map(|b| b.0),
        };
        Decided {
            reader: standing.reader,
            found: standing.found,
            receipt,
            explained: explanation.map(explained).unwrap_or_default(),
            scored,
            sample,
        }
    }

    /// The storage step: one atomic call that answers a retry, charges the cells, claims the
    /// CAPTCHA and stores the comment; then what it found is counted and answered.
    async fn store(
        &self,
        comment: &NewComment,
        pending: &Pending,
        decided: Decided,
        shadow: &Shadow,
        now_ms: i64,
        deadline: Instant,
    ) -> Result<Submitted, SubmitError> {
        let m = &self.metrics;
        let fingerprint = comment.fingerprint();
        let note = self.campaigns.note(
            &decided.found,
            &decided.reader,
            decided.receipt.comment_id,
            now_ms,
        );
        let submission = Submission {
            comment,
            reader: &decided.reader,
            receipt: &decided.receipt,
            fingerprint: &fingerprint,
            created_at_ms: now_ms,
            explanation: &decided.explained,
            tallies: &shadow.tallies,
            shared: note.as_deref(),
        };
        let started = Instant::now();
        let submit = self.store.submit(pending.admission(), submission);
        let admitted = within(deadline, "storage", submit).await?;
        m.stage(Stage::Store, started.elapsed());
        let (charged, claimed) = match admitted {
            Admitted::Replayed(first) => return Ok(replayed(first)),
            Admitted::Limited(charged) => (Some(charged), None),
            Admitted::Refused { charged, claimed } => (charged, Some(claimed)),
            Admitted::Stored { charged, claimed } => {
                self.settle(pending, charged, claimed, true)?;
                shadow.count(m);
                let scores = decided.scored.as_ref().map(|s| s.scores);
                m.comment(
                    decided.receipt.outcome.as_str(),
                    scores.map(|s| s.spam),
                    scores.map(|s| s.toxic),
                );
                self.recent.record(decided.sample);
                if decided.receipt.outcome == Outcome::Rejected {
                    self.rejections.rejected_id(decided.reader);
                }
                self.flags.flag(decided.found.earlier, decided.found.copies);
                if decided.receipt.outcome == Outcome::PendingReview {
                    self.events.send(crate::review::QueueEvent::Held {
                        id: decided.receipt.comment_id.to_string(),
                    });
                }
                self.notify(comment, &decided.receipt, now_ms);
                return Ok(Submitted {
                    receipt: decided.receipt,
                    replayed: false,
                });
            }
        };
        self.settle(pending, charged, claimed, false)?;
        Err(SubmitError::Unexpected(anyhow::anyhow!(
            "the store refused a submission without saying why"
        )))
    }

    /// Tells the webhooks that want it what became of a stored comment (never its reader's
    /// e-mail or IP address).
    fn notify(&self, comment: &NewComment, receipt: &Receipt, now_ms: i64) {
        use crate::webhooks::{EventType, Notice};
        let kind = match receipt.outcome {
            Outcome::Accepted => EventType::Published,
            Outcome::PendingReview => EventType::Held,
            Outcome::Rejected => EventType::Rejected,
        };
        if !self.notifier.wants(kind) {
            return;
        }
        let data = serde_json::json!({
            "comment_id": receipt.comment_id.to_string(),
            "article_id": comment.article_id.as_str(),
            "parent_id": comment.parent_id.map(|p| p.to_string()),
            "author_name": comment.author_name.as_str(),
            "body": comment.body.as_str(),
            "state": receipt.outcome.as_str(),
            "spam": short(receipt.spam),
            "toxic": short(receipt.toxic),
            "reasons": receipt.reasons,
            "created_at_ms": now_ms,
        });
        self.notifier.notify(Notice { kind, data });
    }

    /// Counts what the storage step found for the cells and the claim; a refusal is the
    /// error. A claim refused for a comment that was stored anyway (`stored`) is the CAPTCHA's
    /// shadow finding, counted in the statistics by the store.
    fn settle(
        &self,
        pending: &Pending,
        charged: Option<crate::rate_limit::cluster::Charged>,
        claimed: Option<crate::captcha::store::Claimed>,
        stored: bool,
    ) -> Result<(), SubmitError> {
        if let Some(charged) = charged {
            self.rate_limiter.settle(&pending.cells, charged)?;
        }
        let (Some(claim), Some(claimed)) = (&pending.claim, claimed) else {
            return Ok(());
        };
        match claim.verdict(claimed, jiff::Timestamp::now().as_millisecond()) {
            Ok(()) => Ok(()),
            Err(e) if stored => {
                self.metrics.captcha_refused(e.reason(), true);
                self.metrics.shadow("captcha", e.reason());
                Ok(())
            }
            Err(e) => {
                self.metrics.captcha_refused(e.reason(), false);
                Err(SubmitError::Captcha(e))
            }
        }
    }
}

/// The answer to a retry.
fn replayed(receipt: Receipt) -> Submitted {
    Submitted {
        receipt,
        replayed: true,
    }
}

/// Whether a classifier rule weighed in the decision: explaining is ten times the cost of
/// scoring, so only then are reasons explained.
/// What a pre-moderated comment's reason says.
fn premoderated_because(
    why: Option<crate::articles::Premoderation>,
    settings: &crate::articles::ArticleSettings,
) -> String {
    match why {
        Some(crate::articles::Premoderation::Article) => "the article is pre-moderated".into(),
        _ => {
            let mut when = Vec::new();
            if !settings.premoderation_hours.is_empty() {
                when.push(settings.premoderation_hours.clone());
            }
            if !settings.premoderation_days.is_empty() {
                when.push(settings.premoderation_days.join(", "));
            }
            format!(
                "sent in pre-moderated hours ({} {})",
                when.join("; "),
                settings.timezone
            )
        }
    }
}

fn classifier_ruled(decision: &Decision) -> bool {
    decision.rules.iter().any(|r| {
        matches!(
            r,
            ReasonCode::SpamCertain | ReasonCode::SpamLikely | ReasonCode::ToxicLikely
        )
    })
}

/// A score as JSON prints it: the shortest decimal that reads back as the same `f32` (0.29,
/// not the 0.28999999165534973 its widening to `f64` would print).
fn short(score: f32) -> f64 {
    score.to_string().parse().unwrap_or(f64::from(score))
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
        (ReasonCode::FirstComment, _) => "the reader's first comment".to_owned(),
        (ReasonCode::DuplicateCampaign, _) => {
            "the same text came from other readers within the campaign window".to_owned()
        }
        (ReasonCode::DuplicateRepeat, _) => {
            "the reader sent the same text before within the campaign window".to_owned()
        }
        (ReasonCode::Premoderated | ReasonCode::ReaderPremoderated, _) | (_, None) => String::new(),
    };
    Reason {
        code: rule.as_str().to_owned(),
        message,
    }
}
