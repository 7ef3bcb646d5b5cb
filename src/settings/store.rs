//! What runtime settings need of a storage backend (the port), and the domain types it speaks:
//! audit records, statistics and the queues' depths.

use std::collections::BTreeMap;
use std::pin::Pin;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_stream::Stream;

use super::Stored;
use crate::store::StoreError;

/// One changed value in an audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditChange {
    /// The key.
    pub key: String,
    /// The value before.
    pub old: String,
    /// The value after.
    pub new: String,
}

/// Who changed the settings, when, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// The version the update made.
    pub version: u64,
    /// Who.
    pub by: String,
    /// When (Unix ms).
    pub at_ms: i64,
    /// Why, if they said.
    pub note: String,
    /// What changed.
    pub changes: Vec<AuditChange>,
}

/// The queues now: what waits for moderators, and the portal's feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Comments waiting for a moderator.
    pub flagged: u64,
    /// Accepted comments the portal's consumer group has not read yet (its lag).
    pub unread: u64,
    /// Entries the group read and has not acknowledged (its pending entries list).
    pub pending: u64,
    /// Age of the oldest of those, in milliseconds (0 when none).
    pub oldest_pending_ms: u64,
    /// Accepted entries trimmed (after `redis.accepted_retention`) before the group read them:
    /// comments the portal never published. Counted over the stream's life.
    pub trimmed_unread: u64,
}

/// Counts over the last hour and day, and the queues now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Name → count over the last 60 minutes.
    pub last_hour: BTreeMap<String, u64>,
    /// Name → count over the last 24 hours.
    pub last_day: BTreeMap<String, u64>,
    /// Comments waiting for a moderator.
    pub flagged: u64,
    /// Accepted comments the portal's consumer group has not read yet.
    pub accepted_unread: u64,
}

/// Versions announced after each update, as they come; ends when the subscription breaks.
pub type Announcements = Pin<Box<dyn Stream<Item = u64> + Send>>;

/// Where runtime settings, their audit and the statistics are kept.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// The stored runtime settings (version 0 and none before the first update).
    async fn load_settings(&self) -> Result<Stored, StoreError>;

    /// Replaces the settings at `expected` version with `next`, recording `audit`, and
    /// announces the new version. `Ok(None)` when written, `Ok(Some(current))` when the
    /// settings are at another version.
    async fn update_settings(
        &self,
        expected: u64,
        next: &Stored,
        audit: &Audit,
    ) -> Result<Option<u64>, StoreError>;

    /// The latest `count` audit records, newest first.
    async fn settings_audit(&self, count: usize) -> Result<Vec<Audit>, StoreError>;

    /// A subscription to the versions announced from now on.
    async fn announcements(&self) -> Result<Announcements, StoreError>;

    /// Tallies of the last hour and day and the queues now.
    async fn stats(&self, now_ms: i64, consumer_group: &str) -> Result<Stats, StoreError>;

    /// How deep the queues are now.
    async fn queue_depths(&self, consumer_group: &str) -> Result<QueueDepths, StoreError>;
}
