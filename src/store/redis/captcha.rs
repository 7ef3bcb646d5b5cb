//! CAPTCHA challenges in Redis ([`ChallengeStore`]): an image challenge is a hash
//! `<prefix>captcha:<nonce>` (`answer`, `used_by`: a submission, or `!wrong` once a wrong answer
//! spent it) expiring with the challenge; a network's wrong answers a counter
//! `<prefix>captcha:wrong:<network>`; a claimed proof of work `<prefix>pow:<challenge>`. Claims
//! are made by the submission script (`submissions.rs`), with the submission that makes them.
//!
//! A wrong answer spends the challenge for everyone, the submission that gave it included (a
//! retry with the same idempotency key cannot try again), and counts against the address. The
//! answers compared are keyed hashes the client never sees, so comparing them in the script
//! leaks nothing through its timing.

use std::time::Duration;

use async_trait::async_trait;

use super::Connection;
use crate::captcha::CaptchaError;
use crate::captcha::store::ChallengeStore;

/// Challenges in one Redis.
pub struct RedisChallenges {
    connection: Connection,
    prefix: String,
}

impl RedisChallenges {
    /// Challenges over `connection`, keys under `prefix`.
    pub fn new(connection: Connection, prefix: &str) -> Self {
        RedisChallenges {
            connection,
            prefix: prefix.to_owned(),
        }
    }

    fn image_key(&self, nonce: &str) -> String {
        format!("{}captcha:{nonce}", self.prefix)
    }
}

fn unavailable(e: redis::RedisError) -> CaptchaError {
    CaptchaError::Unavailable(e.to_string())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait]
impl ChallengeStore for RedisChallenges {
    async fn put_image(
        &self,
        nonce: &str,
        answer_hash: &str,
        ttl: Duration,
    ) -> Result<(), CaptchaError> {
        let key = self.image_key(nonce);
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &[("answer", answer_hash), ("used_by", "")])
            .pexpire(&key, millis(ttl))
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(unavailable)
    }
}
