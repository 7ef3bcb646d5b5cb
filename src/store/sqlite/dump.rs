//! Everything the embedded store keeps that outlives a request, read out in one snapshot for
//! `moderation store copy` (moving a portal to Redis and several instances).

use rusqlite::Connection;

use super::{SqliteStore, unavailable};
use crate::store::StoreError;

/// One table's rows, each as its columns' names and values in text.
pub type Rows = Vec<Vec<(String, Option<String>)>>;

/// The embedded store's contents.
#[derive(Debug, Default)]
pub struct Dump {
    /// Comments, every column.
    pub comments: Rows,
    /// The flagged queue (`comment_id`, `arrived_ms`, `article_id`).
    pub flagged: Rows,
    /// The queue's reason index (`comment_id`, `code`, `arrived_ms`).
    pub flagged_reasons: Rows,
    /// History events (`comment_id`, `event`), oldest first.
    pub history: Rows,
    /// Stream entries (`stream`, `fields` as JSON), oldest first.
    pub streams: Rows,
    /// Authors' and addresses' counts.
    pub source_counts: Rows,
    /// Answers kept for retries.
    pub idempotency: Rows,
    /// Readers who reported comments.
    pub reporters: Rows,
    /// The runtime settings (`version`, `doc`).
    pub settings: Rows,
    /// The settings audit, oldest first.
    pub settings_audit: Rows,
    /// What the store keeps about itself (`name`, `value`): the readers' key.
    pub meta: Rows,
}

fn rows(tx: &Connection, sql: &str) -> Result<Rows, StoreError> {
    let mut statement = tx.prepare(sql).map_err(unavailable)?;
    let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let out = statement
        .query_map([], |r| {
            let mut row = Vec::with_capacity(names.len());
            for (k, name) in names.iter().enumerate() {
                let value: rusqlite::types::Value = r.get(k)?;
                let text = match value {
                    rusqlite::types::Value::Null => None,
                    rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                    rusqlite::types::Value::Real(f) => Some(f.to_string()),
                    rusqlite::types::Value::Text(t) => Some(t),
                    rusqlite::types::Value::Blob(b) => Some(String::from_utf8_lossy(&b).into()),
                };
                row.push((name.clone(), text));
            }
            Ok(row)
        })
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    Ok(out)
}

impl SqliteStore {
    /// Reads everything in one transaction (a consistent snapshot).
    pub async fn dump(&self) -> Result<Dump, StoreError> {
        self.transaction(|tx| {
            Ok(Dump {
                comments: rows(tx, "SELECT * FROM comments")?,
                flagged: rows(tx, "SELECT comment_id, arrived_ms, article_id FROM flagged")?,
                flagged_reasons: rows(tx, "SELECT comment_id, code, arrived_ms FROM flagged_reasons")?,
                history: rows(tx, "SELECT comment_id, event FROM history ORDER BY seq")?,
                streams: rows(tx, "SELECT stream, fields FROM streams ORDER BY seq")?,
                source_counts: rows(tx, "SELECT key, accepted, rejected, expires_ms FROM source_counts")?,
                idempotency: rows(tx, "SELECT * FROM idempotency")?,
                reporters: rows(tx, "SELECT comment_id, reporter, expires_ms FROM reporters")?,
                settings: rows(tx, "SELECT version, doc FROM settings")?,
                settings_audit: rows(tx, "SELECT version, by_whom, at_ms, note, changes FROM settings_audit ORDER BY seq")?,
                meta: rows(tx, "SELECT name, value FROM meta")?,
            })
        })
        .await
    }
}
