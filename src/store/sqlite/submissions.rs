//! Submissions in SQLite ([`Store`]): a submission is stored in one transaction, as the Redis
//! backend's script stores it: the answer for retries, the comment, its queue by outcome (the
//! accepted or rejected stream, or the flagged queue and its indexes), its history, the counts
//! of its author and address, and the tallies of the minute and hour.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{SqliteStore, exec, now_ms, row, unavailable};
use crate::captcha::store::{Claim, Claimed};
use crate::comment::{CommentId, IdempotencyKey};
use crate::decide::{Outcome, Reason};
use crate::rate_limit::cluster::{Cell, Charged};
use crate::review::HistoryEvent;
use crate::store::{
    Admission, Admitted, Receipt, SHADOW_CAPTCHA_REFUSED, Store, StoreError, StoredComment,
    Submission, counts_key,
};

/// How long the embedded store keeps what it keeps; the same settings and defaults as the Redis
/// backend's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// A submission's answer, for retries.
    pub idempotency: Duration,
    /// Accepted stream entries.
    pub accepted: Duration,
    /// Rejected stream entries.
    pub rejected: Duration,
    /// Decided comments, their history and counts.
    pub comments: Duration,
    /// Moderators' decisions as labeled examples.
    pub feedback: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        let day = 24 * 3600;
        Retention {
            idempotency: Duration::from_secs(day),
            accepted: Duration::from_secs(7 * day),
            rejected: Duration::from_secs(30 * day),
            comments: Duration::from_secs(90 * day),
            feedback: Duration::from_secs(365 * day),
        }
    }
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

/// Appends an entry to one of the streams the portal and the audit read (`accepted`,
/// `rejected`, `removed`, `feedback`).
pub(super) fn append(
    tx: &rusqlite::Transaction<'_>,
    stream: &str,
    at_ms: i64,
    fields: &serde_json::Value,
) -> Result<(), StoreError> {
    append_text(tx, stream, at_ms, &fields.to_string())
}

/// [`append`] with the fields already written as JSON.
fn append_text(
    tx: &rusqlite::Transaction<'_>,
    stream: &str,
    at_ms: i64,
    fields: &str,
) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT INTO streams (stream, at_ms, fields) VALUES (?1, ?2, ?3)",
        params![stream, at_ms, fields],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// Adds to the tallies of the minute and the hour `at_ms` falls in.
