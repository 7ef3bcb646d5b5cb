//! The review queue as the domain sees it: what moderators list, claim and decide, readers'
//! reports, the history of a comment, and the labeled examples decisions become. Storage is in
//! [`crate::store`]; the wire protocol in [`crate::grpc`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::comment::{ArticleId, CommentId, Violation, text_field};
use crate::decide::{Outcome, Reason, ReasonCode};
use crate::store::{StoreError, StoredComment};

/// The reason code of a comment a reader reported.
pub const REPORTED: &str = "REPORTED";

/// Section `[review]` of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewSettings {
    /// How long a claim lasts when the moderator does not say.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// The longest claim a moderator may ask for.
    #[serde(with = "humantime_serde")]
    pub max_lease: Duration,
    /// The most comments one claim may take.
    pub max_claim: usize,
    /// How many of a comment's most recent reports are kept (all are counted).
    pub reports_kept: usize,
    /// How many reports one reader may send per `report_window`.
    pub reports_per_reader: u32,
    /// See `reports_per_reader`.
    #[serde(with = "humantime_serde")]
    pub report_window: Duration,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        ReviewSettings {
            lease: Duration::from_secs(10 * 60),
            max_lease: Duration::from_secs(3600),
            max_claim: 100,
            reports_kept: 20,
            reports_per_reader: 10,
            report_window: Duration::from_secs(10 * 60),
        }
    }
}

/// Who acts: a moderator's name (1–100 characters of letters, digits and `. _ - @`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Moderator(String);

impl Moderator {
    /// Parses the `moderator` field.
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let ok = (1..=100).contains(&raw.chars().count())
            && raw
                .chars()
                .all(|c| c.is_alphanumeric() || ".-_@".contains(c));
        if ok {
            Ok(Moderator(raw.to_owned()))
        } else {
            Err(Violation {
                field: "moderator",
                description: "must be 1 to 100 letters, digits and . _ - @".into(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a page of the queue starts: after the item with this arrival time and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Arrival time (Unix ms) of the last item of the previous page.
    pub arrived_ms: i64,
    /// Its id.
    pub id: CommentId,
}

impl Cursor {
    /// The page token sent to clients.
    pub fn token(&self) -> String {
        format!("{:x}.{}", self.arrived_ms, self.id)
    }

    /// Reads a page token.
    pub fn parse(token: &str) -> Result<Self, Violation> {
        let bad = || Violation {
            field: "page_token",
            description: "is not a token from a previous page".into(),
        };
        let (ms, id) = token.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            arrived_ms: i64::from_str_radix(ms, 16).map_err(|_| bad())?,
            id: CommentId::parse("page_token", id).map_err(|_| bad())?,
        })
    }
}

/// Which waiting comments to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Only under this article.
    pub article: Option<ArticleId>,
    /// Only held for this reason code.
    pub reason: Option<String>,
    /// Only waiting at least this long.
    pub min_age: Option<Duration>,
    /// Only waiting at most this long.
    pub max_age: Option<Duration>,
    /// Items per page.
    pub page_size: usize,
    /// Where the page starts.
    pub after: Option<Cursor>,
}

/// Largest page.
pub const MAX_PAGE: usize = 200;

/// Page size when the caller does not say.
pub const DEFAULT_PAGE: usize = 50;

impl Query {
    /// Parses a listing request; a page size above [`MAX_PAGE`] is lowered to it.
    pub fn parse(
        article: Option<&str>,
        reason: Option<&str>,
        min_age_seconds: Option<u32>,
        max_age_seconds: Option<u32>,
        page_size: u32,
        page_token: &str,
    ) -> Result<Query, Vec<Violation>> {
        let mut violations = Vec::new();
        let article = article
            .map(ArticleId::parse)
            .transpose()
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        let known =
            |code: &str| code == REPORTED || ReasonCode::ALL.iter().any(|r| r.as_str() == code);
        let reason = match reason {
            Some(code) if !known(code) => {
                let codes: Vec<&str> = ReasonCode::ALL.iter().map(|r| r.as_str()).collect();
                violations.push(Violation::new(
                    "reason",
                    format!("must be one of {}, {REPORTED}", codes.join(", ")),
                ));
                None
            }
            other => other.map(str::to_owned),
        };
        if let (Some(min), Some(max)) = (min_age_seconds, max_age_seconds)
            && min > max
        {
            violations.push(Violation::new(
                "max_age_seconds",
                format!("must not be below min_age_seconds ({min})"),
            ));
        }
        let after = (!page_token.is_empty())
            .then(|| Cursor::parse(page_token))
            .transpose()
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        if !violations.is_empty() {
            return Err(violations);
        }
        let seconds = |s: u32| Duration::from_secs(u64::from(s));
        Ok(Query {
            article,
            reason,
            min_age: min_age_seconds.map(seconds),
            max_age: max_age_seconds.map(seconds),
            page_size: match page_size {
                0 => DEFAULT_PAGE,
                n => (n as usize).min(MAX_PAGE),
            },
            after,
        })
    }
}

/// A page of the queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Oldest first.
    pub items: Vec<FlaggedItem>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<Cursor>,
}

