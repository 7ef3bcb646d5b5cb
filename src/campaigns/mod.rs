//! Campaigns: the same text, lightly edited, posted under many names and e-mail addresses
//! within a short time — the common campaign on a form that asks only for a name and an
//! address. Each comment's text is fingerprinted ([`index::fingerprint`]) and looked up among
//! the window's fingerprints by its band keys ([`index::Index`]); the `copies`-th reader with
//! a near copy makes a campaign: their comment is held (`DUPLICATE_CAMPAIGN`) and the earlier
//! copies are flagged for moderators too; a reader posting a near copy of their own is held as
//! a repeat (`DUPLICATE_REPEAT`).
//!
//! The index is in memory, so the check costs a submission no storage round trip. On Redis the
//! stored comment's fingerprint is shared with the other instances through the channel the
//! submission script publishes it on ([`Detector::learn`] takes theirs).

pub mod index;

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use index::{CampaignSettings, Fingerprint, Verdict};

use crate::comment::CommentId;

/// `[campaigns]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignConfig {
    /// Readers posting near copies within the window that make a campaign; 0 turns detection
    /// off (ops may change it at runtime: `campaigns.copies`).
    pub copies: u32,
    /// How long a text is remembered.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Texts shorter than this many words are never counted (short praise is repeated in
    /// good faith).
    pub min_words: usize,
    /// Most texts remembered (the oldest are forgotten first): bounds memory at about 250
    /// bytes a text, beside 16 MiB of chain heads.
    pub capacity: usize,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        let defaults = CampaignSettings::default();
        CampaignConfig {
            copies: 3,
            window: Duration::from_secs(24 * 3600),
            min_words: defaults.min_words,
            capacity: defaults.capacity,
        }
    }
}

/// What the check found for one submission.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Whether it is a campaign copy, or a repeat of the reader's own.
    pub duplicate: crate::decide::Duplicate,
    /// Distinct readers with a near copy in the window, this one included.
    pub copies: usize,
    /// Earlier copies to flag for moderators now (each handed out once).
    pub earlier: Vec<CommentId>,
    /// The text's fingerprint (none for a short text).
    pub fingerprint: Option<Fingerprint>,
}

/// The window's fingerprints, and the settings they are judged by.
#[derive(Debug)]
pub struct Detector {
    index: Mutex<index::Index>,
    min_words: usize,
    /// This instance, in the notes it shares (so it skips its own).
    instance: u64,
}

impl Detector {
    /// An empty window.
    pub fn new(config: &CampaignConfig) -> Self {
        let settings = CampaignSettings {
            window_ms: i64::try_from(config.window.as_millis()).unwrap_or(i64::MAX / 4),
            copies: config.copies.max(1) as usize,
            min_words: config.min_words,
            capacity: config.capacity,
            ..CampaignSettings::default()
        };
        Detector {
            min_words: settings.min_words,
            index: Mutex::new(index::Index::new(settings)),
            instance: fastrand::u64(..),
        }
    }

    /// Checks and records a submission: `copies` readers (from the settings in force; 0 is off)
    /// make a campaign. `submission` is its idempotency key (a retry is not a repeat).
    pub fn check(
        &self,
        text: &str,
        reader: &crate::readers::ReaderId,
        submission: &str,
        id: CommentId,
        copies: u32,
        now_ms: i64,
    ) -> Found {
        if copies == 0 {
            return Found::default();
        }
        let Some(fp) = index::fingerprint(text, self.min_words) else {
            return Found::default();
        };
        let reader = reader.to_string();
        let verdict = {
            let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            index.set_copies(copies as usize);
            index.check(fp, &reader, submission, &id.to_string(), now_ms)
        };
        found(verdict, fp)
    }

    /// The note other instances learn a stored comment's text from (see [`Detector::learn`]):
    /// `instance lookup confirm bands reader comment time reported`, none for a text too short.
    pub fn note(
        &self,
        found: &Found,
        reader: &crate::readers::ReaderId,
        id: CommentId,
        at_ms: i64,
    ) -> Option<String> {
        let fp = found.fingerprint?;
        let reported = u8::from(found.duplicate == crate::decide::Duplicate::Campaign);
        Some(format!(
            "{:x} {:x} {:x} {} {reader} {id} {at_ms} {reported}",
            self.instance,
            fp.lookup,
            fp.confirm,
            fp.bands_hex()
        ))
    }

    /// Records a comment another instance stored, from its note; this instance's own notes,
    /// and notes that do not parse, are skipped.
    pub fn learn(&self, note: &str) {
        // Every instance hears its own notes too: skip those before any other work.
        let mut parts = note.split(' ');
        let instance = parts.next().and_then(|i| u64::from_str_radix(i, 16).ok());
        if instance.is_none_or(|i| i == self.instance) {
            return;
        }
        let parts: Vec<&str> = parts.collect();
        let [lookup, confirm, bands, reader, id, at, reported] = parts[..] else {
            return;
        };
        let (Ok(lookup), Ok(confirm), Some(bands), Ok(at)) = (
            u64::from_str_radix(lookup, 16),
            u64::from_str_radix(confirm, 16),
            Fingerprint::parse_bands(bands),
            at.parse::<i64>(),
        ) else {
            return;
        };
        let fp = Fingerprint {
            lookup,
            confirm,
            bands,
        };
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index.insert_seen(fp, reader, id, at, reported == "1");
    }