pub(super) fn tally(
    tx: &rusqlite::Transaction<'_>,
    at_ms: i64,
    names: &[&str],
) -> Result<(), StoreError> {
    for (span, slot) in [
        ("m", at_ms.div_euclid(60_000)),
        ("h", at_ms.div_euclid(3_600_000)),
    ] {
        for name in names {
            exec(
                tx,
                "INSERT INTO tallies (span, slot, name, count) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (span, slot, name) DO UPDATE SET count = count + 1",
                params![span, slot, name],
            )
            .map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Adds `accepted` or `rejected` (by `delta`) to the counts of a comment's author and
/// address.
pub(super) fn count_sources(
    tx: &rusqlite::Transaction<'_>,
    c: &StoredComment,
    outcome: Outcome,
    delta: i64,
    expires_ms: i64,
) -> Result<(), StoreError> {
    let reader = counts_key(&c.reader, &c.author_email);
    count_keys(
        tx,
        &source_keys(&reader, &c.client_ip),
        outcome,
        delta,
        expires_ms,
    )
}

/// The keys an author's (by reader id) and an address's counts are kept under.
fn source_keys(reader: &str, ip: &str) -> [String; 2] {
    [format!("author:{reader}"), format!("ip:{ip}")]
}

/// [`count_sources`] under keys made by [`source_keys`].
fn count_keys(
    tx: &rusqlite::Transaction<'_>,
    keys: &[String; 2],
    outcome: Outcome,
    delta: i64,
    expires_ms: i64,
) -> Result<(), StoreError> {
    let sql = match outcome {
        Outcome::Accepted => {
            "INSERT INTO source_counts (key, accepted, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET accepted = accepted + ?2, expires_ms = ?3"
        }
        Outcome::Rejected => {
            "INSERT INTO source_counts (key, rejected, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET rejected = rejected + ?2, expires_ms = ?3"
        }
        Outcome::PendingReview => return Ok(()),
    };
    for key in keys {
        exec(tx, sql, params![key, delta, expires_ms]).map_err(unavailable)?;
    }
    Ok(())
}

/// Appends an event to a comment's history.
pub(super) fn record(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    event: &HistoryEvent,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(event).map_err(corrupt("history event"))?;
    record_text(tx, id, &json)
}

/// [`record`] with the event already written as JSON.
fn record_text(tx: &rusqlite::Transaction<'_>, id: &str, event: &str) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT INTO history (comment_id, event) VALUES (?1, ?2)",
        params![id, event],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// The columns [`read_comment`] reads, in its order.
pub(super) const COMMENT_COLUMNS: &str = "id, article_id, article_title, parent_id, author_name, \
     author_email, client_ip, body, state, spam, toxic, reasons, model_version, created_at, \
     updated_at, reported, reader";

/// How many columns [`COMMENT_COLUMNS`] names (a query selecting more reads them from here on).
pub(super) const COMMENT_COLUMN_COUNT: usize = 17;

/// A comment row (selected with [`COMMENT_COLUMNS`]) as the domain reads it.
pub(super) fn read_comment(row: &Row<'_>) -> rusqlite::Result<StoredComment> {
    let text = |k: usize| row.get::<_, String>(k);
    let conversion = |k: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(k, rusqlite::types::Type::Text, e.into())
    };
    let id: String = text(0)?;
    let reasons: Vec<Reason> =
        serde_json::from_str(&text(11)?).map_err(|e| conversion(11, e.to_string()))?;
    Ok(StoredComment {
        id: CommentId::parse("id", &id).map_err(|v| conversion(0, v.description))?,
        article_id: text(1)?,
        article_title: row.get(2)?,
        parent_id: row.get(3)?,
        author_name: text(4)?,
        author_email: text(5)?,
        client_ip: text(6)?,
        body: text(7)?,
        state: text(8)?.parse().map_err(|e| conversion(8, e))?,
        spam: row.get::<_, f64>(9)? as f32,
        toxic: row.get::<_, f64>(10)? as f32,
        reasons,
        model_version: text(12)?,
        created_at_ms: row.get(13)?,
        updated_at_ms: row.get(14)?,
        published: row.get::<_, i64>(15)? == 1 || text(8)? == "accepted",
        reader: text(16)?,
    })
}

/// An owned copy of a submission and its admission, to move into the store's thread.
struct Owned {
    comment: crate::comment::NewComment,
    receipt: Receipt,
    fingerprint: String,
    created_at_ms: i64,
    explanation: String,
    tallies: Vec<String>,
    cells: Vec<Cell>,
    claim: Option<Claim>,
    claim_shadow: bool,
    encoded: Encoded,
}

/// A submission's text forms, written by the caller before its job reaches the writer thread:
/// every write waits for that one thread, so it does only the writing.
struct Encoded {
    id: String,
    parent: Option<String>,
    ip: String,
    reasons: String,
    /// The stream entry of an accepted or rejected comment.
    entry: Option<String>,
    event: String,
    receipt: String,
    sources: [String; 2],
    reader: String,
}

impl Encoded {
    fn of(
        c: &crate::comment::NewComment,
        reader: &crate::readers::ReaderId,
        r: &Receipt,
        at: i64,
    ) -> Result<Self, StoreError> {
        let id = r.comment_id.to_string();
        let reader = reader.to_string();
        let parent = c.parent_id.map(|p| p.to_string());
        let ip = c.client_ip.to_string();
        let reasons = serde_json::to_string(&r.reasons).map_err(corrupt("reasons"))?;
        // What a stream consumer needs to publish (accepted) or audit (rejected) the comment.
        let mut entry = serde_json::json!({
            "id": id,
            "article_id": c.article_id.as_str(),
            "parent_id": parent.clone().unwrap_or_default(),
            "author_name": c.author_name.as_str(),
            "body": c.body.as_str(),
            "created_at": at.to_string(),
        });
        if r.outcome == Outcome::Rejected {
            entry["spam"] = r.spam.to_string().into();
            entry["toxic"] = r.toxic.to_string().into();
            entry["reasons"] = reasons.clone().into();
            entry["model_version"] = r.model_version.clone().into();
        }
        let event = HistoryEvent {
            at_ms: at,
            actor: "service".into(),
            action: "submitted".into(),
            state: r.outcome,
            note: String::new(),
        };
        Ok(Encoded {
            sources: source_keys(&reader, &ip),
            reader,
            entry: (r.outcome != Outcome::PendingReview).then(|| entry.to_string()),
            event: serde_json::to_string(&event).map_err(corrupt("history event"))?,
            receipt: serde_json::to_string(r).map_err(corrupt("answer"))?,
            id,
            parent,
            ip,
            reasons,
        })
    }
}

/// The whole submission in its transaction: the retry check, the rate-limit cells, the CAPTCHA
/// claim, then the comment ([`Store::submit`]).
fn submit(
    tx: &rusqlite::Transaction<'_>,
    s: &mut Owned,
    keep: &Retention,
) -> Result<Admitted, StoreError> {
    let key = s.comment.idempotency_key.as_str();
    if let Some(first) = receipt_of(tx, key, &s.fingerprint, now_ms())? {
        return Ok(Admitted::Replayed(first));
    }
    let charged = match s.cells.as_slice() {
        [] => None,
        cells => Some(super::limits::charge(tx, cells)?),
    };
    if let Some(refused @ Charged::Refused { .. }) = charged {
        return Ok(Admitted::Limited(refused));
    }
    let claimed = match &s.claim {
        Some(claim) => Some(super::captcha::claim(tx, claim, key)?),
        None => None,
    };
    match claimed {
        Some(Claimed::Claimed) | None => {}
        Some(_) if s.claim_shadow => s.tallies.push(SHADOW_CAPTCHA_REFUSED.to_owned()),
        Some(refused) => {
            return Ok(Admitted::Refused {
                charged,
                claimed: refused,
            });
        }
    }
    save(tx, s, keep)?;
    Ok(Admitted::Stored { charged, claimed })
}

fn receipt_of(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    fingerprint: &str,
    now: i64,
) -> Result<Option<Receipt>, StoreError> {
    let stored: Option<(String, String)> = row(
        tx,
        "SELECT fingerprint, receipt FROM idempotency WHERE key = ?1 AND expires_ms > ?2",
        params![key, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(unavailable)?;
    match stored {
        Some((f, r)) if f == fingerprint => serde_json::from_str(&r)
            .map(Some)
            .map_err(corrupt("stored answer")),
        Some(_) => Err(StoreError::KeyReused),
        None => Ok(None),
    }
}

/// Stores the comment, its queue, history, tallies, counts and answer.
fn save(tx: &rusqlite::Transaction<'_>, s: &Owned, keep: &Retention) -> Result<(), StoreError> {
    let (c, r, e) = (&s.comment, &s.receipt, &s.encoded);
    let now = now_ms();
    let at = s.created_at_ms;
    let decided_expiry = (r.outcome != Outcome::PendingReview).then(|| now + millis(keep.comments));
    exec(
        tx,
        "INSERT INTO comments (id, article_id, article_title, parent_id, author_name, author_email,
           body, client_ip, user_agent, idempotency_key, state, spam, toxic, reasons,
           model_version, created_at, updated_at, version, honeypot_filled, explanation,
           expires_ms, reader)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16, 1,
           ?17, ?18, ?19, ?20)",
        params![
            e.id,
            c.article_id.as_str(),
            c.article_title.as_ref().map(|t| t.as_str()),
            e.parent,
            c.author_name.as_str(),
            c.author_email.as_str(),
            c.body.as_str(),
            e.ip,
            c.user_agent.as_str(),
            c.idempotency_key.as_str(),
            r.outcome.as_str(),
            f64::from(r.spam),
            f64::from(r.toxic),
            e.reasons,
            r.model_version,
            at,
            c.honeypot_filled,
            s.explanation,
            decided_expiry,
            e.reader,
        ],
    )
    .map_err(unavailable)?;
    match (r.outcome, &e.entry) {
        (Outcome::Accepted, Some(entry)) => append_text(tx, "accepted", now, entry)?,
        (Outcome::Rejected, Some(entry)) => append_text(tx, "rejected", now, entry)?,
        _ => queue(tx, &e.id, at, c.article_id.as_str(), &r.reasons)?,
    }
    record_text(tx, &e.id, &e.event)?;
    let mut names: Vec<&str> = vec![r.outcome.as_str()];
    names.extend(s.tallies.iter().map(String::as_str));
    tally(tx, at, &names)?;
    count_keys(tx, &e.sources, r.outcome, 1, now + millis(keep.comments))?;
    exec(
        tx,
        "INSERT OR REPLACE INTO idempotency (key, fingerprint, receipt, comment_id, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            c.idempotency_key.as_str(),
            s.fingerprint,
            e.receipt,
            e.id,
            now + millis(keep.idempotency)
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// Puts a comment in the flagged queue, under its article and each of its reasons.
pub(super) fn queue(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    arrived_ms: i64,
    article: &str,
    reasons: &[Reason],
) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT OR REPLACE INTO flagged (comment_id, arrived_ms, article_id) VALUES (?1, ?2, ?3)",
        params![id, arrived_ms, article],
    )
    .map_err(unavailable)?;
    for reason in reasons {
        exec(
            tx,
            "INSERT OR REPLACE INTO flagged_reasons (comment_id, code, arrived_ms)
             VALUES (?1, ?2, ?3)",
            params![id, reason.code, arrived_ms],
        )
        .map_err(unavailable)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn receipt(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Option<Receipt>, StoreError> {
        let (key, fingerprint) = (key.as_str().to_owned(), fingerprint.to_owned());
        self.transaction(move |tx| receipt_of(tx, &key, &fingerprint, now_ms()))
            .await
    }

    async fn submit(
        &self,
        admission: Admission<'_>,
        submission: Submission<'_>,
    ) -> Result<Admitted, StoreError> {
        let mut owned = Owned {
            comment: submission.comment.clone(),
            receipt: submission.receipt.clone(),
            fingerprint: submission.fingerprint.to_owned(),
            created_at_ms: submission.created_at_ms,
            explanation: serde_json::to_string(submission.explanation)
                .map_err(corrupt("explanation"))?,
            tallies: submission.tallies.iter().map(|t| (*t).to_owned()).collect(),
            cells: admission.cells.to_vec(),
            claim: admission.claim.cloned(),
            claim_shadow: admission.claim_shadow,
            encoded: Encoded::of(
                submission.comment,
                submission.reader,
                submission.receipt,
                submission.created_at_ms,
            )?,
        };
        let keep = *self.retention();
        self.transaction(move |tx| submit(tx, &mut owned, &keep))
            .await
    }

    async fn comment(&self, id: CommentId) -> Result<Option<StoredComment>, StoreError> {
        self.transaction(move |tx| {
            tx.query_row(
                &format!("SELECT {COMMENT_COLUMNS} FROM comments WHERE id = ?1"),
                params![id.to_string()],
                read_comment,
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.query_row("SELECT count(*) FROM flagged", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }
}