/// What to claim: the oldest unclaimed comments, or given ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claiming {
    /// This many of the oldest unclaimed comments.
    Oldest(usize),
    /// Exactly these (all or none).
    These(Vec<CommentId>),
}

/// A claim request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Who claims.
    pub moderator: Moderator,
    /// What.
    pub what: Claiming,
    /// For how long.
    pub lease: Duration,
}

impl ClaimRequest {
    /// Parses a claim request against the limits in `settings`.
    pub fn parse(
        moderator: &str,
        count: u32,
        ids: &[String],
        lease_seconds: Option<u32>,
        settings: &ReviewSettings,
    ) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        let moderator = Moderator::parse(moderator)
            .map_err(|v| violations.push(v))
            .ok();
        let max = settings.max_claim;
        let what = if ids.is_empty() {
            if count == 0 || count as usize > max {
                violations.push(Violation::new(
                    "count",
                    format!("must be 1 to {max} when no comment_ids are given"),
                ));
            }
            Claiming::Oldest(count as usize)
        } else {
            if ids.len() > max {
                violations.push(Violation::new(
                    "comment_ids",
                    format!("at most {max} ids, {} given", ids.len()),
                ));
            }
            let mut parsed: Vec<CommentId> = Vec::with_capacity(ids.len());
            for raw in ids {
                match CommentId::parse("comment_ids", raw) {
                    Ok(id) if !parsed.contains(&id) => parsed.push(id),
                    Ok(_) => {}
                    Err(v) => violations.push(v),
                }
            }
            Claiming::These(parsed)
        };
        let longest = settings.max_lease.as_secs();
        let lease = match lease_seconds {
            None => settings.lease,
            Some(s) if s >= 1 && u64::from(s) <= longest => Duration::from_secs(u64::from(s)),
            Some(_) => {
                violations.push(Violation::new(
                    "lease_seconds",
                    format!("must be 1 to {longest}"),
                ));
                settings.lease
            }
        };
        match moderator {
            Some(moderator) if violations.is_empty() => Ok(ClaimRequest {
                moderator,
                what,
                lease,
            }),
            _ => Err(violations),
        }
    }
}

/// A moderator's decision on one comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The comment.
    pub id: CommentId,
    /// The version the moderator saw.
    pub version: u64,
    /// Who decides.
    pub moderator: Moderator,
    /// Approve or reject.
    pub verdict: Verdict,
    /// A note for the history (up to 1,000 characters).
    pub note: String,
}

impl Decision {
    /// Parses a decision; `verdict` is `None` when the request named none.
    pub fn parse(
        id: &str,
        version: u64,
        moderator: &str,
        verdict: Option<Verdict>,
        note: &str,
    ) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        let id = CommentId::parse("comment_id", id)
            .map_err(|v| violations.push(v))
            .ok();
        if version == 0 {
            violations.push(Violation::new(
                "version",
                "must be the version of the comment as listed or claimed",
            ));
        }
        let moderator = Moderator::parse(moderator)
            .map_err(|v| violations.push(v))
            .ok();
        if verdict.is_none() {
            violations.push(Violation::new("decision", "must be APPROVE or REJECT"));
        }
        let note = text_field("note", note, true, 0, 1000)
            .map_err(|v| violations.push(v))
            .ok();
        match (id, moderator, verdict, note) {
            (Some(id), Some(moderator), Some(verdict), Some(note)) if violations.is_empty() => {
                Ok(Decision {
                    id,
                    version,
                    moderator,
                    verdict,
                    note,
                })
            }
            _ => Err(violations),
        }
    }
}

/// A reader's report of a published comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The comment.
    pub id: CommentId,
    /// Why (1–500 characters).
    pub reason: String,
    /// Who reported, as a hash of the portal's id for the reader (never stored in clear).
    pub reporter: String,
}

