//! Runtime settings and statistics in Redis. The settings are one hash (the overrides as JSON,
//! and their version); an update is one script that checks the version, writes, appends an
//! audit record and publishes the new version, so every instance re-reads at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RedisStore, Tally, classify, entry_text};
use crate::settings::Stored;
use crate::store::StoreError;

/// Updates the settings. KEYS: settings hash, audit stream. ARGV: expected version, new
/// settings (JSON), new version, channel, then audit fields and values. Returns {'ok'} or
/// {'stale', current version}.
pub(super) const UPDATE: &str = r#"
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return {'stale', tostring(current)} end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'doc', ARGV[2])
local audit = {}
for k = 5, #ARGV do audit[#audit + 1] = ARGV[k] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '10000', '*', unpack(audit))
redis.call('PUBLISH', ARGV[4], ARGV[3])
return {'ok'}
"#;

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

impl RedisStore {
    /// The channel settings updates are announced on.
    pub fn settings_channel(&self) -> String {
        self.key("settings:changed")
    }

    /// The stored runtime settings (version 0 and none before the first update).
    pub async fn load_settings(&self) -> Result<Stored, StoreError> {
        let doc: Option<String> = redis::cmd("HGET")
            .arg(self.key("settings"))
            .arg("doc")
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        match doc {
            None => Ok(Stored::default()),
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("stored settings: {e}"))),
        }
    }

    /// Replaces the settings at `expected` version with `next`, recording `audit`. Returns
    /// `Ok(None)` when written, `Ok(Some(current))` when the settings are at another version.
    pub async fn update_settings(
        &self,
        expected: u64,
        next: &Stored,
        audit: &Audit,
    ) -> Result<Option<u64>, StoreError> {
        let doc = serde_json::to_string(next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let changes = serde_json::to_string(&audit.changes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let answer: Vec<String> = self
            .scripts
            .update_settings
            .key(self.key("settings"))
            .key(self.key("settings:audit"))
            .arg(expected)
            .arg(doc)
            .arg(next.version)
            .arg(self.settings_channel())
            .arg("version")
            .arg(audit.version)
            .arg("by")
            .arg(&audit.by)
            .arg("at")
            .arg(audit.at_ms)
            .arg("note")
            .arg(&audit.note)
            .arg("changes")
            .arg(changes)
            .invoke_async(&mut self.connection())
            .await
            .map_err(classify)?;
        match answer.first().map(String::as_str) {
            Some("ok") => Ok(None),
            Some("stale") => Ok(Some(
                answer.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
            )),
            other => Err(StoreError::Corrupt(format!(
                "settings script answered {other:?}"
            ))),
        }
    }

    /// The latest `count` audit records, newest first.
    pub async fn settings_audit(&self, count: usize) -> Result<Vec<Audit>, StoreError> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.key("settings:audit"))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        reply
            .ids
            .iter()
            .map(|entry| {
                let text = |name: &str| entry_text(entry, name);
                Ok(Audit {
                    version: text("version").parse().unwrap_or(0),
                    by: text("by"),
                    at_ms: text("at").parse().unwrap_or(0),
                    note: text("note"),
                    changes: serde_json::from_str(&text("changes"))
                        .map_err(|e| StoreError::Corrupt(format!("audit record: {e}")))?,
                })
            })
            .collect()
    }

    /// A subscription to settings announcements.
    pub async fn subscribe_settings(&self) -> Result<redis::aio::PubSub, StoreError> {
        let mut pubsub = self.client.get_async_pubsub().await.map_err(classify)?;
        pubsub
            .subscribe(self.settings_channel())
            .await
            .map_err(classify)?;
        Ok(pubsub)
    }

    /// Tallies of the last hour and day (submissions by outcome, shadow findings, moderators'
    /// decisions) and the queues now, in two round trips.
    pub async fn stats(&self, now_ms: i64, consumer_group: &str) -> Result<Stats, StoreError> {
        let mut pipe = redis::pipe();
        for m in 0..60 {
            pipe.hgetall(self.tally_key(Tally::Minute, now_ms - m * 60_000));
        }
        for h in 0..24 {
            pipe.hgetall(self.tally_key(Tally::Hour, now_ms - h * 3_600_000));
        }
        pipe.zcard(self.key("flagged"));
        let mut replies: Vec<redis::Value> = pipe
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        let flagged: u64 =
            redis::from_redis_value(replies.pop().unwrap_or(redis::Value::Nil)).unwrap_or(0);
        let mut stats = Stats {
            flagged,
            ..Stats::default()
        };
        for (k, reply) in replies.into_iter().enumerate() {
            let counts: BTreeMap<String, u64> = redis::from_redis_value(reply).unwrap_or_default();
            let target = if k < 60 {
                &mut stats.last_hour
            } else {
                &mut stats.last_day
            };
            for (name, n) in counts {
                *target.entry(name).or_default() += n;
            }
        }
        stats.accepted_unread = self.unread(consumer_group).await?;
        Ok(stats)
    }

    /// Comments waiting for a moderator, and accepted ones the portal has not read.
    pub async fn queue_depths(&self, consumer_group: &str) -> Result<(u64, u64), StoreError> {
        let flagged: u64 = redis::cmd("ZCARD")
            .arg(self.key("flagged"))
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        Ok((flagged, self.unread(consumer_group).await?))
    }

    /// Entries of the accepted stream the consumer group has not read (its lag); the whole
    /// stream's length when Redis does not know the lag.
    async fn unread(&self, group: &str) -> Result<u64, StoreError> {
        let groups: redis::RedisResult<Vec<std::collections::HashMap<String, redis::Value>>> =
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(self.key("accepted"))
                .query_async(&mut self.connection())
                .await;
        let groups = match groups {
            Ok(g) => g,
            // No stream yet.
            Err(e) if e.code() == Some("ERR") => return Ok(0),
            Err(e) => return Err(classify(e)),
        };
        let lag = groups
            .iter()
            .find(|g| {
                g.get("name")
                    .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                    .as_deref()
                    == Some(group)
            })
            .and_then(|g| g.get("lag"))
            .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok());
        match lag {
            Some(lag) => Ok(lag),
            None => redis::cmd("XLEN")
                .arg(self.key("accepted"))
                .query_async(&mut self.connection())
                .await
                .map_err(classify),
        }
    }
}
