//! The submissions' storage port, [`Store`], so the pipeline never knows which backend holds
//! the comments, and the backends. Every other consumer owns its port beside its code: the
//! review queue ([`crate::review::ReviewStore`]), runtime settings
//! ([`crate::settings::SettingsStore`]), CAPTCHAs ([`crate::captcha::store::ChallengeStore`])
//! and the rate limiter ([`crate::rate_limit::cluster::CounterStore`]). [`redis::RedisStore`]
//! is the backend for several instances; its layout is documented in the README.

pub mod redis;
pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::captcha::store::{Claim, Claimed};
use crate::comment::{CommentId, IdempotencyKey, NewComment};
use crate::decide::{Outcome, Reason};
use crate::rate_limit::cluster::{Cell, Charged};
use crate::review::Explained;

/// The key an author's counts are kept under: a hash of the canonical e-mail address (never
/// the address in clear), the same on every backend.
pub fn author_hash(email: &str) -> String {
    AuthorHash::of(email).to_string()
}

/// The key a stored comment's author's counts are kept under: its reader's id, or for a
/// comment stored before readers were known, [`author_hash`] of its address.
pub fn counts_key(reader: &str, email: &str) -> String {
    if reader.is_empty() {
        author_hash(email)
    } else {
        reader.to_owned()
    }
}

/// [`author_hash`] as it is written into a key (hexadecimal, with no string of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorHash([u8; 16]);

impl AuthorHash {
    /// The hash of `email` (its canonical form).
    pub fn of(email: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(email.as_bytes());
        let mut first = [0; 16];
        first.copy_from_slice(&digest[..16]);
        AuthorHash(first)
    }
}

impl std::fmt::Display for AuthorHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The answer given for a submission. Stored with its idempotency key, so a retry gets the same
/// answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The comment's id.
    pub comment_id: CommentId,
    /// The decision.
    pub outcome: Outcome,
    /// Spam probability.
    pub spam: f32,
    /// Toxic probability.
    pub toxic: f32,
    /// Reasons for holding or rejecting it.
    pub reasons: Vec<Reason>,
    /// The model that scored it.
    pub model_version: String,
}

/// A decided comment to store.
#[derive(Clone, Copy, Debug)]
pub struct Submission<'a> {
    /// The validated comment.
    pub comment: &'a NewComment,
    /// Its reader (whose history and index it joins).
    pub reader: &'a crate::readers::ReaderId,
    /// The answer to give.
    pub receipt: &'a Receipt,
    /// Its fingerprint (see [`NewComment::fingerprint`]).
    pub fingerprint: &'a str,
    /// When it was submitted, Unix milliseconds.
    pub created_at_ms: i64,
    /// Why it scored as it did (for held comments; empty for most accepted ones).
    pub explanation: &'a [Explained],
    /// What else to count for the statistics besides its outcome (shadow-mode findings).
    pub tallies: &'a [&'a str],
    /// A note for other instances sharing the store, published with it (its text's
    /// fingerprint, see [`crate::campaigns::Detector::note`]); a store serving one instance
    /// ignores it.
    pub shared: Option<&'a str>,
}

/// What must hold, in the same atomic call that stores a submission, for it to be stored: the
/// rate-limit cells to test and charge, then the CAPTCHA answer to claim. Checked in that order
/// after the retry check (a retry of a stored submission gets its first answer and is neither
/// charged nor checked again); a refused cell charges nothing and claims nothing; a refused
/// claim stores nothing, but its cells stay charged (wrong answers cost quota) and a wrong image
/// answer spends its challenge.
#[derive(Clone, Copy, Debug, Default)]
pub struct Admission<'a> {
    /// Cells to test and charge, all or nothing.
    pub cells: &'a [Cell],
    /// The CAPTCHA answer to claim for the submission (its idempotency key).
    pub claim: Option<&'a Claim>,
    /// A refused claim lets the comment through (the CAPTCHA in shadow mode): the submission
    /// is stored with the tally [`SHADOW_CAPTCHA_REFUSED`].
    pub claim_shadow: bool,
}

/// The tally a submission stored despite a refused claim counts (see
/// [`Admission::claim_shadow`]).
pub const SHADOW_CAPTCHA_REFUSED: &str = "shadow_captcha_refused";