impl Report {
    /// Parses a report, collecting every violation.
    pub fn parse(id: &str, reason: &str, reporter: &str) -> Result<Self, Vec<Violation>> {
        use sha2::{Digest, Sha256};
        let mut violations = Vec::new();
        let id = CommentId::parse("comment_id", id)
            .map_err(|v| violations.push(v))
            .ok();
        let reason = text_field("reason", reason, true, 1, 500)
            .map_err(|v| violations.push(v))
            .ok();
        let reporter = text_field("reporter", reporter, false, 1, 128)
            .map_err(|v| violations.push(v))
            .ok()
            .map(|r| {
                let digest = Sha256::digest(r.as_bytes());
                crate::hex::hex(&digest[..16])
            });
        match (id, reason, reporter) {
            (Some(id), Some(reason), Some(reporter)) => Ok(Report {
                id,
                reason,
                reporter,
            }),
            _ => Err(violations),
        }
    }
}

/// What a source's earlier comments became.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Published.
    pub accepted: u32,
    /// Rejected.
    pub rejected: u32,
}

/// A moderator's lease on a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Who holds it.
    pub moderator: String,
    /// Until when (Unix ms).
    pub until_ms: i64,
}

/// One feature's share in a score, as stored with a held comment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explained {
    /// `spam` or `toxic`.
    pub head: String,
    /// The feature, readable.
    pub feature: String,
    /// Its share of the head's log-odds.
    pub weight: f32,
}

/// A waiting comment with what a moderator needs to decide.
#[derive(Clone, Debug, PartialEq)]
pub struct FlaggedItem {
    /// The comment.
    pub comment: StoredComment,
    /// Its version (for optimistic concurrency).
    pub version: u64,
    /// Why it scored as it did.
    pub explanation: Vec<Explained>,
    /// A live claim on it, if any.
    pub claim: Option<Claim>,
    /// The same author's earlier comments.
    pub author: Record,
    /// The same IP address's earlier comments.
    pub ip: Record,
    /// The most recent readers' reports, if it came back after publication.
    pub reports: Vec<String>,
    /// How many readers reported it in all.
    pub report_count: u32,
    /// When it joined the queue (Unix ms): where a page ending with it continues from.
    pub arrived_ms: i64,
}

/// Why a rejected comment is rejected, for its training label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// Spam.
    Spam,
    /// Abuse.
    Abuse,
}

/// A moderator's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Publish.
    Approve,
    /// Reject; the label if the moderator gave one.
    Reject(Option<Label>),
}

impl Verdict {
    /// The training labels of this decision on a comment held for `reasons`: (spam, toxic),
    /// `None` where the decision says nothing.
    pub fn labels(self, reasons: &[Reason]) -> (Option<bool>, Option<bool>) {
        match self {
            Verdict::Approve => (Some(false), Some(false)),
            Verdict::Reject(Some(Label::Spam)) => (Some(true), None),
            Verdict::Reject(Some(Label::Abuse)) => (Some(false), Some(true)),
            Verdict::Reject(None) => {
                // A report is the latest word on a comment, and readers report abuse far
                // more often than spam that got through; otherwise, what it was held for.
                let held_for = |prefix: &str| reasons.iter().any(|r| r.code.starts_with(prefix));
                if held_for(REPORTED) || (held_for("TOXIC") && !held_for("SPAM")) {
                    (Some(false), Some(true))
                } else {
                    (Some(true), None)
                }
            }
        }
    }
}

/// A moderator's decision as a labeled example: the corpus record, plus which comment, when
/// and who.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feedback {
    /// The decided comment.
    pub comment_id: String,
    /// The labeled comment, in the corpus format.
    pub record: crate::classifier::corpus::Record,
    /// When it was decided (Unix ms).
    pub decided_at: i64,
    /// Who decided.
    pub moderator: String,
}

impl Feedback {
    /// A stored feedback record, read field by field (`text` gives a field's value, empty
    /// when absent): the same fields on every backend.
    pub fn from_fields(text: impl Fn(&str) -> String) -> Self {
        let label = |name: &str| match text(name).as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        let optional = |name: &str| Some(text(name)).filter(|v| !v.is_empty());
        Feedback {
            comment_id: text("comment_id"),
            record: crate::classifier::corpus::Record {
                text: text("text"),
                spam: label("spam"),
                toxic: label("toxic"),
                lang: optional("lang"),
                source: Some("moderation".to_owned()),
                context: optional("context"),
                author: optional("author"),
            },
            decided_at: text("decided_at").parse().unwrap_or(0),
            moderator: text("moderator"),
        }
    }
}

/// The training examples in `feedback` (oldest first): one per comment, its latest decision
/// (a comment approved, then reported and rejected, was abuse after all).
pub fn training_examples(feedback: Vec<Feedback>) -> Vec<crate::classifier::corpus::Record> {
    let mut latest: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (k, f) in feedback.iter().enumerate() {
        latest.insert(f.comment_id.clone(), k);
    }
    feedback
        .into_iter()
        .enumerate()
        .filter(|(k, f)| latest.get(&f.comment_id) == Some(k))
        .map(|(_, f)| f.record)
        .collect()
}

