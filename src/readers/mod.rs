//! Readers: the people behind comments, as a comment desk moderates them. A reader is known by
//! a keyed hash of their canonical e-mail address ([`ReaderId`]; the address itself is never
//! a key or a log line), and has a history (what their comments became) and, when moderators
//! or ops set one, a standing: trusted, pre-moderated, suspended or banned, each with an
//! optional expiry.
//!
//! Standings are runtime settings (`reader.<id>` keys): audited, versioned, and on every
//! instance in memory, so looking one up costs a submission no storage round trip. The rules
//! that use them are here, pure: what a standing does to a submission ([`Directory::refusal`],
//! [`Effect`]), and when a reader's rejections pre-moderate them ([`AutoPremoderation`]).

pub mod desk;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::comment::Violation;
use crate::decide::Outcome;
use crate::secret::Secret;

/// The settings keys of readers' standings start with this (then the reader's id).
pub const KEY_PREFIX: &str = "reader.";

/// The key a reader's standing is stored under.
pub fn status_key(id: &ReaderId) -> String {
    format!("{KEY_PREFIX}{id}")
}

/// `[readers]`: how readers are known and what their history does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderSettings {
    /// Key of the keyed hash readers are known by; the same on every instance. Without one, a
    /// key is made on first start and kept in the store (a stolen store then reveals it: set
    /// one here to keep readers' addresses out of reach of whoever holds a copy).
    pub hash_key: Option<Secret>,
    /// Hold a reader's first comment for a moderator (reason `FIRST_COMMENT`); costs that
    /// submission one storage read.
    pub hold_first_comment: bool,
    /// When a reader's rejections pre-moderate them: `"3 of 10 for 7d"`, or `"off"`.
    pub auto_premoderate: AutoPremoderation,
}

/// A reader's id: the first 16 bytes of HMAC-SHA256 of their canonical e-mail address, in
/// hexadecimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReaderId([u8; 16]);

impl ReaderId {
    /// Parses an id as printed (32 hexadecimal digits), naming `field` when it is not one.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, Violation> {
        let raw = raw.trim();
        let bad = || Violation::new(field, "must be a reader id: 32 hexadecimal digits");
        if raw.len() != 32 || !raw.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0; 16];
        for (k, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&raw[2 * k..2 * k + 2], 16).map_err(|_| bad())?;
        }
        Ok(ReaderId(bytes))
    }
}

impl fmt::Display for ReaderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The key readers' ids are made with. The MAC is keyed once; each id clones the keyed state.
#[derive(Clone)]
pub struct ReaderKey(hmac::Hmac<sha2::Sha256>);

impl fmt::Debug for ReaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReaderKey(***)")
    }
}

impl ReaderKey {
    /// A key from its secret.
    pub fn new(secret: &Secret) -> Self {
        use hmac::KeyInit;
        ReaderKey(
            hmac::Hmac::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC takes a key of any length"),
        )
    }

    /// The id of the reader with this canonical address.
    pub fn id(&self, canonical_email: &str) -> ReaderId {
        use hmac::Mac;
        let mut mac = self.0.clone();
        mac.update(canonical_email.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0; 16];
        first.copy_from_slice(&digest[..16]);
        ReaderId(first)
    }
}

/// The key readers' ids are made with, once known: from the configuration at once, or read
/// from (or first written to) the store when the service starts.
#[derive(Debug, Default)]
pub struct Keyring(std::sync::OnceLock<ReaderKey>);

impl Keyring {
    /// A keyring with the configured key, or empty until [`Keyring::load`].
    pub fn new(configured: Option<&Secret>) -> Self {
        let ring = Keyring::default();
        if let Some(secret) = configured {
            let _ = ring.0.set(ReaderKey::new(secret));
        }
        ring
    }

    /// The key, once known.
    pub fn get(&self) -> Option<&ReaderKey> {
        self.0.get()
    }

    /// Reads the store's key (storing a new one if it has none), unless the key is known.
    pub async fn load(&self, store: &dyn ReaderStore) -> Result<(), crate::store::StoreError> {
        if self.0.get().is_none() {
            let secret = store.reader_key(&new_key()).await?;
            let _ = self.0.set(ReaderKey::new(&secret));
        }
        Ok(())
    }