/// The result of [`Store::submit`].
#[derive(Clone, Debug, PartialEq)]
pub enum Admitted {
    /// Stored now; what its cells and claim found.
    Stored {
        /// The cells' answer (`None` without cells).
        charged: Option<Charged>,
        /// The claim's finding (`None` without a claim); a refusal only under `claim_shadow`.
        claimed: Option<Claimed>,
    },
    /// The key was stored before with the same content: its first answer, nothing charged,
    /// claimed or stored.
    Replayed(Receipt),
    /// A cell refused ([`Charged::Refused`]): nothing charged, claimed or stored.
    Limited(Charged),
    /// The claim was refused: nothing stored (the cells' answer as for `Stored`).
    Refused {
        /// The cells' answer (`None` without cells).
        charged: Option<Charged>,
        /// What the claim found.
        claimed: Claimed,
    },
}

/// The result of [`Store::save`].
#[derive(Clone, Debug, PartialEq)]
pub enum Saved {
    /// Stored now.
    Stored,
    /// A concurrent submission with the same key and content was stored first; this is its
    /// answer, and nothing new was stored.
    Replayed(Receipt),
}

/// A comment as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredComment {
    /// Its id.
    pub id: CommentId,
    /// The article.
    pub article_id: String,
    /// The article's title, if the portal sent it.
    pub article_title: Option<String>,
    /// The comment it replies to.
    pub parent_id: Option<String>,
    /// The reader's name.
    pub author_name: String,
    /// The reader's e-mail address.
    pub author_email: String,
    /// The reader's IP address.
    pub client_ip: String,
    /// The reader's id (empty for comments stored before readers were known).
    pub reader: String,
    /// The text.
    pub body: String,
    /// Where it is now.
    pub state: Outcome,
    /// Spam probability.
    pub spam: f32,
    /// Toxic probability.
    pub toxic: f32,
    /// Reasons for holding or rejecting it.
    pub reasons: Vec<Reason>,
    /// The model that scored it.
    pub model_version: String,
    /// When it was submitted, Unix milliseconds.
    pub created_at_ms: i64,
    /// When its state last changed, Unix milliseconds.
    pub updated_at_ms: i64,
    /// Whether the portal shows it now: accepted, or back in the queue after a reader's report
    /// (it stays published until a moderator rejects it).
    pub published: bool,
}

/// What can go wrong in storage, classified at the boundary so the gRPC layer can answer the
/// portal precisely.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached, refused, or did not answer in time: transient, the portal
    /// should retry with the same idempotency key.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The idempotency key was already used for a different comment.
    #[error("the idempotency key was already used for a different comment")]
    KeyReused,
    /// Stored data could not be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// Where comments are kept and queued.
#[async_trait]
pub trait Store: Send + Sync {
    /// The answer already given for `key`, if any; [`StoreError::KeyReused`] when the key was
    /// used for a comment with another fingerprint.
    async fn receipt(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Option<Receipt>, StoreError>;

    /// Admits and stores a decided comment in one atomic call (one round trip): the retry
    /// check, then `admission`'s cells and claim, then the comment stored and queued by its
    /// outcome. Afterwards the comment is either fully stored and queued or not at all.
    async fn submit(
        &self,
        admission: Admission<'_>,
        submission: Submission<'_>,
    ) -> Result<Admitted, StoreError>;

    /// Stores a decided comment with nothing to admit (imports, tools, tests).
    async fn save(&self, submission: Submission<'_>) -> Result<Saved, StoreError> {
        match self.submit(Admission::default(), submission).await? {
            Admitted::Stored { .. } => Ok(Saved::Stored),
            Admitted::Replayed(first) => Ok(Saved::Replayed(first)),
            other => Err(StoreError::Corrupt(format!(
                "nothing to admit, yet the store answered {other:?}"
            ))),
        }
    }

    /// Reads a stored comment.
    async fn comment(&self, id: CommentId) -> Result<Option<StoredComment>, StoreError>;

    /// Succeeds when the backend answers and takes writes.
    async fn check(&self) -> Result<(), StoreError>;
}
