//! The embedded backend: one SQLite file (rusqlite, SQLite compiled in), for a portal that runs
//! one instance and wants nothing else installed. WAL mode, `synchronous = FULL` (an answer
//! given after a commit survives power loss), a schema versioned by `user_version` and migrated
//! at start, and a lock file so that a second process is refused: the file serves one
//! instance; several need Redis.
//!
//! Every port is implemented in a file of its own beside this one; each operation is one
//! transaction that applies the same pure rule the Redis scripts apply.

mod captcha;
mod dump;
mod feed;
mod limits;
mod readers;
mod review;
mod settings;
mod submissions;

pub use dump::{Dump, Rows};
pub use submissions::Retention;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema, one migration per version (`PRAGMA user_version` says how many ran).
const MIGRATIONS: &[&str] = &[
    // 1: rate-limit counters and CAPTCHA challenges.
    r#"
    CREATE TABLE counters (
        key TEXT PRIMARY KEY,
        tat_us INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE captcha_images (
        nonce TEXT PRIMARY KEY,
        answer TEXT NOT NULL,
        holder TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE captcha_wrong (
        network TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE pow_claims (
        challenge TEXT PRIMARY KEY,
        claimant TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT;
    "#,
    // 2: comments, their answers for retries, history, the queues and streams, counts.
    r#"
    CREATE TABLE comments (
        id TEXT PRIMARY KEY,
        article_id TEXT NOT NULL,
        article_title TEXT,
        parent_id TEXT,
        author_name TEXT NOT NULL,
        author_email TEXT NOT NULL,
        body TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        state TEXT NOT NULL,
        spam REAL NOT NULL,
        toxic REAL NOT NULL,
        reasons TEXT NOT NULL,
        model_version TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL,
        honeypot_filled INTEGER NOT NULL,
        explanation TEXT NOT NULL,
        claimed_by TEXT NOT NULL DEFAULT '',
        claim_until INTEGER NOT NULL DEFAULT 0,
        reports TEXT NOT NULL DEFAULT '[]',
        report_count INTEGER NOT NULL DEFAULT 0,
        reported INTEGER NOT NULL DEFAULT 0,
        decided_by TEXT NOT NULL DEFAULT '',
        expires_ms INTEGER
    ) STRICT;
    CREATE INDEX comments_expiry ON comments (expires_ms) WHERE expires_ms IS NOT NULL;
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        receipt TEXT NOT NULL,
        comment_id TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        comment_id TEXT NOT NULL,
        event TEXT NOT NULL
    ) STRICT;
    CREATE INDEX history_by_comment ON history (comment_id, seq);
    CREATE TABLE flagged (
        comment_id TEXT PRIMARY KEY,
        arrived_ms INTEGER NOT NULL,
        article_id TEXT NOT NULL
    ) STRICT;
    CREATE INDEX flagged_by_arrival ON flagged (arrived_ms, comment_id);
    CREATE INDEX flagged_by_article ON flagged (article_id, arrived_ms, comment_id);
    CREATE TABLE flagged_reasons (
        comment_id TEXT NOT NULL,
        code TEXT NOT NULL,
        arrived_ms INTEGER NOT NULL,
        PRIMARY KEY (comment_id, code)
    ) STRICT;
    CREATE INDEX flagged_by_reason ON flagged_reasons (code, arrived_ms, comment_id);
    CREATE TABLE streams (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stream TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        fields TEXT NOT NULL
    ) STRICT;
    CREATE INDEX streams_by_name ON streams (stream, seq);
    CREATE TABLE source_counts (
        key TEXT PRIMARY KEY,
        accepted INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        expires_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE tallies (
        span TEXT NOT NULL,
        slot INTEGER NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (span, slot, name)
    ) STRICT;
    "#,
    // 3: readers' reports, runtime settings and their audit.
    r#"
    CREATE TABLE reporters (
        comment_id TEXT NOT NULL,
        reporter TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (comment_id, reporter)
    ) STRICT;
    CREATE TABLE report_counts (
        reporter TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
    ) STRICT;
    CREATE TABLE settings_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        version INTEGER NOT NULL,
        by_whom TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        note TEXT NOT NULL,
        changes TEXT NOT NULL
    ) STRICT;
    "#,
    // 4: the portal's feed: each consumer group's position and its pending events.
    r#"
    CREATE TABLE feed_groups (
        name TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE feed_pending (
        name TEXT NOT NULL,
        seq INTEGER NOT NULL,
        consumer TEXT NOT NULL,
        delivered_ms INTEGER NOT NULL,
        PRIMARY KEY (name, seq)
    ) STRICT;
    CREATE INDEX feed_pending_by_age ON feed_pending (name, delivered_ms);
    "#,
    // 5: readers: each comment's reader, their index, and the key their ids are made with.
    r#"
    ALTER TABLE comments ADD COLUMN reader TEXT NOT NULL DEFAULT '';
    CREATE INDEX comments_by_reader ON comments (reader, created_at) WHERE reader != '';
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    "#,
];

/// Why the store could not be opened: said in one line, with the file's name.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process has the file.
    #[error(
        "{0} is in use by another process: the embedded store serves one instance (run several on Redis)"
    )]
    Locked(PathBuf),
    /// The file is not a store of ours, or is damaged.
    #[error("{0} cannot be read as a moderation store: {1}")]
    Damaged(PathBuf, String),
    /// The file was written by a newer version of the service.
    #[error(
        "{path} has schema version {found}, newer than this build's {known}: refusing to open it (run the newer service, or restore a copy)"
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The file or its directory cannot be created or opened.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

struct Inner {
    /// Where jobs go to the writer thread, which owns the connection.
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
    /// Settings versions announced to this process's watchers.
    announcements: tokio::sync::broadcast::Sender<u64>,
    path: PathBuf,
    retention: Retention,
    /// Held for as long as the store is open: another process's lock attempt fails.
    _lock: File,
}

/// The embedded store (cheap to clone).
#[derive(Clone)]
pub struct SqliteStore(Arc<Inner>);

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.0.path)
            .finish_non_exhaustive()
    }
}