/// One thing that happened to a comment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Who: `service`, `reader`, or a moderator.
    pub actor: String,
    /// What: `submitted`, `claimed`, `approved`, `rejected`, `reported`.
    pub action: String,
    /// The state after it.
    pub state: Outcome,
    /// A note or a report's reason.
    #[serde(default)]
    pub note: String,
}

/// Why a review operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such comment.
    #[error("no comment {0}")]
    NotFound(CommentId),
    /// The comment changed since the caller read it.
    #[error("comment {id} is at version {current}, not {given}")]
    Stale {
        /// The comment.
        id: CommentId,
        /// Its version now.
        current: u64,
        /// The version the caller sent.
        given: u64,
    },
    /// Another moderator holds the claim.
    #[error("comment {id} is claimed by {moderator}")]
    ClaimedByOther {
        /// The comment.
        id: CommentId,
        /// Who holds the claim.
        moderator: String,
    },
    /// The comment is not waiting for review.
    #[error("comment {id} is {state}, not waiting for review")]
    NotInReview {
        /// The comment.
        id: CommentId,
        /// Where it is.
        state: Outcome,
    },
    /// This reader already reported this comment.
    #[error("comment {0} was already reported by this reader")]
    AlreadyReported(CommentId),
    /// The reader sent too many reports; the next is admitted after this long.
    #[error("too many reports from this reader; retry in {0:?}")]
    TooManyReports(Duration),
    /// Only published comments can be reported.
    #[error("comment {id} is {state}, not published")]
    NotPublished {
        /// The comment.
        id: CommentId,
        /// Where it is.
        state: Outcome,
    },
    /// Invalid input.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Where the review queue is kept: the port the queue needs of a storage backend. The
/// backend makes each operation atomic; what a decision or a report does is decided here.
#[async_trait::async_trait]
pub trait ReviewStore: Send + Sync {
    /// Reads a stored comment.
    async fn comment(&self, id: CommentId) -> Result<Option<StoredComment>, StoreError>;

    /// A page of comments waiting for review, oldest first, and where the next page starts.
    async fn flagged(
        &self,
        query: &Query,
        now_ms: i64,
    ) -> Result<(Vec<FlaggedItem>, Option<crate::review::Cursor>), StoreError>;

    /// Leases waiting comments to `moderator` until `until_ms`: the oldest `count` unclaimed
    /// ones, or exactly `ids` (all or none).
    async fn claim(
        &self,
        moderator: &Moderator,
        count: usize,
        ids: &[CommentId],
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<FlaggedItem>, ReviewError>;

    /// Approves or rejects a waiting comment at `version`; returns its new state and version.
    async fn decide(
        &self,
        id: CommentId,
        version: u64,
        moderator: &Moderator,
        verdict: Verdict,
        note: &str,
        now_ms: i64,
    ) -> Result<(Outcome, u64), ReviewError>;

    /// Brings a published comment back to the queue with a reader's report (counted once per
    /// reader, the most recent `limits.kept` kept, each reader rate-limited); returns its new
    /// version.
    async fn report(
        &self,
        report: &Report,
        limits: ReportLimits,
        now_ms: i64,
    ) -> Result<u64, ReviewError>;

    /// What happened to a comment, oldest first.
    async fn history(&self, id: CommentId) -> Result<Vec<HistoryEvent>, StoreError>;

    /// Labeled examples from moderators' decisions made at or after `since_ms`.
    async fn feedback(&self, since_ms: i64) -> Result<Vec<Feedback>, StoreError>;
}

/// How reports are bounded: the most recent `kept` are stored, each reader may send
/// `per_reader` per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportLimits {
    /// Reports kept per comment.
    pub kept: usize,
    /// Reports per reader per window.
    pub per_reader: u32,
    /// The window.
    pub window: Duration,
}

/// The review queue: every operation bounded by a deadline, times taken from the clock, each
/// change announced to [`Queue::events`].
pub struct Queue {
    store: Arc<dyn ReviewStore>,
    settings: ReviewSettings,
    metrics: Arc<crate::metrics::Metrics>,
    events: Events,
    notifier: crate::webhooks::Notifier,
    rejections: Option<crate::readers::desk::Rejections>,
}

/// Something that changed in the queue, for moderators' live views.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueEvent {
    /// A comment joined the queue.
    Held {
        /// The comment.
        id: String,
    },
    /// A moderator claimed it.
    Claimed {
        /// The comment.
        id: String,
        /// Who.
        by: String,
        /// Until when (Unix ms).
        until_ms: i64,
        /// Its version now.
        version: u64,
    },
    /// A moderator decided it: it left the queue.
    Decided {
        /// The comment.
        id: String,
        /// Who.
        by: String,
        /// Where it went.
        state: Outcome,
    },
    /// A reader's report brought it back.
    Reported {
        /// The comment.
        id: String,
    },
}