    /// How many texts the window holds.
    pub fn len(&self) -> usize {
        self.index.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn found(v: Verdict, fp: Fingerprint) -> Found {
    use crate::decide::Duplicate;
    let duplicate = if v.campaign {
        Duplicate::Campaign
    } else if v.repeat {
        Duplicate::Repeat
    } else {
        Duplicate::None
    };
    Found {
        duplicate,
        copies: v.copies,
        earlier: v
            .earlier
            .iter()
            .filter_map(|id| CommentId::parse("id", id).ok())
            .collect(),
        fingerprint: Some(fp),
    }
}

/// Notes other instances published as they stored comments (see [`Detector::note`]); ends
/// when the subscription breaks.
pub type Notes = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = String> + Send>>;

/// A store several instances share, which carries each one's notes to the others.
#[async_trait::async_trait]
pub trait Sharing: Send + Sync {
    /// A subscription to the notes published from now on.
    async fn notes(&self) -> Result<Notes, crate::store::StoreError>;
}

/// Keeps `detector` learning what the other instances store, subscribing again (every
/// `every`) when the subscription breaks.
pub async fn listen(
    detector: std::sync::Arc<Detector>,
    sharing: std::sync::Arc<dyn Sharing>,
    every: Duration,
) {
    use tokio_stream::StreamExt;
    loop {
        match sharing.notes().await {
            Ok(mut notes) => {
                while let Some(note) = notes.next().await {
                    detector.learn(&note);
                }
            }
            Err(e) => tracing::debug!(error = %e, "other instances' texts not heard yet"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Where earlier copies are sent to be flagged (see [`flag_earlier`]). Sending never waits.
#[derive(Clone, Debug)]
pub struct Flags(tokio::sync::mpsc::Sender<(Vec<CommentId>, usize)>);

impl Flags {
    /// A sender, and what [`flag_earlier`] reads.
    pub fn new(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<(Vec<CommentId>, usize)>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        (Flags(tx), rx)
    }

    /// Asks for `ids` (copies of a campaign of `copies` readers) to be flagged.
    pub fn flag(&self, ids: Vec<CommentId>, copies: usize) {
        if !ids.is_empty() {
            let _ = self.0.try_send((ids, copies));
        }
    }
}

/// Flags earlier copies of campaigns as they are found: a published one comes back to the
/// queue as a report of the service's (it stays published until a moderator rejects it); one
/// waiting is already there; a rejected one needs nothing.
pub async fn flag_earlier(
    queue: std::sync::Arc<crate::review::Queue>,
    mut found: tokio::sync::mpsc::Receiver<(Vec<CommentId>, usize)>,
    timeout: Duration,
) {
    while let Some((ids, copies)) = found.recv().await {
        for id in ids {
            let report = crate::review::Report {
                id,
                reason: format!("DUPLICATE_CAMPAIGN: the same text came from {copies} readers"),
                reporter: "service:campaigns".into(),
            };
            let deadline = std::time::Instant::now() + timeout;
            match queue.report_unlimited(&report, deadline).await {
                Ok(_) | Err(crate::review::ReviewError::NotPublished { .. }) => {}
                Err(crate::review::ReviewError::AlreadyReported(_)) => {}
                Err(e) => {
                    tracing::warn!(comment = %id, error = %e, "an earlier campaign copy was not flagged")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readers::ReaderKey;
    use crate::secret::Secret;

    const TEXT: &str = "Mua ngay hôm nay giảm giá một nửa cho mọi đơn hàng, liên hệ để biết thêm";

    fn reader(n: u32) -> crate::readers::ReaderId {
        ReaderKey::new(&Secret::new("test key")).id(&format!("r{n}@example.vn"))
    }

    /// A stored comment's note from `from`, as the submission script would publish it.
    fn note_of(from: &Detector, n: u32, at_ms: i64) -> String {
        let (id, reader) = (CommentId::new(), reader(n));
        let found = from.check(TEXT, &reader, &format!("k{n}"), id, 3, at_ms);
        from.note(&found, &reader, id, at_ms).expect("long enough")
    }

    #[test]
    fn another_instances_notes_count_and_its_own_are_skipped() {
        let config = CampaignConfig::default();
        let (one, two) = (Detector::new(&config), Detector::new(&config));
        let note = note_of(&one, 1, 1000);
        one.learn(&note);
        assert_eq!(one.len(), 1, "its own note is not recorded twice");
        two.learn(&note);
        assert_eq!(two.len(), 1);
        two.learn(&note_of(&one, 2, 2000));
        let third = two.check(TEXT, &reader(3), "k3", CommentId::new(), 3, 3000);
        assert_eq!(third.duplicate, crate::decide::Duplicate::Campaign);
        assert_eq!(third.copies, 3);
    }

    #[test]
    fn notes_that_do_not_parse_are_skipped() {
        let config = CampaignConfig::default();
        let (one, two) = (Detector::new(&config), Detector::new(&config));
        let note = note_of(&one, 1, 1000);
        let fields: Vec<&str> = note.split(' ').collect();
        let without_bands = [&fields[..3], &fields[4..]].concat().join(" ");
        let bad_bands = note.replacen(fields[3], &fields[3][1..], 1);
        let bad_time = note.replacen(fields[6], "soon", 1);
        let extra = format!("{note} more");
        for bad in ["", "zz", &without_bands, &bad_bands, &bad_time, &extra] {
            two.learn(bad);
            assert!(two.is_empty(), "recorded {bad:?}");
        }
        two.learn(&note);
        assert_eq!(two.len(), 1, "the note itself parses");
    }
}