/// Unix milliseconds now (the embedded store's clock: one instance, one clock).
pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl SqliteStore {
    /// Opens (creating it and its directory on first start) the store at `path`, migrating its
    /// schema; refuses a file another process holds, a damaged one and a newer one.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_with(path, Retention::default())
    }

    /// [`SqliteStore::open`], keeping records for `retention`.
    pub fn open_with(path: &Path, retention: Retention) -> Result<Self, OpenError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| OpenError::Io(dir.to_owned(), e))?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| OpenError::Io(lock_path.clone(), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::Locked(path.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(OpenError::Io(lock_path, e)),
        }
        let damaged = |e: rusqlite::Error| OpenError::Damaged(path.to_owned(), e.to_string());
        let mut connection = Connection::open(path).map_err(damaged)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(damaged)?;
        migrate(&mut connection, path)?;
        // Room for every statement the writer runs, so none is prepared twice.
        connection.set_prepared_statement_cache_capacity(128);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(connection, queue))
            .map_err(|e| OpenError::Io(path.to_owned(), e))?;
        Ok(SqliteStore(Arc::new(Inner {
            jobs: Mutex::new(jobs),
            announcements: tokio::sync::broadcast::channel(16).0,
            path: path.to_owned(),
            retention,
            _lock: lock,
        })))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Tells this process's settings watchers that `version` is stored.
    pub(crate) fn announce(&self, version: u64) {
        // Nobody listening is fine: the periodic re-read catches up.
        let _ = self.0.announcements.send(version);
    }

    /// A subscription to [`SqliteStore::announce`].
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<u64> {
        self.0.announcements.subscribe()
    }

    /// Deletes what has outlived its retention: expired comments (decided ones: held comments
    /// never expire) with their history, answers for retries, counters, challenges and claims,
    /// stream entries past their stream's retention and tallies older than a day. Returns how
    /// many rows went. The service runs it every minute ([`SqliteStore::keep_trimmed`]).
    pub async fn trim(&self, now_ms: i64) -> Result<usize, StoreError> {
        let keep = *self.retention();
        self.transaction(move |tx| {
            let mut gone = 0;
            let mut run = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<(), StoreError> {
                gone += exec(tx, sql, p).map_err(unavailable)?;
                Ok(())
            };
            run(
                "DELETE FROM history WHERE comment_id IN
                   (SELECT id FROM comments WHERE expires_ms IS NOT NULL AND expires_ms <= ?1)",
                &[&now_ms],
            )?;
            for table in [
                "comments",
                "idempotency",
                "counters",
                "captcha_images",
                "captcha_wrong",
                "pow_claims",
                "reporters",
                "report_counts",
                "source_counts",
            ] {
                run(
                    &format!(
                        "DELETE FROM {table} WHERE expires_ms IS NOT NULL AND expires_ms <= ?1"
                    ),
                    &[&now_ms],
                )?;
            }
            for (stream, retention) in [
                ("accepted", keep.accepted),
                ("removed", keep.accepted),
                ("rejected", keep.rejected),
                ("feedback", keep.feedback),
            ] {
                let cut = now_ms - submissions::millis(retention);
                run(
                    "DELETE FROM streams WHERE stream = ?1 AND at_ms < ?2",
                    &[&stream, &cut],
                )?;
            }
            let hour = now_ms.div_euclid(3_600_000);
            run(
                "DELETE FROM tallies WHERE (span = 'h' AND slot < ?1) OR (span = 'm' AND slot < ?2)",
                &[&(hour - 26), &((hour - 26) * 60)],
            )?;
            Ok(gone)
        })
        .await
    }

    /// Trims every `every` until the task is dropped.
    pub async fn keep_trimmed(self, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match self.trim(now_ms()).await {
                Ok(0) => {}
                Ok(gone) => tracing::debug!(gone, "trimmed the embedded store"),
                Err(e) => tracing::warn!(error = %e, "trimming the embedded store failed"),
            }
        }
    }

    /// How long records are kept.
    pub fn retention(&self) -> &Retention {
        &self.0.retention
    }

    /// Runs `work` atomically, off the async workers, and answers once it is durable: `work`
    /// runs in a savepoint of the writer's current batch (rolled back alone if it fails), and
    /// its result is delivered after the batch commits.
    pub(crate) async fn transaction<T, E>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |tx| {
            let result = work(tx);
            let kept = result.is_ok();
            let deliver: Delivery = Box::new(move |committed: Result<(), String>| {
                let result = match committed {
                    Ok(()) => result,
                    Err(why) => Err(E::from(StoreError::Unavailable(why))),
                };
                let _ = reply.send(result);
            });
            (kept, deliver)
        });
        let sent = self
            .0
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        if sent.is_err() {
            return Err(E::from(StoreError::Unavailable(
                "the embedded store's writer stopped".into(),
            )));
        }
        answer.await.unwrap_or_else(|_| {
            Err(E::from(StoreError::Unavailable(
                "the embedded store could not run the request".into(),
            )))
        })
    }
}

