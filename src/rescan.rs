//! Re-scan: held comments (and, on request, the last days' published ones) scored again with
//! the model and lists in force, when ops activate a model or change a block list. What would
//! change is reported; a published comment that would now be held or rejected comes back to
//! the queue as a report of the service's, for a moderator to look at again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::comment::{CommentId, NewComment, RawSubmission};
use crate::decide::{self, Outcome};
use crate::pipeline::Pipeline;
use crate::review::{Query, Queue, Report as QueueReport, ReviewError};
use crate::store::{StoreError, StoredComment};

/// Most comments one re-scan reads (held and published each).
pub const MOST: usize = 10_000;

/// One comment that would now be decided otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    /// The comment.
    pub id: CommentId,
    /// Where it is now (held, or published).
    pub now: Outcome,
    /// What it would get now.
    pub would: Outcome,
    /// The reason codes it would get.
    pub reasons: Vec<String>,
    /// Its spam and toxic scores now.
    pub spam: f32,
    /// Toxic.
    pub toxic: f32,
}

/// What a re-scan found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rescanned {
    /// The model it scored with.
    pub model: String,
    /// Comments scored again.
    pub scanned: usize,
    /// Those that would be decided otherwise.
    pub changed: Vec<Changed>,
    /// Published ones brought back to the queue.
    pub flagged: usize,
}

