//! The rate limiter's counters in SQLite ([`CounterStore`]): one row per bucket key with its
//! theoretical arrival time, every cell of a request tested and charged in one transaction by
//! [`gcra`], all or nothing.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, exec, now_ms, row, unavailable};
use crate::rate_limit::cluster::{Cell, Charged, ClusterError, CounterStore, gcra};
use crate::store::StoreError;

pub(super) fn charge(
    tx: &rusqlite::Transaction<'_>,
    cells: &[Cell],
) -> Result<Charged, StoreError> {
    let now_ms = now_ms();
    let now_us = u64::try_from(now_ms).unwrap_or(0) * 1000;
    let mut refused: Option<(usize, u64)> = None;
    let mut shadow_refusals = Vec::new();
    let mut next = Vec::with_capacity(cells.len());
    for (k, cell) in cells.iter().enumerate() {
        let key = format!("{}:{}", cell.bucket.name(), cell.key);
        let tat: Option<i64> = row(
            tx,
            "SELECT tat_us FROM counters WHERE key = ?1 AND expires_ms > ?2",
            params![key, now_ms],
            |r| r.get(0),
        )
        .optional()
        .map_err(unavailable)?;
        let interval = u64::try_from(cell.interval.as_micros()).unwrap_or(u64::MAX);
        let tat = tat.and_then(|t| u64::try_from(t).ok());
        let (wait, next_tat) = gcra(tat, now_us, interval, cell.burst);
        if wait == 0 {
            next.push((key, next_tat));
        } else if cell.shadow {
            shadow_refusals.push(k);
        } else if refused.is_none_or(|(_, worst)| wait > worst) {
            refused = Some((k, wait));
        }
    }
    if let Some((position, wait)) = refused {
        return Ok(Charged::Refused {
            position,
            wait: Duration::from_micros(wait),
            shadow_refusals,
        });
    }
    for (key, tat) in next {
        // Kept a second past the moment it no longer holds anything back.
        let expires = now_ms + i64::try_from((tat - now_us) / 1000).unwrap_or(i64::MAX / 2) + 1000;
        exec(
            tx,
            "INSERT INTO counters (key, tat_us, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET tat_us = excluded.tat_us, expires_ms = excluded.expires_ms",
            params![key, i64::try_from(tat).unwrap_or(i64::MAX), expires],
        )
        .map_err(unavailable)?;
    }
    Ok(Charged::Admitted { shadow_refusals })
}

#[async_trait]
impl CounterStore for SqliteStore {
    async fn charge(&self, cells: &[Cell]) -> Result<Charged, ClusterError> {
        let cells = cells.to_vec();
        self.transaction(move |tx| charge(tx, &cells))
            .await
            .map_err(|e: StoreError| ClusterError(e.to_string()))
    }
}