/// What the writer runs: a piece of work in a savepoint, returning whether to keep it and how to
/// deliver its result once the batch's commit is known.
type Job = Box<dyn FnOnce(&rusqlite::Transaction<'_>) -> (bool, Delivery) + Send>;

/// Delivers a job's result: `Ok(())` when its batch committed, the reason otherwise.
type Delivery = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The most jobs one batch takes.
const BATCH: usize = 256;

/// Group commit: one thread owns the connection, takes every job waiting, runs each in its own
/// savepoint of one transaction and commits once, so concurrent submissions share one fsync
/// (`synchronous = FULL`) instead of paying one each. Written here because it is a loop over
/// rusqlite's own transaction; no crate does this for SQLite.
fn writer(mut connection: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut connection, batch);
    }
}

/// Runs a batch in one transaction and delivers every result once it committed (or failed). A
/// job that cannot be run is dropped, and its caller told the store is unavailable.
fn run_batch(connection: &mut Connection, batch: Vec<Job>) {
    let Ok(tx) = connection.transaction() else {
        return;
    };
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut broken: Option<String> = None;
    for job in batch {
        if broken.is_some() {
            continue;
        }
        if let Err(e) = exec(&tx, "SAVEPOINT job", []) {
            broken = Some(e.to_string());
            continue;
        }
        let (keep, deliver) = job(&tx);
        deliveries.push(deliver);
        let ended = if keep {
            exec(&tx, "RELEASE job", [])
        } else {
            exec(&tx, "ROLLBACK TO job", []).and_then(|_| exec(&tx, "RELEASE job", []))
        };
        if let Err(e) = ended {
            broken = Some(e.to_string());
        }
    }
    let committed = match broken {
        Some(why) => {
            let _ = tx.rollback();
            Err(why)
        }
        None => tx.commit().map_err(|e| e.to_string()),
    };
    for deliver in deliveries {
        deliver(committed.clone());
    }
}

