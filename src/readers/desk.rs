//! What moderators do to readers ([`Desk`]): look one up (standing, history), set or lift a
//! standing (an audited settings change every instance picks up), and "ban and reject all":
//! the ban, then each of the reader's waiting comments rejected and each published one taken
//! down. Also where readers' rejections are watched ([`Desk::watch_rejections`]): a reader
//! whose latest decided comments pass `readers.auto_premoderate` is pre-moderated for its
//! period, automatically.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{History, ReaderId, ReaderStore, Status};
use crate::comment::CommentId;
use crate::decide::Outcome;
use crate::review::{Moderator, Queue};
use crate::settings::admin::{Admin, AdminError};
use crate::settings::live::Live;
use crate::store::StoreError;

/// How many of a reader's latest comments a lookup and "reject all" cover.
pub const LATEST: usize = 200;

/// A reader as moderators see them.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Who.
    pub id: ReaderId,
    /// Their standing, if one is set (in force or ended), who set it and when.
    pub status: Option<(Status, String, i64)>,
    /// What their comments became.
    pub history: History,
}

/// What "ban and reject all" did to the reader's comments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Swept {
    /// Waiting comments rejected.
    pub rejected: Vec<CommentId>,
    /// Published comments taken down.
    pub taken_down: Vec<CommentId>,
    /// Comments left as they were, and why (another moderator's claim, a storage failure).
    pub left: Vec<(CommentId, String)>,
}

/// Why a readers' operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The settings could not be changed.
    #[error(transparent)]
    Settings(#[from] AdminError),
    /// Storage failed or was too slow.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Readers' moderation.
pub struct Desk {
    admin: Arc<Admin>,
    live: Arc<Live>,
    queue: Arc<Queue>,
    store: Arc<dyn ReaderStore>,
}

/// Where rejections are announced for [`Desk::watch_rejections`]: the rejected comment's
/// reader. Sending never waits: when the watcher falls behind, a rejection goes unwatched.
#[derive(Clone, Debug)]
pub struct Rejections(tokio::sync::mpsc::Sender<ReaderId>);

impl Rejections {
    /// A sender, and what the watcher reads.
    pub fn new(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<ReaderId>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        (Rejections(tx), rx)
    }

    /// Announces a rejection of a comment by `reader` (an id as stored; none for comments
    /// stored before readers were known).
    pub fn rejected(&self, reader: &str) {
        if let Ok(id) = ReaderId::parse("reader", reader) {
            self.rejected_id(id);
        }
    }

    /// Announces a rejection of a comment by `id`.
    pub fn rejected_id(&self, id: ReaderId) {
        let _ = self.0.try_send(id);
    }
}

async fn within<T, E: From<StoreError>>(
    deadline: Instant,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout_at(deadline.into(), work)
        .await
        .unwrap_or_else(|_| {
            Err(E::from(StoreError::Unavailable(
                "storage did not answer before the deadline".into(),
            )))
        })
}

impl Desk {
    /// Over the settings (`admin`, `live`), the queue and the readers' store.
    pub fn new(
        admin: Arc<Admin>,
        live: Arc<Live>,
        queue: Arc<Queue>,
        store: Arc<dyn ReaderStore>,
    ) -> Self {
        Desk {
            admin,
            live,
            queue,
            store,
        }
    }

    /// A reader's standing and history.
    pub async fn profile(&self, id: ReaderId, deadline: Instant) -> Result<Profile, DeskError> {
        let latest = within(deadline, self.store.reader_comments(&id, LATEST)).await?;
        let snapshot = self.live.snapshot();
        let directory = &snapshot.effective.tunables.readers.directory;
        let status = directory.get(&id).cloned().map(|s| {
            let (by, at) = directory.who(&id).unwrap_or_default();
            (s, by.to_owned(), at)
        });
        Ok(Profile {
            id,
            status,
            history: History::of(latest),
        })
    }

    /// Sets (or with `None`, lifts) a reader's standing as `by`, with `note` in the audit.
    pub async fn set(
        &self,
        id: ReaderId,
        status: Option<&Status>,
        by: &str,
        note: &str,
        deadline: Instant,
    ) -> Result<(), DeskError> {
        within(deadline, self.admin.set_reader(id, status, by, note)).await?;
        Ok(())
    }

    /// Bans a reader, then rejects their waiting comments and takes down their published ones.
    pub async fn ban_and_reject_all(
        &self,
        id: ReaderId,
        status: &Status,
        moderator: &Moderator,
        note: &str,
        deadline: Instant,
    ) -> Result<Swept, DeskError> {
        self.set(id, Some(status), moderator.as_str(), note, deadline)
            .await?;
        let latest = within(deadline, self.store.reader_comments(&id, LATEST)).await?;
        let why = if note.is_empty() {
            format!("the reader is {}", status.standing.as_str())
        } else {
            note.to_owned()
        };
        let mut swept = Swept::default();
        for c in latest {
            let done = match (c.state, c.published) {
                (Outcome::PendingReview, false) => {
                    self.queue
                        .reject_waiting(c.id, moderator, &why, deadline)
                        .await
                }
                (Outcome::Accepted | Outcome::PendingReview, true) => {
                    self.queue.take_down(c.id, moderator, &why, deadline).await
                }
                _ => continue,
            };
            match done {
                Ok(_) if c.published => swept.taken_down.push(c.id),
                Ok(_) => swept.rejected.push(c.id),
                Err(e) => swept.left.push((c.id, e.to_string())),
            }
        }
        Ok(swept)
    }

    /// Pre-moderates readers whose rejections pass `readers.auto_premoderate`, as they are
    /// announced; a reader with a standing of a moderator's is left to it.
    pub async fn watch_rejections(
        self: Arc<Self>,
        mut rejected: tokio::sync::mpsc::Receiver<ReaderId>,
        timeout: Duration,
    ) {
        while let Some(id) = rejected.recv().await {
            if let Err(e) = self.consider(id, Instant::now() + timeout).await {
                tracing::warn!(reader = %id, error = %e, "a reader's rejections were not weighed");
            }
        }
    }

    /// Weighs one reader's latest decided comments.
    async fn consider(&self, id: ReaderId, deadline: Instant) -> Result<(), DeskError> {
        let snapshot = self.live.snapshot();
        let readers = &snapshot.effective.tunables.readers;
        let rule = readers.auto_premoderate;
        let now = jiff::Timestamp::now().as_millisecond();
        if rule.rejections == 0 || readers.directory.in_force(&id, now).is_some() {
            return Ok(());
        }
        // Their latest decided comments are among the latest twice as many (held ones are
        // not decided yet): the read stays short.
        let enough = (rule.of_last as usize * 2).min(LATEST);
        let latest = within(deadline, self.store.reader_comments(&id, enough)).await?;
        let outcomes: Vec<Outcome> = latest.iter().map(|c| c.state).collect();
        if !rule.triggered(&outcomes) {
            return Ok(());
        }
        let status = rule.status(now);
        tracing::info!(reader = %id, "{}", status.reason);
        self.set(id, Some(&status), "service", &status.reason, deadline)
            .await
    }
}
