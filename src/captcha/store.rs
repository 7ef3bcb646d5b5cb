//! What CAPTCHAs need of a storage backend (the port): image challenges' answers kept until
//! they expire, claimed once, with wrong answers counted per network; proof-of-work solutions
//! claimed once. [`image_claim`] is the rule of a claim; a backend applies it atomically.

use std::time::Duration;

use async_trait::async_trait;

use super::CaptchaError;

/// A submission's claim of an image challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageClaim<'a> {
    /// The challenge's nonce.
    pub nonce: &'a str,
    /// The network the answer comes from ([`crate::comment::ClientIp::group_key`]).
    pub ip_group: &'a str,
    /// The submission (its idempotency key).
    pub claimant: &'a str,
    /// The keyed hash of the answer given.
    pub answer_hash: &'a str,
    /// Wrong answers the network may give within `wrong_window`.
    pub wrong_limit: u32,
    /// See `wrong_limit`.
    pub wrong_window: Duration,
}

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageClaimed {
    /// The answer is right; the challenge is this submission's.
    Claimed,
    /// The answer is wrong; the challenge is spent and the network's count went up.
    Wrong,
    /// Another submission claimed it, or a wrong answer spent it.
    Used,
    /// No such challenge (never issued, or expired).
    Missing,
    /// The network gave too many wrong answers; answers are refused unchecked for this long.
    Throttled(Duration),
}

/// Who holds an image challenge: nobody yet, a submission, or nobody ever (a wrong answer
/// spent it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Not claimed.
    Free,
    /// Claimed by this submission.
    Submission(String),
    /// Spent by a wrong answer.
    Spent,
}

/// A stored image challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredImage {
    /// The keyed hash of the right answer.
    pub answer_hash: String,
    /// Who holds it.
    pub holder: Holder,
}

/// The rule of a claim: given the challenge as stored (`None` when missing) and the network's
/// wrong answers so far, what the claim finds and who holds the challenge afterwards (`None`:
/// unchanged). A wrong answer also counts against the network.
pub fn image_claim(
    stored: Option<&StoredImage>,
    wrong_so_far: u32,
    claim: &ImageClaim<'_>,
) -> (ImageClaimed, Option<Holder>) {
    if wrong_so_far >= claim.wrong_limit {
        // The caller knows how long the network's count lives; it fills in the wait.
        return (ImageClaimed::Throttled(Duration::ZERO), None);
    }
    let Some(stored) = stored else {
        return (ImageClaimed::Missing, None);
    };
    match &stored.holder {
        Holder::Spent => return (ImageClaimed::Used, None),
        Holder::Submission(s) if s != claim.claimant => return (ImageClaimed::Used, None),
        _ => {}
    }
    if stored.answer_hash != claim.answer_hash {
        return (ImageClaimed::Wrong, Some(Holder::Spent));
    }
    (
        ImageClaimed::Claimed,
        Some(Holder::Submission(claim.claimant.to_owned())),
    )
}

/// Where challenges are kept.
#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Keeps an image challenge's answer hash for `ttl`.
    async fn put_image(
        &self,
        nonce: &str,
        answer_hash: &str,
        ttl: Duration,
    ) -> Result<(), CaptchaError>;

    /// Applies [`image_claim`] atomically.
    async fn claim_image(&self, claim: &ImageClaim<'_>) -> Result<ImageClaimed, CaptchaError>;

    /// Claims a solved proof of work (`challenge`) for `claimant` until `ttl` from now, unless
    /// claimed already; returns the earlier claimant, if any.
    async fn claim_pow(
        &self,
        challenge: &str,
        claimant: &str,
        ttl: Duration,
    ) -> Result<Option<String>, CaptchaError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(claimant: &'a str, answer: &'a str) -> ImageClaim<'a> {
        ImageClaim {
            nonce: "n",
            ip_group: "203.0.113.7",
            claimant,
            answer_hash: answer,
            wrong_limit: 2,
            wrong_window: Duration::from_secs(600),
        }
    }

    #[test]
    fn a_claim_is_decided_as_the_readme_says() {
        let free = StoredImage {
            answer_hash: "right".into(),
            holder: Holder::Free,
        };
        let held = |by: &str| StoredImage {
            holder: Holder::Submission(by.into()),
            ..free.clone()
        };
        let spent = StoredImage {
            holder: Holder::Spent,
            ..free.clone()
        };
        let by_k1 = held("k1");
        type Row<'a> = (
            Option<&'a StoredImage>,
            u32,
            ImageClaim<'a>,
            ImageClaimed,
            Option<Holder>,
        );
        let table: Vec<Row> = vec![
            (
                Some(&free),
                0,
                claim("k1", "right"),
                ImageClaimed::Claimed,
                Some(Holder::Submission("k1".into())),
            ),
            (
                Some(&free),
                0,
                claim("k1", "wrong"),
                ImageClaimed::Wrong,
                Some(Holder::Spent),
            ),
            (
                Some(&by_k1),
                0,
                claim("k1", "right"),
                ImageClaimed::Claimed,
                Some(Holder::Submission("k1".into())),
            ),
            (
                Some(&by_k1),
                0,
                claim("k2", "right"),
                ImageClaimed::Used,
                None,
            ),
            (
                Some(&spent),
                0,
                claim("k1", "right"),
                ImageClaimed::Used,
                None,
            ),
            (None, 0, claim("k1", "right"), ImageClaimed::Missing, None),
            (
                Some(&free),
                2,
                claim("k1", "right"),
                ImageClaimed::Throttled(Duration::ZERO),
                None,
            ),
        ];
        for (stored, wrong, c, found, holder) in table {
            assert_eq!(
                image_claim(stored, wrong, &c),
                (found, holder),
                "{stored:?} {wrong} {c:?}"
            );
        }
    }
}