/// Reads one row with a statement prepared once per connection and cached
/// (`Connection::query_row` prepares it again every time).
pub(crate) fn row<T>(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    connection.prepare_cached(sql)?.query_row(params, read)
}

/// Runs one statement, prepared once per connection and cached (`Connection::execute`
/// prepares it again every time).
pub(crate) fn exec(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    connection.prepare_cached(sql)?.execute(params)
}

/// A SQLite error as the ports see it: a full disk, a locked or unreadable file are
/// transient (the portal retries); broken data is not.
pub(crate) fn unavailable(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &error {
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            StoreError::Corrupt(error.to_string())
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Unavailable(error.to_string()),
    }
}

/// Refuses a file whose schema is not this build's (for readers, which migrate nothing).
pub(super) fn check_schema(connection: &Connection, path: &Path) -> Result<(), OpenError> {
    let damaged = |e: rusqlite::Error| OpenError::Damaged(path.to_owned(), e.to_string());
    let known = MIGRATIONS.len() as i64;
    let found: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(damaged)?;
    match found {
        _ if found > known => Err(OpenError::Newer {
            path: path.to_owned(),
            found,
            known,
        }),
        _ if found < known => Err(OpenError::Damaged(
            path.to_owned(),
            format!(
                "schema version {found}, older than this build's {known}: start the service once to migrate it"
            ),
        )),
        _ => Ok(()),
    }
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let damaged = |e: rusqlite::Error| OpenError::Damaged(path.to_owned(), e.to_string());
    let known = MIGRATIONS.len() as i64;
    let found: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(damaged)?;
    if found > known {
        return Err(OpenError::Newer {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (k, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = connection.transaction().map_err(damaged)?;
        tx.execute_batch(migration).map_err(damaged)?;
        tx.pragma_update(None, "user_version", k as i64 + 1)
            .map_err(damaged)?;
        tx.commit().map_err(damaged)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_a_damaged_file_and_a_newer_schema_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/moderation.db");
        let first = SqliteStore::open(&path).expect("created on first start");
        let second = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(second, OpenError::Locked(_)), "{second}");
        assert!(second.to_string().contains("moderation.db"), "{second}");
        drop(first);
        SqliteStore::open(&path).expect("free again once closed");

        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not a database, it is a note".repeat(200)).unwrap();
        let damaged = SqliteStore::open(&junk).unwrap_err();
        assert!(matches!(damaged, OpenError::Damaged(..)), "{damaged}");
        assert!(damaged.to_string().contains("junk.db"), "{damaged}");

        let newer = dir.path().join("newer.db");
        let c = Connection::open(&newer).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
        drop(c);
        let refused = SqliteStore::open(&newer).unwrap_err();
        assert!(
            matches!(refused, OpenError::Newer { found: 999, .. }),
            "{refused}"
        );
    }
}
