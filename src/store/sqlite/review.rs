//! The review queue in SQLite ([`ReviewStore`]): pages read through the flagged queue's indexes
//! (by arrival, by article, by reason), claims as leases on the comment's row, decisions and
//! reports as one transaction each, applying [`crate::review::rules`].

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::submissions::{
    COMMENT_COLUMN_COUNT, COMMENT_COLUMNS, append, count_sources, millis, queue, read_comment,
    record, tally,
};
use super::{SqliteStore, exec, unavailable};
use crate::comment::CommentId;
use crate::decide::{Outcome, Reason};
use crate::review::rules::{self, NotClaimable, ReportEffect};
use crate::review::{
    Claim, Cursor, Explained, Feedback, FlaggedItem, HistoryEvent, Moderator, Query, Record,
    Report, ReportLimits, ReviewError, ReviewStore, Verdict,
};
use crate::store::{StoreError, StoredComment, counts_key};

type Tx<'a> = rusqlite::Transaction<'a>;

/// What the queue keeps of a comment besides what [`StoredComment`] has.
struct QueueFields {
    version: u64,
    claimed_by: String,
    claim_until: i64,
    reports: Vec<String>,
    report_count: u32,
    reported: bool,
    explanation: Vec<Explained>,
}

fn load(tx: &Tx<'_>, id: &str) -> Result<Option<(StoredComment, QueueFields)>, StoreError> {
    tx.query_row(
        &format!(
            "SELECT {COMMENT_COLUMNS}, version, claimed_by, claim_until, reports, report_count,
               reported, explanation FROM comments WHERE id = ?1"
        ),
        params![id],
        |r| {
            let comment = read_comment(r)?;
            let json = |k: usize| -> rusqlite::Result<String> { r.get(k) };
            Ok((
                comment,
                QueueFields {
                    version: r.get::<_, i64>(COMMENT_COLUMN_COUNT)? as u64,
                    claimed_by: r.get(COMMENT_COLUMN_COUNT + 1)?,
                    claim_until: r.get(COMMENT_COLUMN_COUNT + 2)?,
                    reports: serde_json::from_str(&json(COMMENT_COLUMN_COUNT + 3)?)
                        .unwrap_or_default(),
                    report_count: r.get::<_, i64>(COMMENT_COLUMN_COUNT + 4)? as u32,
                    reported: r.get::<_, i64>(COMMENT_COLUMN_COUNT + 5)? == 1,
                    explanation: serde_json::from_str(&json(COMMENT_COLUMN_COUNT + 6)?)
                        .unwrap_or_default(),
                },
            ))
        },
    )
    .optional()
    .map_err(unavailable)
}