/// A review error as storage's (a re-scan only reads the queue: nothing else can go wrong).
fn store_error(e: ReviewError) -> StoreError {
    match e {
        ReviewError::Store(s) => s,
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// Where published comments are read from for a re-scan.
#[async_trait::async_trait]
pub trait PublishedStore: Send + Sync {
    /// Comments published (accepted, and not taken down) since `since_ms`, oldest first, at
    /// most `limit`.
    async fn published_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredComment>, StoreError>;
}

/// Runs re-scans.
pub struct Rescanner {
    pipeline: Arc<Pipeline>,
    queue: Arc<Queue>,
    published: Arc<dyn PublishedStore>,
}

impl Rescanner {
    /// Over the pipeline (its model, lists and thresholds), the queue, and the published
    /// comments.
    pub fn new(
        pipeline: Arc<Pipeline>,
        queue: Arc<Queue>,
        published: Arc<dyn PublishedStore>,
    ) -> Self {
        Rescanner {
            pipeline,
            queue,
            published,
        }
    }

    /// Scores the held comments again, and those published in the last `published_days`;
    /// with `flag`, brings back to the queue the published ones that would now be held or
    /// rejected.
    pub async fn run(
        &self,
        published_days: u32,
        flag: bool,
        deadline: Instant,
    ) -> Result<Rescanned, StoreError> {
        let mut out = Rescanned {
            model: self
                .pipeline
                .live
                .snapshot()
                .effective
                .tunables
                .model
                .clone(),
            ..Rescanned::default()
        };
        for c in self.held(deadline).await? {
            self.weigh(&c, &mut out);
        }
        if published_days > 0 {
            let now = jiff::Timestamp::now().as_millisecond();
            let since = now - i64::from(published_days) * 86_400_000;
            let published = tokio::time::timeout_at(
                deadline.into(),
                self.published.published_since(since, MOST),
            )
            .await
            .map_err(|_| StoreError::Unavailable("storage did not answer in time".into()))??;
            for c in &published {
                if let Some(changed) = self.weigh(c, &mut out).filter(|_| flag) {
                    out.flagged += usize::from(self.flag(&changed, deadline).await);
                }
            }
        }
        Ok(out)
    }

    /// Every held comment, oldest first (at most [`MOST`]).
    async fn held(&self, deadline: Instant) -> Result<Vec<StoredComment>, StoreError> {
        let mut held = Vec::new();
        let mut token = String::new();
        loop {
            let query = Query::parse(None, None, None, None, 200, &token)
                .map_err(|_| StoreError::Corrupt("a page token of our own".into()))?;
            let page = self
                .queue
                .list(&query, deadline)
                .await
                .map_err(store_error)?;
            held.extend(page.items.into_iter().map(|i| i.comment));
            match page.next {
                Some(next) if held.len() < MOST => token = next.token(),
                _ => return Ok(held),
            }
        }
    }

    /// Scores one comment again; notes and returns it when it would be decided otherwise.
    fn weigh(&self, c: &StoredComment, out: &mut Rescanned) -> Option<Changed> {
        out.scanned += 1;
        let (would, reasons, spam, toxic) = rescore(&self.pipeline, c)?;
        let now = if c.state == Outcome::PendingReview && !c.published {
            Outcome::PendingReview
        } else if c.published {
            Outcome::Accepted
        } else {
            c.state
        };
        if would == now {
            return None;
        }
        let changed = Changed {
            id: c.id,
            now,
            would,
            reasons,
            spam,
            toxic,
        };
        out.changed.push(changed.clone());
        Some(changed)
    }

    /// Brings a published comment back to the queue; whether it came back.
    async fn flag(&self, c: &Changed, deadline: Instant) -> bool {
        if c.now != Outcome::Accepted || c.would == Outcome::Accepted {
            return false;
        }
        let report = QueueReport {
            id: c.id,
            reason: format!(
                "RESCAN: the model and lists in force would now give {} ({})",
                c.would.as_str(),
                c.reasons.join(", ")
            ),
            reporter: "service:rescan".into(),
        };
        self.queue.report_unlimited(&report, deadline).await.is_ok()
    }

    /// Re-scans the held comments each time ops activate a model or change a block list
    /// (looked at every `every`), and logs what would change.
    pub async fn watch(self: Arc<Self>, every: Duration, timeout: Duration) {
        let mut seen = self.inputs();
        loop {
            tokio::time::sleep(every).await;
            let now = self.inputs();
            if now == seen {
                continue;
            }
            seen = now;
            match self.run(0, false, Instant::now() + timeout).await {
                Ok(r) => tracing::info!(
                    model = %r.model,
                    scanned = r.scanned,
                    would_change = r.changed.len(),
                    "held comments scored again after a change of model or lists"
                ),
                Err(e) => tracing::warn!(error = %e, "held comments not scored again"),
            }
        }
    }

    /// What a re-scan depends on: the model, and the lists.
    fn inputs(&self) -> (String, crate::settings::lists::ListSettings) {
        let snapshot = self.pipeline.live.snapshot();
        let t = &snapshot.effective.tunables;
        (t.model.clone(), t.lists.clone())
    }
}

/// What a stored comment would get now from the lists, the model and the thresholds in force
/// (its reader's standing and its article's pre-moderation too; not the bot checks, which
/// were of the form as it was sent): the outcome, the reason codes, the scores. `None` for a
/// comment that no longer parses (stored by an older version under other limits).
pub fn rescore(pipeline: &Pipeline, c: &StoredComment) -> Option<(Outcome, Vec<String>, f32, f32)> {
    let raw = RawSubmission {
        article_id: c.article_id.clone(),
        article_title: c.article_title.clone(),
        author_name: c.author_name.clone(),
        author_email: c.author_email.clone(),
        body: c.body.clone(),
        client_ip: c.client_ip.clone(),
        idempotency_key: "rescan".into(),
        ..RawSubmission::default()
    };
    let comment = NewComment::parse(&raw, &pipeline.limits).ok()?;
    let live = pipeline.live.snapshot();
    let settings = &live.effective.tunables;
    let listing = live.lists.check(&comment);
    let block = listing.blocked.as_ref().map(|b| b.0);
    let scores = block
        .is_none()
        .then(|| pipeline.classifier.score(&comment).scores);
    let reader = crate::readers::ReaderId::parse("reader", &c.reader).ok();
    let now = jiff::Timestamp::now().as_millisecond();
    let seen = decide::Seen {
        premoderated: live.articles.premoderation(&c.article_id, now).is_some(),
        reader: reader.map_or(crate::readers::Effect::None, |r| {
            settings.readers.directory.effect(&r, now)
        }),
        ..decide::Seen::default()
    };
    let d = decide::decide_with(
        scores,
        &settings.thresholds,
        &pipeline.bots,
        seen,
        block,
        false,
    );
    let codes = d.rules.iter().map(|r| r.as_str().to_owned()).collect();
    let (spam, toxic) = scores.map_or((0.0, 0.0), |s| (s.spam, s.toxic));
    Some((d.outcome, codes, spam, toxic))
}
