//! The portal's feed in Redis ([`FeedStore`]): the `accepted` and `removed` streams, read by a
//! consumer group created on both at its first read (from the oldest entry kept); entries
//! delivered and not acknowledged within the visibility timeout are claimed again
//! (`XAUTOCLAIM`). Events of the two streams are merged in the order of their ids, which are
//! Redis' clock.

use std::time::Duration;

use async_trait::async_trait;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::{RedisStore, classify, entry_text};
use crate::feed::{Event, EventKind, FeedStore, Name};
use crate::store::StoreError;

/// The feed's streams, with the letter their cursors start with.
const STREAMS: [(&str, &str, EventKind); 2] = [
    ("accepted", "a", EventKind::Published),
    ("removed", "r", EventKind::Removed),
];

/// An entry id as a pair of numbers, to order entries of two streams.
fn order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn event(letter: &str, kind: EventKind, entry: &StreamId) -> Event {
    let text = |name: &str| entry_text(entry, name);
    Event {
        cursor: format!("{letter}:{}", entry.id),
        kind,
        comment_id: text("id"),
        article_id: text("article_id"),
        parent_id: text("parent_id"),
        author_name: text("author_name"),
        body: text("body"),
        created_at_ms: text("created_at").parse().unwrap_or(0),
    }
}

impl RedisStore {
    /// Creates `group` on both streams if it is not there yet.
    async fn ensure_feed_group(&self, group: &str) -> Result<(), StoreError> {
        for (stream, _, _) in STREAMS {
            let made: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.key(stream))
                .arg(group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut self.connection())
                .await;
            match made {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl FeedStore for RedisStore {
    async fn read(
        &self,
        group: &Name,
        consumer: &Name,
        count: usize,
        visibility: Duration,
    ) -> Result<Vec<Event>, StoreError> {
        self.ensure_feed_group(group.as_str()).await?;
        let idle = u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX);
        let mut events = Vec::new();
        for (stream, letter, kind) in STREAMS {
            let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(self.key(stream))
                .arg(group.as_str())
                .arg(consumer.as_str())
                .arg(idle)
                .arg("0-0")
                .arg("COUNT")
                .arg(count)
                .query_async(&mut self.connection())
                .await
                .map_err(classify)?;
            events.extend(claimed.claimed.iter().map(|e| event(letter, kind, e)));
        }
        events.sort_by_key(|e| order(e.cursor.split_once(':').map_or("", |(_, id)| id)));
        events.truncate(count);
        let room = count.saturating_sub(events.len());
        if room > 0 {
            let fresh: StreamReadReply = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group.as_str())
                .arg(consumer.as_str())
                .arg("COUNT")
                .arg(room)
                .arg("STREAMS")
                .arg(self.key("accepted"))
                .arg(self.key("removed"))
                .arg(">")
                .arg(">")
                .query_async(&mut self.connection())
                .await
                .map_err(classify)?;
            let mut new = Vec::new();
            for key in &fresh.keys {
                let (letter, kind) = if key.key.ends_with("removed") {
                    ("r", EventKind::Removed)
                } else {
                    ("a", EventKind::Published)
                };
                new.extend(
                    key.ids
                        .iter()
                        .map(|e| (order(&e.id), event(letter, kind, e))),
                );
            }
            new.sort_by_key(|(o, _)| *o);
            events.extend(new.into_iter().map(|(_, e)| e));
        }
        Ok(events)
    }

    async fn ack(&self, group: &Name, cursors: &[String]) -> Result<u64, StoreError> {
        let mut acked = 0;
        for (stream, letter, _) in STREAMS {
            let ids: Vec<&str> = cursors
                .iter()
                .filter_map(|c| c.split_once(':'))
                .filter(|(l, _)| *l == letter)
                .map(|(_, id)| id)
                // Only entry ids (Redis refuses the whole command for one that is not).
                .filter(|id| {
                    id.split_once('-')
                        .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok())
                })
                .collect();
            if ids.is_empty() {
                continue;
            }
            let n: u64 = redis::cmd("XACK")
                .arg(self.key(stream))
                .arg(group.as_str())
                .arg(&ids)
                .query_async(&mut self.connection())
                .await
                .map_err(classify)?;
            acked += n;
        }
        Ok(acked)
    }
}
