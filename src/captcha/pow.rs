//! The proof-of-work challenge, in the style of ALTCHA: the service picks a secret number up to
//! a maximum, publishes SHA-256(salt ‖ number) with an HMAC signature and an expiry in the
//! salt, and the reader's browser tries numbers until it finds the one. Nothing to read or
//! click, so it serves readers who cannot use the image. Verification checks the signature,
//! the expiry and the solution in process; the submission that uses it then claims it until it
//! expires, with its own storage step (the common proof-of-work libraries leave that replay
//! store to the integrator).

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::store::Claim;

use super::{CaptchaError, hex, keyed_hash, now_ms, same};
use crate::secret::Secret;

/// The hash the browser computes.
pub const ALGORITHM: &str = "SHA-256";

/// An issued proof-of-work challenge: what the browser's widget needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowChallenge {
    /// `SHA-256`.
    pub algorithm: String,
    /// SHA-256(salt ‖ number), hexadecimal: the target.
    pub challenge: String,
    /// The salt, ending in `?expires=<Unix seconds>`.
    pub salt: String,
    /// The number is at most this.
    pub max_number: u64,
    /// HMAC of salt and challenge (hexadecimal).
    pub signature: String,
    /// Everything above in one string, to send back with the solution.
    pub token: String,
    /// When the challenge stops being valid (Unix ms).
    pub expires_at_ms: i64,
}

/// Issues and checks proof-of-work challenges.
pub struct ProofOfWork {
    secret: Secret,
    ttl: Duration,
    max_numbers: [u64; 2],
}

/// The hash of `salt` followed by `number` in decimal, hexadecimal.
pub fn hash(salt: &str, number: u64) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(itoa(number).as_bytes());
    hex(&h.finalize())
}

/// `number` in decimal, without allocating.
fn itoa(mut number: u64) -> ItoaBuf {
    let mut buf = ItoaBuf {
        digits: [0; 20],
        start: 20,
    };
    loop {
        buf.start -= 1;
        buf.digits[buf.start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            return buf;
        }
    }
}

struct ItoaBuf {
    digits: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// What a browser does: tries 0, 1, 2, ... up to `max_number` until the hash matches.
pub fn solve(challenge: &PowChallenge) -> Option<u64> {
    (0..=challenge.max_number).find(|&n| hash(&challenge.salt, n) == challenge.challenge)
}

/// What a challenge is issued for; signed into it, so one kind cannot stand in for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Where proof of work is the CAPTCHA.
    Standalone,
    /// The accessible alternative to an image, with its larger work factor.
    ImageAlternative,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Purpose::Standalone => b"pow",
            Purpose::ImageAlternative => b"pow-image",
        }
    }
}

impl ProofOfWork {
    /// Challenges signed with `secret`; `max_numbers` are the work factors of standalone
    /// challenges and of the image alternative.
    pub fn new(secret: &Secret, ttl: Duration, max_numbers: [u64; 2]) -> Self {
        ProofOfWork {
            secret: secret.clone(),
            ttl,
            max_numbers,
        }
    }

    fn signature(&self, purpose: Purpose, salt: &str, challenge: &str) -> String {
        keyed_hash(
            &self.secret,
            &[purpose.tag(), salt.as_bytes(), challenge.as_bytes()],
        )
    }

    /// A new challenge for `purpose` (no I/O: the challenge carries everything needed to check
    /// it).
    pub fn issue(&self, purpose: Purpose) -> PowChallenge {
        let max_number = match purpose {
            Purpose::Standalone => self.max_numbers[0],
            Purpose::ImageAlternative => self.max_numbers[1],
        };
        let expires_at_ms = now_ms() + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let salt = format!(
            "{}?expires={}",
            hex(&uuid::Uuid::new_v4().as_bytes()[..12]),
            expires_at_ms / 1000
        );
        let secret_number = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or_default(),
        ) % (max_number + 1);
        let challenge = hash(&salt, secret_number);
        let signature = self.signature(purpose, &salt, &challenge);
        let token = format!("{salt}:{challenge}:{max_number}:{signature}");
        PowChallenge {
            algorithm: ALGORITHM.to_owned(),
            challenge,
            salt,
            max_number,
            signature,
            token,
            expires_at_ms,
        }
    }

    /// Checks `solution` to the challenge `token`, issued for `purpose`, and makes the claim
    /// the submission will hold it by (the first submission holds it; its retries may present
    /// it again).
    pub fn claim(
        &self,
        token: &str,
        solution: u64,
        purpose: Purpose,
    ) -> Result<Claim, CaptchaError> {
        let mut parts = token.split(':');
        let (Some(salt), Some(challenge), Some(_max), Some(signature), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CaptchaError::Unknown);
        };
        if !same(signature, &self.signature(purpose, salt, challenge)) {
            return Err(CaptchaError::Unknown);
        }
        let expires_s: i64 = salt
            .rsplit_once("?expires=")
            .and_then(|(_, e)| e.parse().ok())
            .ok_or(CaptchaError::Unknown)?;
        let left_ms = expires_s.saturating_mul(1000) - now_ms();
        if left_ms <= 0 {
            return Err(CaptchaError::Expired);
        }
        if !same(&hash(salt, solution), challenge) {
            return Err(CaptchaError::Wrong);
        }
        Ok(Claim::ProofOfWork {
            challenge: challenge.to_owned(),
            ttl: Duration::from_millis(u64::try_from(left_ms).unwrap_or(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_hashed_in_decimal() {
        for n in [0, 7, 10, 4242, u64::MAX] {
            assert_eq!(itoa(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn a_solution_is_the_number_whose_hash_is_the_challenge() {
        let salt = "abc?expires=1";
        let target = hash(salt, 4242);
        let challenge = PowChallenge {
            algorithm: ALGORITHM.into(),
            challenge: target,
            salt: salt.into(),
            max_number: 10_000,
            signature: String::new(),
            token: String::new(),
            expires_at_ms: 0,
        };
        assert_eq!(solve(&challenge), Some(4242));
    }
}
