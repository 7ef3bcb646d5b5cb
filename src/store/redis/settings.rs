//! Runtime settings and statistics in Redis. The settings are one hash (the overrides as JSON,
//! and their version); an update is one script that checks the version, writes, appends an
//! audit record and publishes the new version, so every instance re-reads at once.

use std::collections::{BTreeMap, HashMap};

use super::{RedisStore, Tally, classify, entry_text};
use crate::settings::store::{Announcements, SettingsStore};
use crate::settings::{Audit, QueueDepths, Stats, Stored};
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

impl RedisStore {
    /// The channel settings updates are announced on.
    pub fn settings_channel(&self) -> String {
        self.key("settings:changed")
    }
}

#[async_trait::async_trait]
impl SettingsStore for RedisStore {
    /// The stored runtime settings (version 0 and none before the first update).
    async fn load_settings(&self) -> Result<Stored, StoreError> {
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
    async fn update_settings(
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
    async fn settings_audit(&self, count: usize) -> Result<Vec<Audit>, StoreError> {
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

    async fn announcements(&self) -> Result<Announcements, StoreError> {
        use tokio_stream::StreamExt;
        let messages = self.subscribe(&self.settings_channel()).await?;
        let versions = messages.map(|message| message.get_payload::<u64>().unwrap_or(0));
        Ok(Box::pin(versions))
    }

    /// Tallies of the last hour and day (submissions by outcome, shadow findings, moderators'
    /// decisions) and the queues now, in two round trips.
    async fn stats(&self, now_ms: i64, consumer_group: &str) -> Result<Stats, StoreError> {
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
        stats.accepted_unread = self.feed_state(consumer_group).await?.unread;
        Ok(stats)
    }

    /// How deep the queues are now: see [`QueueDepths`].
    async fn queue_depths(&self, consumer_group: &str) -> Result<QueueDepths, StoreError> {
        let flagged: u64 = redis::cmd("ZCARD")
            .arg(self.key("flagged"))
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        let feed = self.feed_state(consumer_group).await?;
        Ok(QueueDepths { flagged, ..feed })
    }
}

impl RedisStore {
    /// The portal's consumer group on the accepted stream: what it has not read, what it read
    /// and has not acknowledged, and what was trimmed before it was read.
    async fn feed_state(&self, group: &str) -> Result<QueueDepths, StoreError> {
        let stream = self.key("accepted");
        let mut pipe = redis::pipe();
        pipe.cmd("XINFO").arg("STREAM").arg(&stream);
        pipe.cmd("XINFO").arg("GROUPS").arg(&stream);
        pipe.cmd("XPENDING").arg(&stream).arg(group);
        pipe.cmd("TIME");
        type Info = HashMap<String, redis::Value>;
        type Answer = (Info, Vec<Info>, redis::Value, (String, String));
        let answer: redis::RedisResult<Answer> = pipe.query_async(&mut self.connection()).await;
        let (info, groups, pending, time) = match answer {
            Ok(a) => a,
            // No stream (or no group) yet: nothing is waiting.
            Err(e) if matches!(e.code(), Some("ERR" | "NOGROUP")) => {
                return Ok(QueueDepths::default());
            }
            Err(e) => return Err(classify(e)),
        };
        let number = |m: &Info, k: &str| {
            m.get(k)
                .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
        };
        let length = number(&info, "length").unwrap_or(0);
        let added = number(&info, "entries-added").unwrap_or(length);
        let group = groups.iter().find(|g| {
            g.get("name")
                .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                .as_deref()
                == Some(group)
        });
        let read = group.and_then(|g| number(g, "entries-read")).unwrap_or(0);
        // Redis does not always know the lag (after deletions); the whole stream is then the
        // honest upper bound.
        let unread = group.and_then(|g| number(g, "lag")).unwrap_or(length);
        // Entries ever removed from the stream's head, less those the group read before.
        let trimmed_unread = added.saturating_sub(length).saturating_sub(read);
        // XPENDING's summary: count, smallest id, greatest id, consumers.
        let (pending_count, oldest) = match pending {
            redis::Value::Array(items) => (
                items
                    .first()
                    .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
                    .unwrap_or(0),
                items
                    .get(1)
                    .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok()),
            ),
            _ => (0, None),
        };
        let now_ms =
            time.0.parse::<u64>().unwrap_or(0) * 1000 + time.1.parse::<u64>().unwrap_or(0) / 1000;
        let oldest_pending_ms = oldest
            .and_then(|id| id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()))
            .map_or(0, |ms| now_ms.saturating_sub(ms));
        Ok(QueueDepths {
            flagged: 0,
            unread,
            pending: pending_count,
            oldest_pending_ms,
            trimmed_unread,
        })
    }
}
