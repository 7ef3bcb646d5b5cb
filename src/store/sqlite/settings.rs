//! Runtime settings in SQLite ([`SettingsStore`]): the settings document and its version in one
//! row, the audit as a table, announcements within the process (the embedded store serves one
//! instance), statistics from the tallies and the queues.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, exec, unavailable};
use crate::settings::store::{Announcements, SettingsStore};
use crate::settings::{Audit, QueueDepths, Stats, Stored};
use crate::store::StoreError;

type Tx<'a> = rusqlite::Transaction<'a>;

fn load(tx: &Tx<'_>) -> Result<Stored, StoreError> {
    let doc: Option<String> = tx
        .query_row("SELECT doc FROM settings WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(unavailable)?;
    match doc {
        None => Ok(Stored::default()),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("stored settings: {e}"))),
    }
}

fn update(
    tx: &Tx<'_>,
    expected: u64,
    next: &Stored,
    audit: &Audit,
) -> Result<Option<u64>, StoreError> {
    let current: i64 = tx
        .query_row("SELECT version FROM settings WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(unavailable)?
        .unwrap_or(0);
    if current as u64 != expected {
        return Ok(Some(current as u64));
    }
    let doc = serde_json::to_string(next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let changes =
        serde_json::to_string(&audit.changes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    exec(
        tx,
        "INSERT INTO settings (id, version, doc) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, doc = excluded.doc",
        params![next.version as i64, doc],
    )
    .map_err(unavailable)?;
    exec(
        tx,
        "INSERT INTO settings_audit (version, by_whom, at_ms, note, changes)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            audit.version as i64,
            audit.by,
            audit.at_ms,
            audit.note,
            changes
        ],
    )
    .map_err(unavailable)?;
    Ok(None)
}

fn audit(tx: &Tx<'_>, count: usize) -> Result<Vec<Audit>, StoreError> {
    let mut statement = tx
        .prepare_cached(
            "SELECT version, by_whom, at_ms, note, changes FROM settings_audit
             ORDER BY seq DESC LIMIT ?1",
        )
        .map_err(unavailable)?;
    let rows: Vec<(i64, String, i64, String, String)> = statement
        .query_map(params![count as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|(version, by, at_ms, note, changes)| {
            Ok(Audit {
                version: version as u64,
                by,
                at_ms,
                note,
                changes: serde_json::from_str(&changes)
                    .map_err(|e| StoreError::Corrupt(format!("audit record: {e}")))?,
            })
        })
        .collect()
}

fn stats(tx: &Tx<'_>, now: i64) -> Result<Stats, StoreError> {
    let mut stats = Stats::default();
    for (span, slot_ms, slots, target) in [
        ("m", 60_000, 60, &mut stats.last_hour),
        ("h", 3_600_000, 24, &mut stats.last_day),
    ] {
        let newest = now.div_euclid(slot_ms);
        let mut statement = tx
            .prepare_cached(
                "SELECT name, sum(count) FROM tallies WHERE span = ?1 AND slot > ?2 AND slot <= ?3
                 GROUP BY name",
            )
            .map_err(unavailable)?;
        let rows: Vec<(String, i64)> = statement
            .query_map(params![span, newest - slots, newest], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(unavailable)?
            .collect::<Result<_, _>>()
            .map_err(unavailable)?;
        for (name, count) in rows {
            target.insert(name, u64::try_from(count).unwrap_or(0));
        }
    }
    let depths = depths(tx)?;
    stats.flagged = depths.flagged;
    stats.accepted_unread = depths.unread;
    Ok(stats)
}

fn depths(tx: &Tx<'_>) -> Result<QueueDepths, StoreError> {
    let count = |sql: &str| -> Result<u64, StoreError> {
        tx.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(unavailable)
    };
    Ok(QueueDepths {
        flagged: count("SELECT count(*) FROM flagged")?,
        // No consumer reads the embedded store's accepted stream yet: all of it is unread.
        unread: count("SELECT count(*) FROM streams WHERE stream = 'accepted'")?,
        ..QueueDepths::default()
    })
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn load_settings(&self) -> Result<Stored, StoreError> {
        self.transaction(load).await
    }

    async fn update_settings(
        &self,
        expected: u64,
        next: &Stored,
        audit: &Audit,
    ) -> Result<Option<u64>, StoreError> {
        let (next, record) = (next.clone(), audit.clone());
        let version = next.version;
        let stale = self
            .transaction(move |tx| update(tx, expected, &next, &record))
            .await?;
        if stale.is_none() {
            self.announce(version);
        }
        Ok(stale)
    }

    async fn settings_audit(&self, count: usize) -> Result<Vec<Audit>, StoreError> {
        self.transaction(move |tx| audit(tx, count)).await
    }

    async fn announcements(&self) -> Result<Announcements, StoreError> {
        use tokio_stream::StreamExt;
        let versions =
            tokio_stream::wrappers::BroadcastStream::new(self.subscribe()).filter_map(|v| v.ok());
        Ok(Box::pin(versions))
    }

    async fn stats(&self, now_ms: i64, _consumer_group: &str) -> Result<Stats, StoreError> {
        self.transaction(move |tx| stats(tx, now_ms)).await
    }

    async fn queue_depths(&self, _consumer_group: &str) -> Result<QueueDepths, StoreError> {
        self.transaction(depths).await
    }
}
