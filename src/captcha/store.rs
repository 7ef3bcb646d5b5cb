//! What CAPTCHAs need of a storage backend (the port): image challenges' answers kept until
//! they expire ([`ChallengeStore`]), and the claims a submission makes with its own storage
//! step ([`Claim`]): an image answer claimed once, with wrong answers counted per network; a
//! proof-of-work solution claimed once. [`image_claim`] and [`pow_claim`] are the rules; every
//! backend applies them atomically with the submission.

use std::time::Duration;

use async_trait::async_trait;

use super::CaptchaError;

/// A CAPTCHA answer to claim, made by the CPU checks of [`super::CaptchaVerifier::verify`]
/// (signature, expiry, proof-of-work hash) and claimed by the storage step of the submission
/// that uses it, in the same atomic call as the comment is stored
/// ([`crate::store::Admission`]): claimed and stored, or neither. The claimant is the
/// submission's idempotency key, so its own retry may claim it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// An image challenge's answer.
    Image(ImageClaim),
    /// A solved proof of work.
    ProofOfWork {
        /// The challenge (the hash the solution was found for).
        challenge: String,
        /// How long the claim must be remembered: until the challenge expires.
        ttl: Duration,
    },
    /// An answer refused in process (missing, forged, expired, a wrong proof of work, the
    /// wrong kind): nothing to claim, but the refusal is made by the storage step like every
    /// other, after the retry check (a retry of a stored submission gets its first answer) and
    /// the rate-limit charge (guessing costs quota).
    Refused(CaptchaError),
}

/// A submission's claim of an image challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageClaim {
    /// The challenge's nonce.
    pub nonce: String,
    /// The network the answer comes from ([`crate::comment::ClientIp::group_key`]).
    pub ip_group: String,
    /// The keyed hash of the answer given.
    pub answer_hash: String,
    /// Wrong answers the network may give within `wrong_window`.
    pub wrong_limit: u32,
    /// See `wrong_limit`.
    pub wrong_window: Duration,
    /// When the challenge expires (Unix ms), to tell an expired one from one never issued.
    pub expires_at_ms: i64,
}

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
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
    /// Refused before the claim ([`Claim::Refused`]).
    Refused,
}

impl Claim {
    /// What a claim's result means for the submission, at `now_ms`.
    pub fn verdict(&self, claimed: Claimed, now_ms: i64) -> Result<(), CaptchaError> {
        match claimed {
            Claimed::Claimed => Ok(()),
            Claimed::Wrong => Err(CaptchaError::Wrong),
            Claimed::Used => Err(CaptchaError::Used),
            Claimed::Missing => match self {
                Claim::Image(c) if now_ms >= c.expires_at_ms => Err(CaptchaError::Expired),
                _ => Err(CaptchaError::Unknown),
            },
            Claimed::Throttled(left) => Err(CaptchaError::Throttled(left)),
            Claimed::Refused => match self {
                Claim::Refused(e) => Err(e.clone()),
                _ => Err(CaptchaError::Unknown),
            },
        }
    }
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
    claim: &ImageClaim,
    claimant: &str,
) -> (Claimed, Option<Holder>) {
    if wrong_so_far >= claim.wrong_limit {
        // The caller knows how long the network's count lives; it fills in the wait.
        return (Claimed::Throttled(Duration::ZERO), None);
    }
    let Some(stored) = stored else {
        return (Claimed::Missing, None);
    };
    match &stored.holder {
        Holder::Spent => return (Claimed::Used, None),
        Holder::Submission(s) if s != claimant => return (Claimed::Used, None),
        _ => {}
    }
    if stored.answer_hash != claim.answer_hash {
        return (Claimed::Wrong, Some(Holder::Spent));
    }
    (
        Claimed::Claimed,
        Some(Holder::Submission(claimant.to_owned())),
    )
}

/// The rule of a proof-of-work claim: the first submission to present a solution holds it
/// (`earlier` is who held it before this claim, if anyone); only its retries may present it
/// again.
pub fn pow_claim(earlier: Option<&str>, claimant: &str) -> Claimed {
    match earlier {
        Some(owner) if owner != claimant => Claimed::Used,
        _ => Claimed::Claimed,
    }
}

/// Where challenges are kept until they are claimed (the claims themselves are made with the
/// submission, by [`crate::store::Store::submit`]).
#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Keeps an image challenge's answer hash for `ttl`.
    async fn put_image(
        &self,
        nonce: &str,
        answer_hash: &str,
        ttl: Duration,
    ) -> Result<(), CaptchaError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(answer: &str) -> ImageClaim {
        ImageClaim {
            nonce: "n".into(),
            ip_group: "203.0.113.7".into(),
            answer_hash: answer.into(),
            wrong_limit: 2,
            wrong_window: Duration::from_secs(600),
            expires_at_ms: 1_000,
        }
    }

    #[test]
    fn a_claim_is_decided_as_the_readme_says() {
        let free = StoredImage {
            answer_hash: "right".into(),
            holder: Holder::Free,
        };
        let by_k1 = StoredImage {
            holder: Holder::Submission("k1".into()),
            ..free.clone()
        };
        let spent = StoredImage {
            holder: Holder::Spent,
            ..free.clone()
        };
        let k1 = || Some(Holder::Submission("k1".into()));
        type Row<'a> = (
            Option<&'a StoredImage>,
            u32,
            &'a str,
            &'a str,
            Claimed,
            Option<Holder>,
        );
        let table: Vec<Row> = vec![
            (Some(&free), 0, "k1", "right", Claimed::Claimed, k1()),
            (
                Some(&free),
                0,
                "k1",
                "wrong",
                Claimed::Wrong,
                Some(Holder::Spent),
            ),
            (Some(&by_k1), 0, "k1", "right", Claimed::Claimed, k1()),
            (Some(&by_k1), 0, "k2", "right", Claimed::Used, None),
            (Some(&spent), 0, "k1", "right", Claimed::Used, None),
            (None, 0, "k1", "right", Claimed::Missing, None),
            (
                Some(&free),
                2,
                "k1",
                "right",
                Claimed::Throttled(Duration::ZERO),
                None,
            ),
        ];
        for (stored, wrong, claimant, answer, found, holder) in table {
            assert_eq!(
                image_claim(stored, wrong, &claim(answer), claimant),
                (found, holder),
                "{stored:?} {wrong} {claimant} {answer}"
            );
        }
    }

    #[test]
    fn a_proof_of_work_is_held_by_its_first_submission() {
        assert_eq!(pow_claim(None, "k1"), Claimed::Claimed);
        assert_eq!(pow_claim(Some("k1"), "k1"), Claimed::Claimed);
        assert_eq!(pow_claim(Some("k1"), "k2"), Claimed::Used);
    }

    #[test]
    fn a_missing_image_challenge_is_expired_only_after_its_time() {
        let image = Claim::Image(claim("right"));
        assert_eq!(
            image.verdict(Claimed::Missing, 999),
            Err(CaptchaError::Unknown)
        );
        assert_eq!(
            image.verdict(Claimed::Missing, 1_000),
            Err(CaptchaError::Expired)
        );
        assert_eq!(image.verdict(Claimed::Claimed, 5_000), Ok(()));
        assert_eq!(image.verdict(Claimed::Wrong, 0), Err(CaptchaError::Wrong));
    }
}
