//! The portal's feed in SQLite ([`FeedStore`]): the `accepted` and `removed` streams share one
//! sequence, so events come in the order they happened; each consumer group has a position and
//! a table of events delivered and not yet acknowledged.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::submissions::millis;
use super::{SqliteStore, exec, now_ms, unavailable};
use crate::feed::{Event, EventKind, FeedStore, Name};
use crate::store::StoreError;

fn event(seq: i64, stream: &str, fields: &str) -> Result<Event, StoreError> {
    let v: serde_json::Value = serde_json::from_str(fields)
        .map_err(|e| StoreError::Corrupt(format!("feed entry {seq}: {e}")))?;
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    Ok(Event {
        cursor: seq.to_string(),
        kind: if stream == "removed" {
            EventKind::Removed
        } else {
            EventKind::Published
        },
        comment_id: text("id"),
        article_id: text("article_id"),
        parent_id: text("parent_id"),
        author_name: text("author_name"),
        body: text("body"),
        created_at_ms: text("created_at").parse().unwrap_or(0),
    })
}

fn entry(tx: &Connection, seq: i64) -> Result<Option<Event>, StoreError> {
    let row: Option<(String, String)> = tx
        .query_row(
            "SELECT stream, fields FROM streams WHERE seq = ?1",
            params![seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(unavailable)?;
    row.map(|(stream, fields)| event(seq, &stream, &fields))
        .transpose()
}

fn read(
    tx: &Connection,
    group: &str,
    consumer: &str,
    count: usize,
    visibility: Duration,
) -> Result<Vec<Event>, StoreError> {
    let now = now_ms();
    exec(
        tx,
        "INSERT OR IGNORE INTO feed_groups (name, last_seq) VALUES (?1, 0)",
        params![group],
    )
    .map_err(unavailable)?;
    let mut out = Vec::new();
    // Delivered too long ago and never acknowledged: again, oldest first.
    let stale: Vec<i64> = tx
        .prepare_cached(
            "SELECT seq FROM feed_pending WHERE name = ?1 AND delivered_ms <= ?2
             ORDER BY seq LIMIT ?3",
        )
        .map_err(unavailable)?
        .query_map(
            params![group, now - millis(visibility), count as i64],
            |r| r.get(0),
        )
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    for seq in stale {
        match entry(tx, seq)? {
            Some(e) => {
                exec(
                    tx,
                    "UPDATE feed_pending SET consumer = ?3, delivered_ms = ?4
                     WHERE name = ?1 AND seq = ?2",
                    params![group, seq, consumer, now],
                )
                .map_err(unavailable)?;
                out.push(e);
            }
            // Trimmed meanwhile: nothing left to deliver.
            None => {
                exec(
                    tx,
                    "DELETE FROM feed_pending WHERE name = ?1 AND seq = ?2",
                    params![group, seq],
                )
                .map_err(unavailable)?;
            }
        }
    }
    let last: i64 = tx
        .query_row(
            "SELECT last_seq FROM feed_groups WHERE name = ?1",
            params![group],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    let fresh: Vec<(i64, String, String)> = tx
        .prepare_cached(
            "SELECT seq, stream, fields FROM streams
             WHERE seq > ?1 AND stream IN ('accepted', 'removed') ORDER BY seq LIMIT ?2",
        )
        .map_err(unavailable)?
        .query_map(params![last, count.saturating_sub(out.len()) as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    for (seq, stream, fields) in fresh {
        exec(
            tx,
            "INSERT OR REPLACE INTO feed_pending (name, seq, consumer, delivered_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![group, seq, consumer, now],
        )
        .map_err(unavailable)?;
        exec(
            tx,
            "UPDATE feed_groups SET last_seq = ?2 WHERE name = ?1",
            params![group, seq],
        )
        .map_err(unavailable)?;
        out.push(event(seq, &stream, &fields)?);
    }
    Ok(out)
}

#[async_trait]
impl FeedStore for SqliteStore {
    async fn read(
        &self,
        group: &Name,
        consumer: &Name,
        count: usize,
        visibility: Duration,
    ) -> Result<Vec<Event>, StoreError> {
        let (group, consumer) = (group.as_str().to_owned(), consumer.as_str().to_owned());
        self.transaction(move |tx| read(tx, &group, &consumer, count, visibility))
            .await
    }

    async fn ack(&self, group: &Name, cursors: &[String]) -> Result<u64, StoreError> {
        let group = group.as_str().to_owned();
        let seqs: Vec<i64> = cursors.iter().filter_map(|c| c.parse().ok()).collect();
        self.transaction(move |tx| {
            let mut acked = 0;
            for seq in seqs {
                acked += exec(
                    tx,
                    "DELETE FROM feed_pending WHERE name = ?1 AND seq = ?2",
                    params![group, seq],
                )
                .map_err(unavailable)? as u64;
            }
            Ok(acked)
        })
        .await
    }
}