    /// Loads the key, trying again every `every` until the store answers.
    pub async fn keep_loading(
        self: std::sync::Arc<Self>,
        store: std::sync::Arc<dyn ReaderStore>,
        every: Duration,
    ) {
        while let Err(e) = self.load(store.as_ref()).await {
            tracing::debug!(error = %e, "readers' key not read yet");
            tokio::time::sleep(every).await;
        }
    }
}

/// A new random key, for a store that has none yet.
pub fn new_key() -> Secret {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source");
    Secret::new(crate::hex::hex(&bytes))
}

/// What moderators made of a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Their comments skip review unless the classifier is certain.
    Trusted,
    /// Every comment of theirs waits for a moderator.
    Premoderated,
    /// Their comments are refused until the suspension ends.
    Suspended,
    /// Their comments are refused.
    Banned,
}

impl Standing {
    /// Every standing, as the API lists them.
    pub const ALL: [Standing; 4] = [
        Standing::Trusted,
        Standing::Premoderated,
        Standing::Suspended,
        Standing::Banned,
    ];

    /// Its name in settings, the API and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Trusted => "trusted",
            Standing::Premoderated => "premoderated",
            Standing::Suspended => "suspended",
            Standing::Banned => "banned",
        }
    }

    /// The standing named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Standing::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A reader's standing, until when, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The standing.
    pub standing: Standing,
    /// When it ends (Unix ms); `None`: until changed.
    pub until_ms: Option<i64>,
    /// Why (shown to moderators; a ban's or suspension's reason is sent to the portal).
    pub reason: String,
}

impl Status {
    /// Parses a standing as written in settings: `banned`, `suspended until
    /// 2026-12-08T00:00:00Z`, `premoderated until … because …`, `trusted because …`. A
    /// suspension needs its end.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (rest, reason) = match raw.split_once(" because ") {
            Some((rest, reason)) => (rest, reason.trim()),
            None => (raw, ""),
        };
        let (name, until) = match rest.trim().split_once(" until ") {
            Some((name, until)) => (name.trim(), Some(until.trim())),
            None => (rest.trim(), None),
        };
        let standing = Standing::parse(name).ok_or_else(|| {
            format!("{name:?} is not a standing: trusted, premoderated, suspended or banned")
        })?;
        let until_ms = until
            .map(|u| {
                u.parse::<jiff::Timestamp>()
                    .map(|t| t.as_millisecond())
                    .map_err(|e| format!("{u:?} is not a time (2026-12-08T00:00:00Z): {e}"))
            })
            .transpose()?;
        if standing == Standing::Suspended && until_ms.is_none() {
            return Err("a suspension needs its end: `suspended until <time>`".into());
        }
        if reason.chars().count() > 500 {
            return Err("the reason must be at most 500 characters".into());
        }
        Ok(Status {
            standing,
            until_ms,
            reason: reason.to_owned(),
        })
    }

    /// Whether it is in force at `now_ms`.
    pub fn in_force(&self, now_ms: i64) -> bool {
        self.until_ms.is_none_or(|until| now_ms < until)
    }

    /// The end, as written in settings.
    pub fn until_text(&self) -> Option<String> {
        self.until_ms
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map(|t| t.to_string())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.standing.as_str())?;
        if let Some(until) = self.until_text() {
            write!(f, " until {until}")?;
        }
        if !self.reason.is_empty() {
            write!(f, " because {}", self.reason)?;
        }
        Ok(())
    }
}

/// The reader a request names: by `reader_id`, or by `email` (hashed with `key`).
pub fn named(key: &ReaderKey, reader_id: &str, email: &str) -> Result<ReaderId, Violation> {
    match (reader_id.trim(), email.trim()) {
        ("", "") => Err(Violation::new(
            "reader_id",
            "name the reader: by reader_id or by email",
        )),
        (id, "") => ReaderId::parse("reader_id", id),
        ("", email) => {
            let email = crate::comment::Email::parse(email).map_err(|v| Violation {
                field: "email",
                ..v
            })?;
            Ok(key.id(email.as_str()))
        }
        _ => Err(Violation::new(
            "email",
            "name the reader by reader_id or by email, not both",
        )),
    }
}