/// Where queue changes are announced: every live view subscribes. On this instance only
/// (views on other instances learn of a change when they reload or act on it).
#[derive(Clone, Debug)]
pub struct Events(tokio::sync::broadcast::Sender<QueueEvent>);

impl Default for Events {
    fn default() -> Self {
        Events(tokio::sync::broadcast::channel(1024).0)
    }
}

impl Events {
    /// Announces `event` (nobody listening is fine).
    pub fn send(&self, event: QueueEvent) {
        let _ = self.0.send(event);
    }

    /// A subscription to the events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<QueueEvent> {
        self.0.subscribe()
    }
}

/// Runs a storage call, failing as unavailable when it outlasts `deadline`.
async fn within<T, E>(
    deadline: Instant,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, ReviewError>
where
    ReviewError: From<E>,
{
    match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(result) => result.map_err(ReviewError::from),
        Err(_) => Err(ReviewError::Store(StoreError::Unavailable(
            "storage did not answer before the deadline".into(),
        ))),
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Queue {
    /// The queue kept in `store`; decisions are counted in `metrics`.
    pub fn new(
        store: Arc<dyn ReviewStore>,
        settings: ReviewSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Queue {
            store,
            settings,
            metrics,
            events: Events::default(),
            notifier: crate::webhooks::Notifier::default(),
            rejections: None,
        }
    }

    /// The same queue, telling webhooks of decisions and take-downs through `notifier`.
    pub fn with_notifier(mut self, notifier: crate::webhooks::Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Announces each rejection's reader to `rejections` (automatic pre-moderation).
    pub fn with_rejections(mut self, rejections: crate::readers::desk::Rejections) -> Self {
        self.rejections = Some(rejections);
        self
    }

    /// Where this queue's changes are announced.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Reads a stored comment.
    pub async fn comment(
        &self,
        id: CommentId,
        deadline: Instant,
    ) -> Result<Option<StoredComment>, ReviewError> {
        within(deadline, self.store.comment(id)).await
    }

    /// The settings in force.
    pub fn settings(&self) -> &ReviewSettings {
        &self.settings
    }

    /// A page of waiting comments.
    pub async fn list(&self, query: &Query, deadline: Instant) -> Result<Page, ReviewError> {
        let (items, next) = within(deadline, self.store.flagged(query, now_ms())).await?;
        Ok(Page { items, next })
    }

    /// Leases comments to a moderator; returns what was claimed (possibly fewer than asked
    /// when the queue is short).
    pub async fn claim(
        &self,
        request: &ClaimRequest,
        deadline: Instant,
    ) -> Result<Vec<FlaggedItem>, ReviewError> {
        let now = now_ms();
        let until = now + i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX / 2);
        let (count, ids) = match &request.what {
            Claiming::Oldest(n) => (*n, &[][..]),
            Claiming::These(ids) => (ids.len(), &ids[..]),
        };
        let claimed = within(
            deadline,
            self.store.claim(&request.moderator, count, ids, until, now),
        )
        .await?;
        for item in &claimed {
            self.events.send(QueueEvent::Claimed {
                id: item.comment.id.to_string(),
                by: request.moderator.as_str().to_owned(),
                until_ms: until,
                version: item.version,
            });
        }
        Ok(claimed)
    }

    /// Approves or rejects a waiting comment; returns its new state and version.
    pub async fn decide(
        &self,
        d: &Decision,
        deadline: Instant,
    ) -> Result<(Outcome, u64), ReviewError> {
        // Read first, for the moderators' statistics and the webhooks: one more read per
        // decision, which moderators make at human speed.
        let before = within(deadline, self.store.comment(d.id))
            .await
            .ok()
            .flatten();
        let decided = within(
            deadline,
            self.store
                .decide(d.id, d.version, &d.moderator, d.verdict, &d.note, now_ms()),
        )
        .await?;
        let moderator = d.moderator.as_str();
        self.metrics.moderator_decision(
            moderator,
            match d.verdict {
                Verdict::Approve => "approved",
                Verdict::Reject(_) => "rejected",
            },
        );
        if let Some(c) = &before {
            let waited =
                Duration::from_millis(u64::try_from(now_ms() - c.created_at_ms).unwrap_or(0));
            let leaned_reject = c.spam >= 0.5 || c.toxic >= 0.5;
            let agreed = leaned_reject == matches!(d.verdict, Verdict::Reject(_));
            self.metrics.decision_context(moderator, waited, agreed);
        }
        self.events.send(QueueEvent::Decided {
            id: d.id.to_string(),
            by: d.moderator.as_str().to_owned(),
            state: decided.0,
        });
        self.notify_decided(d, decided.0, before.as_ref());
        if let (Outcome::Rejected, Some(rejections), Some(c)) =
            (decided.0, &self.rejections, &before)
        {
            rejections.rejected(&c.reader);
        }
        Ok(decided)
    }

    /// Tells the webhooks that want it of a decision, and of a take-down: a rejected comment
    /// that was published (`before` the decision) leaves the portal.
    fn notify_decided(&self, d: &Decision, state: Outcome, before: Option<&StoredComment>) {
        use crate::webhooks::{EventType, Notice};
        if self.notifier.wants(EventType::Decided) {
            let data = serde_json::json!({
                "comment_id": d.id.to_string(),
                "state": state.as_str(),
                "moderator": d.moderator.as_str(),
                "note": d.note,
            });
            self.notifier.notify(Notice {
                kind: EventType::Decided,
                data,
            });
        }
        if state != Outcome::Rejected || !self.notifier.wants(EventType::Removed) {
            return;
        }
        if let Some(c) = before.filter(|c| c.published) {
            self.notifier.notify(Notice {
                kind: EventType::Removed,
                data: serde_json::json!({ "comment_id": d.id.to_string(), "article_id": c.article_id }),
            });
        }
    }

    /// Rejects a waiting comment on a moderator's behalf without their having claimed it: it
    /// is claimed for them first (so a comment another moderator holds is left to them), then
    /// rejected at the version claimed.
    pub async fn reject_waiting(
        &self,
        id: CommentId,
        moderator: &Moderator,
        note: &str,
        deadline: Instant,
    ) -> Result<(Outcome, u64), ReviewError> {
        let request = ClaimRequest {
            moderator: moderator.clone(),
            what: Claiming::These(vec![id]),
            lease: Duration::from_secs(60),
        };
        let claimed = self.claim(&request, deadline).await?;
        let version = claimed.first().map_or(0, |item| item.version);
        self.reject_at(id, version, moderator, note, deadline).await
    }

    /// Rejects a comment at `version` for `moderator`.
    async fn reject_at(
        &self,
        id: CommentId,
        version: u64,
        moderator: &Moderator,
        note: &str,
        deadline: Instant,
    ) -> Result<(Outcome, u64), ReviewError> {
        let decision = Decision {
            id,
            version,
            moderator: moderator.clone(),
            verdict: Verdict::Reject(None),
            note: note.to_owned(),
        };
        self.decide(&decision, deadline).await
    }

    /// A report of the service's own (an earlier copy of a campaign): as a reader's, counted
    /// against no reader's quota.
    pub async fn report_unlimited(
        &self,
        report: &Report,
        deadline: Instant,
    ) -> Result<u64, ReviewError> {
        let limits = ReportLimits {
            kept: self.settings.reports_kept,
            per_reader: u32::MAX,
            window: Duration::from_secs(1),
        };
        self.report_within(report, limits, deadline).await
    }

    /// Takes a published comment down on a moderator's behalf: it comes back to the queue as a
    /// report of theirs (counted against no reader's quota), then is rejected, which removes it
    /// from the portal (a `REMOVED` feed event).
    pub async fn take_down(
        &self,
        id: CommentId,
        moderator: &Moderator,
        note: &str,
        deadline: Instant,
    ) -> Result<(Outcome, u64), ReviewError> {
        let report = Report {
            id,
            reason: note.to_owned(),
            reporter: format!("moderator:{}", moderator.as_str()),
        };
        let reopened = self.report_unlimited(&report, deadline).await;
        let version = match reopened {
            Ok(version) => version,
            // Already back after a reader's report: reject it as it is.
            Err(ReviewError::AlreadyReported(_)) => 0,
            Err(e) => return Err(e),
        };
        if version == 0 {
            return self.reject_waiting(id, moderator, note, deadline).await;
        }
        self.reject_at(id, version, moderator, note, deadline).await
    }

    /// Brings a published comment back for review; returns its new version.
    pub async fn report(&self, report: &Report, deadline: Instant) -> Result<u64, ReviewError> {
        let limits = ReportLimits {
            kept: self.settings.reports_kept,
            per_reader: self.settings.reports_per_reader,
            window: self.settings.report_window,
        };
        self.report_within(report, limits, deadline).await
    }

    /// Stores a report within `limits` and announces it.
    async fn report_within(
        &self,
        report: &Report,
        limits: ReportLimits,
        deadline: Instant,
    ) -> Result<u64, ReviewError> {
        let version = within(deadline, self.store.report(report, limits, now_ms())).await?;
        self.events.send(QueueEvent::Reported {
            id: report.id.to_string(),
        });
        Ok(version)
    }

    /// What happened to a comment; [`ReviewError::NotFound`] when nothing is recorded.
    pub async fn history(
        &self,
        id: CommentId,
        deadline: Instant,
    ) -> Result<Vec<HistoryEvent>, ReviewError> {
        let events = within(deadline, self.store.history(id)).await?;
        if events.is_empty() {
            return Err(ReviewError::NotFound(id));
        }
        Ok(events)
    }
}

/// The rules of the queue's state changes, applied by every backend (the Redis scripts follow
/// the same rules in Lua, where they must run atomically).
pub mod rules {
    use super::Outcome;

    /// Why a comment cannot be claimed.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum NotClaimable {
        /// No such comment.
        Missing,
        /// It is not waiting for review (its state).
        NotInReview(Outcome),
        /// Another moderator's claim is live (who).
        Claimed(String),
    }

    /// Whether `moderator` may claim a comment in `state`, claimed by `claimed_by` until
    /// `claim_until` (ms), at `now`. Claiming given ids renews one's own claim; claiming by count
    /// takes only unclaimed comments.
    pub fn claimable(
        state: Option<Outcome>,
        claimed_by: &str,
        claim_until: i64,
        moderator: &str,
        now: i64,
        explicit: bool,
    ) -> Result<(), NotClaimable> {
        match state {
            None => Err(NotClaimable::Missing),
            Some(s) if s != Outcome::PendingReview => Err(NotClaimable::NotInReview(s)),
            _ if !claimed_by.is_empty()
                && claim_until > now
                && (claimed_by != moderator || !explicit) =>
            {
                Err(NotClaimable::Claimed(claimed_by.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// What a reader's report does to a comment.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ReportEffect {
        /// It is back for review after an earlier report: this one joins it (same version).
        Joins,
        /// It is published: it comes back to the queue (a new version), still published.
        Reopens,
    }

    /// What a report does to a comment in `state` (`reported`: it came back after a report);
    /// `Err(state)` when it is not published.
    pub fn report_effect(state: Outcome, reported: bool) -> Result<ReportEffect, Outcome> {
        match (state, reported) {
            (Outcome::PendingReview, true) => Ok(ReportEffect::Joins),
            (Outcome::Accepted, _) => Ok(ReportEffect::Reopens),
            (other, _) => Err(other),
        }
    }

    /// Keeps only the latest `kept` reports (at least one).
    pub fn keep_latest(reports: &mut Vec<String>, kept: usize) {
        let kept = kept.max(1);
        if reports.len() > kept {
            reports.drain(..reports.len() - kept);
        }
    }

    /// How a moderator's decision changes the counts of the comment's author and address: a
    /// held comment counts once as what it became; a reported one was counted as accepted
    /// when it was published, so rejecting it moves it, and approving it changes nothing.
    pub fn count_changes(reported: bool, decided: Outcome) -> Vec<(Outcome, i64)> {
        match (reported, decided) {
            (false, state) => vec![(state, 1)],
            (true, Outcome::Rejected) => vec![(Outcome::Accepted, -1), (Outcome::Rejected, 1)],
            (true, _) => Vec::new(),
        }
    }

    /// A guess of a text's language for its training record: Vietnamese when it has letters
    /// only Vietnamese uses, else English.
    pub fn language(text: &str) -> &'static str {
        let vietnamese = text.chars().any(|c| {
            matches!(c, 'đ' | 'Đ' | 'ơ' | 'Ơ' | 'ư' | 'Ư' | 'ă' | 'Ă')
                || ('\u{1EA0}'..='\u{1EF9}').contains(&c)
        });
        if vietnamese { "vi" } else { "en" }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn who_may_claim() {
            let pending = Some(Outcome::PendingReview);
            assert_eq!(claimable(pending, "", 0, "lan", 10, false), Ok(()));
            assert_eq!(
                claimable(None, "", 0, "lan", 10, true),
                Err(NotClaimable::Missing)
            );
            assert_eq!(
                claimable(Some(Outcome::Accepted), "", 0, "lan", 10, true),
                Err(NotClaimable::NotInReview(Outcome::Accepted))
            );
            let minh = Err(NotClaimable::Claimed("minh".into()));
            assert_eq!(claimable(pending, "minh", 20, "lan", 10, true), minh);
            assert_eq!(
                claimable(pending, "minh", 5, "lan", 10, true),
                Ok(()),
                "expired"
            );
            assert_eq!(
                claimable(pending, "lan", 20, "lan", 10, true),
                Ok(()),
                "renewal"
            );
            assert_eq!(
                claimable(pending, "lan", 20, "lan", 10, false),
                Err(NotClaimable::Claimed("lan".into())),
                "by count only unclaimed ones"
            );
        }

        #[test]
        fn reports_and_counts() {
            assert_eq!(
                report_effect(Outcome::Accepted, false),
                Ok(ReportEffect::Reopens)
            );
            assert_eq!(
                report_effect(Outcome::PendingReview, true),
                Ok(ReportEffect::Joins)
            );
            assert_eq!(
                report_effect(Outcome::PendingReview, false),
                Err(Outcome::PendingReview)
            );
            assert_eq!(
                report_effect(Outcome::Rejected, false),
                Err(Outcome::Rejected)
            );
            let mut r: Vec<String> = (0..5).map(|k| k.to_string()).collect();
            keep_latest(&mut r, 3);
            assert_eq!(r, ["2", "3", "4"]);
            assert_eq!(
                count_changes(false, Outcome::Rejected),
                [(Outcome::Rejected, 1)]
            );
            assert_eq!(
                count_changes(true, Outcome::Rejected),
                [(Outcome::Accepted, -1), (Outcome::Rejected, 1)]
            );
            assert!(count_changes(true, Outcome::Accepted).is_empty());
            assert_eq!(language("Bài viết hay"), "vi");
            assert_eq!(language("Nice article"), "en");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_anything_else() {
        let cursor = Cursor {
            arrived_ms: 1_764_252_147_958,
            id: CommentId::new(),
        };
        assert_eq!(Cursor::parse(&cursor.token()).unwrap(), cursor);
        for bad in ["", "x", "zz.abc", "19a.not-a-uuid"] {
            assert_eq!(Cursor::parse(bad).unwrap_err().field, "page_token");
        }
    }

    #[test]
    fn decisions_become_labels() {
        let held = |codes: &[&str]| -> Vec<Reason> {
            codes
                .iter()
                .map(|c| Reason {
                    code: (*c).to_owned(),
                    message: String::new(),
                })
                .collect()
        };
        let approve = Verdict::Approve;
        assert_eq!(
            approve.labels(&held(&["SPAM_LIKELY"])),
            (Some(false), Some(false))
        );
        let reject = Verdict::Reject(None);
        assert_eq!(reject.labels(&held(&["SPAM_LIKELY"])), (Some(true), None));
        assert_eq!(
            reject.labels(&held(&["TOXIC_LIKELY"])),
            (Some(false), Some(true))
        );
        assert_eq!(
            reject.labels(&held(&["REPORTED"])),
            (Some(false), Some(true))
        );
        assert_eq!(
            reject.labels(&held(&["SPAM_LIKELY", "REPORTED"])),
            (Some(false), Some(true))
        );
        assert_eq!(
            reject.labels(&held(&["TOXIC_LIKELY", "SPAM_LIKELY"])),
            (Some(true), None)
        );
        assert_eq!(reject.labels(&held(&["BOT_TOO_FAST"])), (Some(true), None));
        let abuse = Verdict::Reject(Some(Label::Abuse));
        assert_eq!(
            abuse.labels(&held(&["SPAM_LIKELY"])),
            (Some(false), Some(true))
        );
        let spam = Verdict::Reject(Some(Label::Spam));
        assert_eq!(spam.labels(&held(&["TOXIC_LIKELY"])), (Some(true), None));
    }

    #[test]
    fn only_the_latest_decision_on_a_comment_is_an_example() {
        let decided = |id: &str, spam: bool, at: i64| Feedback {
            comment_id: id.to_owned(),
            record: crate::classifier::corpus::Record {
                text: format!("comment {id}"),
                spam: Some(spam),
                ..Default::default()
            },
            decided_at: at,
            moderator: "lan".to_owned(),
        };
        let examples = training_examples(vec![
            decided("a", false, 1),
            decided("b", true, 2),
            decided("a", true, 3),
        ]);
        let labels: Vec<(&str, Option<bool>)> =
            examples.iter().map(|r| (r.text.as_str(), r.spam)).collect();
        assert_eq!(
            labels,
            [("comment b", Some(true)), ("comment a", Some(true))]
        );
    }

    #[test]
    fn moderator_names_are_checked() {
        assert!(Moderator::parse("lan.nguyen@toasoan").is_ok());
        assert!(Moderator::parse("Trần Bình").is_err(), "no spaces");
        assert!(Moderator::parse("").is_err());
        assert!(Moderator::parse(&"m".repeat(101)).is_err());
    }
}
