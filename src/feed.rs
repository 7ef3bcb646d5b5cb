//! The portal's feed: what it must publish (accepted comments) and take down (published comments
//! a moderator removed after a report), in order, to each consumer group at least once. An
//! event not acknowledged within the visibility timeout is delivered again (to any consumer of
//! the group); the comment id is the key to drop a repeat by. Each backend keeps the feed its
//! own way behind [`FeedStore`]: Redis as streams with consumer groups, the embedded store as a
//! table with each group's position and pending events.

use std::time::Duration;

use async_trait::async_trait;

use crate::comment::Violation;
use crate::store::StoreError;

/// What happened to a comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Publish it.
    Published,
    /// Take it down.
    Removed,
}

/// One event of the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Where it is in the feed: what [`FeedStore::ack`] takes.
    pub cursor: String,
    /// What happened.
    pub kind: EventKind,
    /// The comment.
    pub comment_id: String,
    /// Its article.
    pub article_id: String,
    /// The comment it replies to (empty for a top-level one); empty for removals.
    pub parent_id: String,
    /// The reader's name; empty for removals.
    pub author_name: String,
    /// The text; empty for removals.
    pub body: String,
    /// When it was submitted (Unix ms); 0 for removals.
    pub created_at_ms: i64,
}

/// A consumer group's or a consumer's name: 1–64 letters, digits and `. _ -`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Parses `field`.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, Violation> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(Name(raw.to_owned()))
        } else {
            Err(Violation::new(
                field,
                "must be 1 to 64 letters, digits and . _ -",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the feed is kept.
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Up to `count` events for `consumer` of `group`: first those delivered more than
    /// `visibility` ago and not acknowledged, then new ones in order. A group seen for the
    /// first time starts at the oldest event kept.
    async fn read(
        &self,
        group: &Name,
        consumer: &Name,
        count: usize,
        visibility: Duration,
    ) -> Result<Vec<Event>, StoreError>;

    /// Acknowledges events of `group` by cursor; returns how many were pending. Unknown
    /// cursors are ignored (acknowledging twice is harmless).
    async fn ack(&self, group: &Name, cursors: &[String]) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(Name::parse("group", "portal-web_1.a").is_ok());
        for bad in ["", "có dấu", "a b", &"x".repeat(65)] {
            assert_eq!(Name::parse("group", bad).unwrap_err().field, "group");
        }
    }
}