/// An end as a moderator writes it: a time (`2026-12-08T00:00:00Z`) or a span from `now_ms`
/// (`7days`, `12h`); empty for none.
pub fn until(raw: &str, now_ms: i64) -> Result<Option<i64>, Violation> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = raw.parse::<jiff::Timestamp>() {
        return Ok(Some(t.as_millisecond()));
    }
    let span = humantime::parse_duration(raw).map_err(|_| {
        Violation::new(
            "until",
            format!("{raw:?} is neither a time (2026-12-08T00:00:00Z) nor a span (7days)"),
        )
    })?;
    let span = i64::try_from(span.as_millis()).unwrap_or(i64::MAX / 4);
    Ok(Some(now_ms.saturating_add(span)))
}

/// A standing a moderator asks for: `None` for `standing` lifts it. The end must be in the
/// future (a suspension needs one); the reason is at most 500 characters.
pub fn requested(
    standing: Option<Standing>,
    until_ms: Option<i64>,
    reason: &str,
    now_ms: i64,
) -> Result<Option<Status>, Vec<Violation>> {
    let mut violations = Vec::new();
    let reason = reason.trim();
    if reason.chars().count() > 500 || reason.contains(['\n', '\r']) {
        violations.push(Violation::new(
            "reason",
            "must be one line of at most 500 characters",
        ));
    }
    if until_ms.is_some_and(|until| until <= now_ms) {
        violations.push(Violation::new("until", "must be in the future"));
    }
    if standing == Some(Standing::Suspended) && until_ms.is_none() {
        violations.push(Violation::new("until", "a suspension needs its end"));
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(standing.map(|standing| Status {
        standing,
        until_ms,
        reason: reason.to_owned(),
    }))
}

/// Why a reader's comment is refused, for the portal to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Banned or suspended.
    pub standing: Standing,
    /// When it ends (Unix ms), if it does.
    pub until_ms: Option<i64>,
    /// Why.
    pub reason: String,
}

/// What a reader's standing does to a comment that is not refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    #[default]
    None,
    /// Skips review unless the classifier is certain.
    Trusted,
    /// Waits for a moderator (set by a moderator or automatically).
    Premoderated,
}

/// Every reader's standing, as the settings in force say, with who set it and when.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Directory(HashMap<ReaderId, (Status, String, i64)>);

impl Directory {
    /// Sets a reader's standing, as `by` did at `at_ms`.
    pub fn insert(&mut self, id: ReaderId, status: Status, by: &str, at_ms: i64) {
        self.0.insert(id, (status, by.to_owned(), at_ms));
    }

    /// A reader's standing, if one is set (in force or not).
    pub fn get(&self, id: &ReaderId) -> Option<&Status> {
        self.0.get(id).map(|(s, _, _)| s)
    }

    /// Who set a reader's standing, and when (Unix ms).
    pub fn who(&self, id: &ReaderId) -> Option<(&str, i64)> {
        self.0.get(id).map(|(_, by, at)| (by.as_str(), *at))
    }

    /// How many readers have a standing.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no reader has one.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every reader with a standing.
    pub fn iter(&self) -> impl Iterator<Item = (&ReaderId, &Status)> {
        self.0.iter().map(|(id, (s, _, _))| (id, s))
    }

    /// The standing in force for `id` at `now_ms`.
    pub fn in_force(&self, id: &ReaderId, now_ms: i64) -> Option<&Status> {
        self.get(id).filter(|s| s.in_force(now_ms))
    }

    /// Why a comment by `id` is refused at `now_ms`, if it is.
    pub fn refusal(&self, id: &ReaderId, now_ms: i64) -> Option<Refusal> {
        let status = self.in_force(id, now_ms)?;
        matches!(status.standing, Standing::Banned | Standing::Suspended).then(|| Refusal {
            standing: status.standing,
            until_ms: status.until_ms,
            reason: status.reason.clone(),
        })
    }

    /// What the standing in force does to a comment by `id` that is not refused.
    pub fn effect(&self, id: &ReaderId, now_ms: i64) -> Effect {
        match self.in_force(id, now_ms).map(|s| s.standing) {
            Some(Standing::Trusted) => Effect::Trusted,
            Some(Standing::Premoderated) => Effect::Premoderated,
            _ => Effect::None,
        }
    }
}

/// When a reader's rejections pre-moderate them: `rejections` of their last `of_last`
/// decided comments rejected puts them in pre-moderation for `period`. `rejections == 0` is
/// off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoPremoderation {
    /// Rejections that trigger it (0: off).
    pub rejections: u32,
    /// Out of this many of the reader's latest decided comments.
    pub of_last: u32,
    /// For how long.
    pub period: Duration,
}

