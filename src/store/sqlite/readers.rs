//! Readers in SQLite ([`ReaderStore`]): a reader's comments are found by the `reader` column's
//! index; the key readers' ids are made with is kept in `meta`.

use async_trait::async_trait;
use rusqlite::params;

use super::submissions::{COMMENT_COLUMNS, read_comment};
use super::{SqliteStore, unavailable};
use crate::readers::{ReaderId, ReaderStore};
use crate::secret::Secret;
use crate::store::{StoreError, StoredComment};

#[async_trait]
impl ReaderStore for SqliteStore {
    async fn reader_comments(
        &self,
        reader: &ReaderId,
        limit: usize,
    ) -> Result<Vec<StoredComment>, StoreError> {
        let reader = reader.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.transaction(move |tx| {
            let mut select = tx
                .prepare_cached(&format!(
                    "SELECT {COMMENT_COLUMNS} FROM comments WHERE reader = ?1
                     ORDER BY created_at DESC, id DESC LIMIT ?2"
                ))
                .map_err(unavailable)?;
            let rows = select
                .query_map(params![reader, limit], read_comment)
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn reader_key(&self, candidate: &Secret) -> Result<Secret, StoreError> {
        let candidate = candidate.expose().to_owned();
        self.transaction(move |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('reader_key', ?1)",
                params![candidate],
            )
            .map_err(unavailable)?;
            tx.query_row(
                "SELECT value FROM meta WHERE name = 'reader_key'",
                [],
                |r| r.get::<_, String>(0),
            )
            .map(Secret::new)
            .map_err(unavailable)
        })
        .await
    }
}