fn counts(tx: &Tx<'_>, key: &str) -> Result<Record, StoreError> {
    let found: Option<(i64, i64)> = tx
        .query_row(
            "SELECT accepted, rejected FROM source_counts WHERE key = ?1",
            params![key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(unavailable)?;
    let (accepted, rejected) = found.unwrap_or((0, 0));
    Ok(Record {
        accepted: u32::try_from(accepted).unwrap_or(0),
        rejected: u32::try_from(rejected).unwrap_or(0),
    })
}

fn item(
    tx: &Tx<'_>,
    id: &str,
    arrived_ms: i64,
    now: i64,
) -> Result<Option<FlaggedItem>, StoreError> {
    let Some((comment, q)) = load(tx, id)? else {
        return Ok(None);
    };
    let author = counts(
        tx,
        &format!(
            "author:{}",
            counts_key(&comment.reader, &comment.author_email)
        ),
    )?;
    let ip = counts(tx, &format!("ip:{}", comment.client_ip))?;
    let claim = (!q.claimed_by.is_empty() && q.claim_until > now).then(|| Claim {
        moderator: q.claimed_by.clone(),
        until_ms: q.claim_until,
    });
    Ok(Some(FlaggedItem {
        comment,
        version: q.version,
        explanation: q.explanation,
        claim,
        author,
        ip,
        reports: q.reports,
        report_count: q.report_count,
        arrived_ms,
    }))
}

fn page(
    tx: &Tx<'_>,
    query: &Query,
    now: i64,
) -> Result<(Vec<FlaggedItem>, Option<Cursor>), StoreError> {
    let age = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
    let newest = query.min_age.map_or(i64::MAX, |a| now - age(a));
    let oldest = query.max_age.map_or(0, |a| now.saturating_sub(age(a)));
    let (after_ms, after_id) = query.after.map_or((i64::MIN, String::new()), |c| {
        (c.arrived_ms, c.id.to_string())
    });
    let mut sql = String::from("SELECT f.comment_id, f.arrived_ms FROM flagged f");
    // (?6, the reason, is bound either way; unused without a reason filter.)
    if query.reason.is_some() {
        sql.push_str(" JOIN flagged_reasons r ON r.comment_id = f.comment_id AND r.code = ?6");
    }
    sql.push_str(
        " WHERE (?5 IS NULL OR f.article_id = ?5) AND f.arrived_ms BETWEEN ?1 AND ?2
          AND (f.arrived_ms, f.comment_id) > (?3, ?4)
          ORDER BY f.arrived_ms, f.comment_id LIMIT ?7",
    );
    let mut statement = tx.prepare_cached(&sql).map_err(unavailable)?;
    let rows: Vec<(String, i64)> = statement
        .query_map(
            params![
                oldest,
                newest,
                after_ms,
                after_id,
                query.article.as_ref().map(|a| a.as_str()),
                query.reason,
                (query.page_size + 1) as i64,
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    let more = rows.len() > query.page_size;
    let mut items = Vec::with_capacity(query.page_size);
    for (id, arrived) in rows.into_iter().take(query.page_size) {
        if let Some(i) = item(tx, &id, arrived, now)? {
            items.push(i);
        }
    }
    let next = more
        .then(|| {
            items.last().map(|i| Cursor {
                arrived_ms: i.arrived_ms,
                id: i.comment.id,
            })
        })
        .flatten();
    Ok((items, next))
}

fn event(at_ms: i64, actor: &str, action: &str, state: Outcome, note: &str) -> HistoryEvent {
    HistoryEvent {
        at_ms,
        actor: actor.to_owned(),
        action: action.to_owned(),
        state,
        note: note.to_owned(),
    }
}

fn refusal(id: CommentId, why: NotClaimable) -> ReviewError {
    match why {
        NotClaimable::Missing => ReviewError::NotFound(id),
        NotClaimable::NotInReview(state) => ReviewError::NotInReview { id, state },
        NotClaimable::Claimed(moderator) => ReviewError::ClaimedByOther { id, moderator },
    }
}

fn claim(
    tx: &Tx<'_>,
    moderator: &str,
    count: usize,
    ids: &[CommentId],
    until: i64,
    now: i64,
) -> Result<Vec<FlaggedItem>, ReviewError> {
    let explicit = !ids.is_empty();
    let candidates: Vec<String> = if explicit {
        ids.iter().map(CommentId::to_string).collect()
    } else {
        // Unclaimed (or lapsed) held comments, oldest first.
        let mut statement = tx
            .prepare_cached(
                "SELECT f.comment_id FROM flagged f JOIN comments c ON c.id = f.comment_id
                 WHERE c.state = 'pending_review' AND (c.claimed_by = '' OR c.claim_until <= ?1)
                 ORDER BY f.arrived_ms, f.comment_id LIMIT ?2",
            )
            .map_err(unavailable)?;
        statement
            .query_map(params![now, count as i64], |r| r.get(0))
            .map_err(unavailable)?
            .collect::<Result<_, _>>()
            .map_err(unavailable)?
    };
    let mut claimed = Vec::with_capacity(candidates.len());
    for (k, id) in candidates.iter().enumerate() {
        let found = load(tx, id)?;
        let state = found.as_ref().map(|(c, _)| c.state);
        let (by, until_then) = found
            .as_ref()
            .map_or(("", 0), |(_, q)| (q.claimed_by.as_str(), q.claim_until));
        if let Err(why) = rules::claimable(state, by, until_then, moderator, now, explicit) {
            if explicit {
                return Err(refusal(ids[k], why));
            }
            continue;
        }
        claimed.push(id.clone());
    }
    let mut items = Vec::with_capacity(claimed.len());
    for id in &claimed {
        exec(
            tx,
            "UPDATE comments SET claimed_by = ?2, claim_until = ?3 WHERE id = ?1",
            params![id, moderator, until],
        )
        .map_err(unavailable)?;
        record(
            tx,
            id,
            &event(now, moderator, "claimed", Outcome::PendingReview, ""),
        )?;
        if let Some(i) = item(tx, id, 0, now)? {
            items.push(i);
        }
    }
    Ok(items)
}

/// Takes a comment out of the flagged queue and its indexes.
fn unqueue(tx: &Tx<'_>, id: &str) -> Result<(), StoreError> {
    exec(tx, "DELETE FROM flagged WHERE comment_id = ?1", params![id]).map_err(unavailable)?;
    exec(
        tx,
        "DELETE FROM flagged_reasons WHERE comment_id = ?1",
        params![id],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// What a decision needs besides the comment.
struct Deciding<'a> {
    version: u64,
    moderator: &'a str,
    verdict: Verdict,
    note: &'a str,
    now: i64,
}

fn decide(
    tx: &Tx<'_>,
    id: CommentId,
    d: &Deciding<'_>,
    keep: &super::Retention,
) -> Result<(Outcome, u64), ReviewError> {
    let key = id.to_string();
    let (c, q) = load(tx, &key)?.ok_or(ReviewError::NotFound(id))?;
    if c.state != Outcome::PendingReview {
        return Err(ReviewError::NotInReview { id, state: c.state });
    }
    if q.version != d.version {
        return Err(ReviewError::Stale {
            id,
            current: q.version,
            given: d.version,
        });
    }
    if !q.claimed_by.is_empty() && q.claimed_by != d.moderator && q.claim_until > d.now {
        return Err(ReviewError::ClaimedByOther {
            id,
            moderator: q.claimed_by,
        });
    }
    let state = match d.verdict {
        Verdict::Approve => Outcome::Accepted,
        Verdict::Reject(_) => Outcome::Rejected,
    };
    let mut entry = serde_json::json!({
        "id": key,
        "article_id": c.article_id,
        "parent_id": c.parent_id.clone().unwrap_or_default(),
        "author_name": c.author_name,
        "body": c.body,
        "created_at": c.created_at_ms.to_string(),
    });
    let reasons = serde_json::to_string(&c.reasons).unwrap_or_else(|_| "[]".into());
    match (state, q.reported) {
        // A reported comment stayed published while under review: approving keeps it there.
        (Outcome::Accepted, false) => append(tx, "accepted", d.now, &entry)?,
        (Outcome::Accepted, true) => {}
        (_, reported) => {
            entry["spam"] = c.spam.to_string().into();
            entry["toxic"] = c.toxic.to_string().into();
            entry["reasons"] = reasons.into();
            entry["model_version"] = c.model_version.clone().into();
            entry["decided_by"] = d.moderator.into();
            append(tx, "rejected", d.now, &entry)?;
            if reported {
                let removed = serde_json::json!({"id": key, "article_id": c.article_id});
                append(tx, "removed", d.now, &removed)?;
            }
        }
    }
    unqueue(tx, &key)?;
    let verdict = if state == Outcome::Accepted {
        "approved"
    } else {
        "rejected"
    };
    let by = format!("moderator:{}:{verdict}", d.moderator);
    tally(tx, d.now, &[&format!("moderator_{verdict}"), &by])?;
    let version = q.version + 1;
    exec(
        tx,
        "UPDATE comments SET state = ?2, version = ?3, updated_at = ?4, decided_by = ?5,
           claimed_by = '', claim_until = 0, reported = 0, expires_ms = ?6 WHERE id = ?1",
        params![
            key,
            state.as_str(),
            version as i64,
            d.now,
            d.moderator,
            d.now + millis(keep.comments)
        ],
    )
    .map_err(unavailable)?;
    record(tx, &key, &event(d.now, d.moderator, verdict, state, d.note))?;
    for (outcome, delta) in rules::count_changes(q.reported, state) {
        let expires = d.now + millis(keep.comments);
        count_sources(tx, &c, outcome, delta, expires)?;
    }
    let (spam, toxic) = d.verdict.labels(&c.reasons);
    let label = |l: Option<bool>| l.map_or(String::new(), |b| b.to_string());
    let example = serde_json::json!({
        "comment_id": key,
        "text": c.body,
        "spam": label(spam),
        "toxic": label(toxic),
        "lang": rules::language(&c.body),
        "author": c.author_name,
        "context": c.article_title.unwrap_or_default(),
        "decided_at": d.now.to_string(),
        "moderator": d.moderator,
    });
    append(tx, "feedback", d.now, &example)?;
    Ok((state, version))
}

fn report(
    tx: &Tx<'_>,
    r: &Report,
    limits: ReportLimits,
    now: i64,
    keep: &super::Retention,
) -> Result<u64, ReviewError> {
    let id = r.id;
    let key = id.to_string();
    let (c, mut q) = load(tx, &key)?.ok_or(ReviewError::NotFound(id))?;
    let effect = rules::report_effect(c.state, q.reported)
        .map_err(|state| ReviewError::NotPublished { id, state })?;
    let already: bool = tx
        .query_row(
            "SELECT 1 FROM reporters WHERE comment_id = ?1 AND reporter = ?2",
            params![key, r.reporter],
            |_| Ok(()),
        )
        .optional()
        .map_err(unavailable)?
        .is_some();
    if already {
        return Err(ReviewError::AlreadyReported(id));
    }
    let window: Option<(i64, i64)> = tx
        .query_row(
            "SELECT count, expires_ms FROM report_counts WHERE reporter = ?1 AND expires_ms > ?2",
            params![r.reporter, now],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(unavailable)?;
    match window {
        Some((sent, expires)) if sent >= i64::from(limits.per_reader) => {
            let left = u64::try_from((expires - now).max(1)).unwrap_or(1);
            return Err(ReviewError::TooManyReports(
                std::time::Duration::from_millis(left),
            ));
        }
        Some(_) => exec(
            tx,
            "UPDATE report_counts SET count = count + 1 WHERE reporter = ?1",
            params![r.reporter],
        ),
        None => exec(
            tx,
            "INSERT OR REPLACE INTO report_counts (reporter, count, expires_ms) VALUES (?1, 1, ?2)",
            params![r.reporter, now + millis(limits.window).max(1)],
        ),
    }
    .map_err(unavailable)?;
    exec(
        tx,
        "INSERT INTO reporters (comment_id, reporter, expires_ms) VALUES (?1, ?2, ?3)",
        params![key, r.reporter, now + millis(keep.comments)],
    )
    .map_err(unavailable)?;
    q.reports.push(r.reason.clone());
    rules::keep_latest(&mut q.reports, limits.kept);
    let reports = serde_json::to_string(&q.reports).unwrap_or_else(|_| "[]".into());
    let count = i64::from(q.report_count) + 1;
    record(
        tx,
        &key,
        &event(now, "reader", "reported", Outcome::PendingReview, &r.reason),
    )?;
    if effect == ReportEffect::Joins {
        exec(
            tx,
            "UPDATE comments SET reports = ?2, report_count = ?3 WHERE id = ?1",
            params![key, reports, count],
        )
        .map_err(unavailable)?;
        return Ok(q.version);
    }
    let mut reasons = c.reasons.clone();
    if !reasons.iter().any(|x| x.code == crate::review::REPORTED) {
        reasons.push(Reason {
            code: crate::review::REPORTED.into(),
            message: r.reason.clone(),
        });
    }
    let version = q.version + 1;
    exec(
        tx,
        "UPDATE comments SET state = 'pending_review', version = ?2, updated_at = ?3,
           reported = 1, reports = ?4, reasons = ?5, report_count = ?6, expires_ms = NULL
         WHERE id = ?1",
        params![
            key,
            version as i64,
            now,
            reports,
            serde_json::to_string(&reasons).unwrap_or_else(|_| "[]".into()),
            count
        ],
    )
    .map_err(unavailable)?;
    queue(tx, &key, now, &c.article_id, &reasons)?;
    Ok(version)
}

fn feedback(tx: &Tx<'_>, since_ms: i64) -> Result<Vec<Feedback>, StoreError> {
    let mut statement = tx
        .prepare_cached(
            "SELECT fields FROM streams WHERE stream = 'feedback' AND at_ms >= ?1 ORDER BY seq",
        )
        .map_err(unavailable)?;
    let rows: Vec<String> = statement
        .query_map(params![since_ms], |r| r.get(0))
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    rows.iter()
        .map(|json| {
            let v: serde_json::Value = serde_json::from_str(json)
                .map_err(|e| StoreError::Corrupt(format!("feedback record: {e}")))?;
            Ok(Feedback::from_fields(|k| {
                v[k].as_str().unwrap_or_default().to_owned()
            }))
        })
        .collect()
}

impl SqliteStore {
    /// Moderators' decisions since `since_ms` in the store at `path`, read through a read-only
    /// connection of its own: no lock is taken, so it works while the service runs (SQLite's
    /// WAL lets readers in beside the writer) and sees what was committed before it began.
    pub fn read_feedback(path: &std::path::Path, since_ms: i64) -> anyhow::Result<Vec<Feedback>> {
        use anyhow::Context as _;
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let mut connection = rusqlite::Connection::open_with_flags(path, flags)
            .with_context(|| format!("opening {} to read", path.display()))?;
        super::check_schema(&connection, path)?;
        let tx = connection
            .transaction()
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(feedback(&tx, since_ms)?)
    }
}

#[async_trait]
impl ReviewStore for SqliteStore {
    async fn comment(&self, id: CommentId) -> Result<Option<StoredComment>, StoreError> {
        crate::store::Store::comment(self, id).await
    }

    async fn flagged(
        &self,
        query: &Query,
        now_ms: i64,
    ) -> Result<(Vec<FlaggedItem>, Option<Cursor>), StoreError> {
        let query = query.clone();
        self.transaction(move |tx| page(tx, &query, now_ms)).await
    }

    async fn claim(
        &self,
        moderator: &Moderator,
        count: usize,
        ids: &[CommentId],
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<FlaggedItem>, ReviewError> {
        let (moderator, ids) = (moderator.as_str().to_owned(), ids.to_vec());
        self.transaction(move |tx| claim(tx, &moderator, count, &ids, until_ms, now_ms))
            .await
    }

    async fn decide(
        &self,
        id: CommentId,
        version: u64,
        moderator: &Moderator,
        verdict: Verdict,
        note: &str,
        now_ms: i64,
    ) -> Result<(Outcome, u64), ReviewError> {
        let (moderator, note) = (moderator.as_str().to_owned(), note.to_owned());
        let keep = *self.retention();
        self.transaction(move |tx| {
            let d = Deciding {
                version,
                moderator: &moderator,
                verdict,
                note: &note,
                now: now_ms,
            };
            decide(tx, id, &d, &keep)
        })
        .await
    }

    async fn report(
        &self,
        report: &Report,
        limits: ReportLimits,
        now_ms: i64,
    ) -> Result<u64, ReviewError> {
        let (report, keep) = (report.clone(), *self.retention());
        self.transaction(move |tx| self::report(tx, &report, limits, now_ms, &keep))
            .await
    }

    async fn history(&self, id: CommentId) -> Result<Vec<HistoryEvent>, StoreError> {
        self.transaction(move |tx| {
            let mut statement = tx
                .prepare_cached("SELECT event FROM history WHERE comment_id = ?1 ORDER BY seq")
                .map_err(unavailable)?;
            let rows: Vec<String> = statement
                .query_map(params![id.to_string()], |r| r.get(0))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            rows.iter()
                .map(|e| {
                    serde_json::from_str(e)
                        .map_err(|err| StoreError::Corrupt(format!("history of {id}: {err}")))
                })
                .collect()
        })
        .await
    }

    async fn feedback(&self, since_ms: i64) -> Result<Vec<Feedback>, StoreError> {
        self.transaction(move |tx| feedback(tx, since_ms)).await
    }
}

#[async_trait]
impl crate::rescan::PublishedStore for SqliteStore {
    async fn published_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredComment>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.transaction(move |tx| {
            let mut select = tx
                .prepare_cached(&format!(
                    "SELECT {COMMENT_COLUMNS} FROM comments
                     WHERE (state = 'accepted' OR reported = 1) AND created_at >= ?1
                     ORDER BY created_at, id LIMIT ?2"
                ))
                .map_err(unavailable)?;
            let rows = select
                .query_map(params![since_ms, limit], read_comment)
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }
}