impl Default for AutoPremoderation {
    fn default() -> Self {
        AutoPremoderation {
            rejections: 3,
            of_last: 10,
            period: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl AutoPremoderation {
    /// Parses `"3 of 10 for 7d"` or `"off"`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "off" {
            return Ok(AutoPremoderation {
                rejections: 0,
                ..AutoPremoderation::default()
            });
        }
        let bad = || format!("{raw:?} is not `<rejections> of <comments> for <period>` or `off`");
        let (counts, period) = raw.split_once(" for ").ok_or_else(bad)?;
        let (rejections, of_last) = counts.split_once(" of ").ok_or_else(bad)?;
        let rejections: u32 = rejections.trim().parse().map_err(|_| bad())?;
        let of_last: u32 = of_last.trim().parse().map_err(|_| bad())?;
        let period = humantime::parse_duration(period.trim()).map_err(|e| format!("{e}"))?;
        if rejections == 0 || of_last < rejections || of_last > 100 || period.is_zero() {
            return Err(format!(
                "{raw:?}: needs 1 ≤ rejections ≤ comments ≤ 100 and a period"
            ));
        }
        Ok(AutoPremoderation {
            rejections,
            of_last,
            period,
        })
    }

    /// Whether `latest` (a reader's decided comments' outcomes, newest first) pre-moderates
    /// them.
    pub fn triggered(&self, latest: &[Outcome]) -> bool {
        let rejected = latest
            .iter()
            .filter(|o| **o != Outcome::PendingReview)
            .take(self.of_last as usize)
            .filter(|o| **o == Outcome::Rejected)
            .count();
        self.rejections > 0 && rejected >= self.rejections as usize
    }

    /// The standing it sets at `now_ms`.
    pub fn status(&self, now_ms: i64) -> Status {
        let period = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX / 4);
        Status {
            standing: Standing::Premoderated,
            until_ms: Some(now_ms.saturating_add(period)),
            reason: format!(
                "automatic: {} of the last {} comments rejected",
                self.rejections, self.of_last
            ),
        }
    }
}

impl fmt::Display for AutoPremoderation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rejections == 0 {
            return f.write_str("off");
        }
        write!(
            f,
            "{} of {} for {}",
            self.rejections,
            self.of_last,
            humantime::format_duration(self.period)
        )
    }
}

impl Serialize for AutoPremoderation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AutoPremoderation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        AutoPremoderation::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The readers' settings ops may change at runtime, and every reader's standing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReaderTunables {
    /// Hold a reader's first comment.
    pub hold_first_comment: bool,
    /// When rejections pre-moderate a reader.
    pub auto_premoderate: AutoPremoderation,
    /// Standings.
    pub directory: Directory,
}

/// A reader's history: what their comments became, and their latest comments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Their latest comments, newest first.
    pub latest: Vec<crate::store::StoredComment>,
    /// Accepted, held and rejected among them.
    pub accepted: u32,
    /// Held.
    pub held: u32,
    /// Rejected.
    pub rejected: u32,
    /// When their oldest listed comment came (Unix ms), if any.
    pub first_seen_ms: Option<i64>,
}

impl History {
    /// A history from a reader's latest comments, newest first.
    pub fn of(latest: Vec<crate::store::StoredComment>) -> Self {
        let count = |o: Outcome| latest.iter().filter(|c| c.state == o).count() as u32;
        History {
            accepted: count(Outcome::Accepted),
            held: count(Outcome::PendingReview),
            rejected: count(Outcome::Rejected),
            first_seen_ms: latest.iter().map(|c| c.created_at_ms).min(),
            latest,
        }
    }

    /// Their outcomes, newest first.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.latest.iter().map(|c| c.state).collect()
    }
}

/// What readers need of a storage backend: their latest comments (the index every stored
/// comment joins), and the key their ids are made with.
#[async_trait::async_trait]
pub trait ReaderStore: Send + Sync {
    /// The reader's latest `limit` comments, newest first.
    async fn reader_comments(
        &self,
        reader: &ReaderId,
        limit: usize,
    ) -> Result<Vec<crate::store::StoredComment>, crate::store::StoreError>;

    /// The key readers' ids are made with: the stored one, or `candidate` stored now if there
    /// is none (every instance then agrees on the first).
    async fn reader_key(&self, candidate: &Secret) -> Result<Secret, crate::store::StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_keyed_and_read_back() {
        let a = ReaderKey::new(&Secret::new("one"));
        let b = ReaderKey::new(&Secret::new("two"));
        let id = a.id("lan@example.com");
        assert_eq!(id, a.id("lan@example.com"));
        assert_ne!(id, b.id("lan@example.com"), "another key, another id");
        assert_ne!(id, a.id("minh@example.com"));
        let printed = id.to_string();
        assert_eq!(printed.len(), 32);
        assert!(!printed.contains("lan"));
        assert_eq!(ReaderId::parse("reader", &printed), Ok(id));
        let bad = ReaderId::parse("reader", "lan@example.com").unwrap_err();
        assert_eq!(bad.field, "reader");
        assert!(ReaderId::parse("reader", &"zz".repeat(16)).is_err());
        assert!(ReaderId::parse("reader", &"é".repeat(16)).is_err());
    }

    #[test]
    fn standings_read_back_as_written() {
        for text in [
            "banned",
            "trusted because long-time reader",
            "suspended until 2026-12-08T00:00:00Z because spam links",
            "premoderated until 2026-12-08T00:00:00Z",
        ] {
            let status = Status::parse(text).unwrap();
            assert_eq!(status.to_string(), text);
        }
        let s = Status::parse("suspended until 2026-12-08T00:00:00Z because spam").unwrap();
        assert_eq!(s.standing, Standing::Suspended);
        assert_eq!(s.reason, "spam");
        assert!(
            Status::parse("suspended")
                .unwrap_err()
                .contains("needs its end")
        );
        assert!(
            Status::parse("exiled")
                .unwrap_err()
                .contains("not a standing")
        );
        assert!(
            Status::parse("banned until tomorrow")
                .unwrap_err()
                .contains("not a time")
        );
    }

    #[test]
    fn what_a_standing_does_and_when_it_ends() {
        let key = ReaderKey::new(&Secret::new("k"));
        let (lan, minh, hoa, an) = (
            key.id("lan@x.vn"),
            key.id("minh@x.vn"),
            key.id("hoa@x.vn"),
            key.id("an@x.vn"),
        );
        let mut d = Directory::default();
        d.insert(
            lan,
            Status::parse("banned because insults").unwrap(),
            "minh",
            1,
        );
        assert_eq!(d.who(&lan), Some(("minh", 1)));
        d.insert(
            minh,
            Status::parse("suspended until 2026-12-08T00:00:00Z").unwrap(),
            "minh",
            1,
        );
        d.insert(hoa, Status::parse("trusted").unwrap(), "minh", 1);
        let before = "2026-12-07T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let after = "2026-12-09T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let banned = d.refusal(&lan, after).unwrap();
        assert_eq!(
            (banned.standing, banned.reason.as_str()),
            (Standing::Banned, "insults")
        );
        assert_eq!(
            d.refusal(&minh, before).unwrap().standing,
            Standing::Suspended
        );
        assert_eq!(d.refusal(&minh, after), None, "the suspension ended");
        assert_eq!(d.refusal(&hoa, before), None);
        assert_eq!(d.effect(&hoa, before), Effect::Trusted);
        assert_eq!(d.effect(&an, before), Effect::None);
    }

    #[test]
    fn rejections_premoderate_a_reader() {
        let rule = AutoPremoderation::parse("2 of 3 for 1day").unwrap();
        use Outcome::*;
        assert!(rule.triggered(&[Rejected, Accepted, Rejected]));
        assert!(
            !rule.triggered(&[Rejected, Accepted, Accepted, Rejected]),
            "only the last 3"
        );
        assert!(
            rule.triggered(&[Rejected, PendingReview, Accepted, Rejected]),
            "held comments are not decided yet"
        );
        let off = AutoPremoderation::parse("off").unwrap();
        assert!(!off.triggered(&[Rejected; 10]));
        assert_eq!(off.to_string(), "off");
        let status = rule.status(1_000);
        assert_eq!(status.standing, Standing::Premoderated);
        assert_eq!(status.until_ms, Some(1_000 + 86_400_000));
        assert_eq!(AutoPremoderation::parse(&rule.to_string()), Ok(rule));
        for bad in [
            "3 of 2 for 1d",
            "0 of 5 for 1d",
            "3 of 10",
            "x of 10 for 1d",
            "3 of 10 for 0s",
        ] {
            assert!(AutoPremoderation::parse(bad).is_err(), "{bad}");
        }
    }
}
