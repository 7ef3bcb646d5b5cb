//! CAPTCHA challenges in Redis ([`ChallengeStore`]): an image challenge is a hash
//! `<prefix>captcha:<nonce>` (`answer`, `used_by`: a submission, or `!wrong` once a wrong answer
//! spent it) expiring with the challenge; a network's wrong answers a counter
//! `<prefix>captcha:wrong:<network>`; a claimed proof of work `<prefix>pow:<challenge>`.

use std::time::Duration;

use async_trait::async_trait;

use super::Connection;
use crate::captcha::CaptchaError;
use crate::captcha::store::{ChallengeStore, ImageClaim, ImageClaimed};

/// [`crate::captcha::store::image_claim`] in Lua: checks and claims a challenge for a
/// submission, in one round trip. KEYS: the challenge
/// hash, the address's wrong-answer counter. ARGV: the claimant (idempotency key), the
/// wrong-answer limit, the keyed hash of the answer given, the wrong-answer window (ms).
/// Returns {'throttled', ms left} | {'missing'} | {'used'} | {'wrong'} | {'claimed'}.
///
/// A wrong answer spends the challenge for everyone, the submission that gave it included (a
/// retry with the same idempotency key cannot try again), and counts against the address. The
/// answers compared are keyed hashes the client never sees, so comparing them in the script
/// leaks nothing through its timing.
const CLAIM: &str = r#"
local wrong = tonumber(redis.call('GET', KEYS[2]) or '0')
if wrong >= tonumber(ARGV[2]) then
  return {'throttled', tostring(redis.call('PTTL', KEYS[2]))}
end
local fields = redis.call('HMGET', KEYS[1], 'answer', 'used_by')
if not fields[1] then
  return {'missing'}
end
local used_by = fields[2] or ''
if used_by == '!wrong' or (used_by ~= '' and used_by ~= ARGV[1]) then
  return {'used'}
end
if fields[1] ~= ARGV[3] then
  redis.call('HSET', KEYS[1], 'used_by', '!wrong')
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return {'wrong'}
end
redis.call('HSET', KEYS[1], 'used_by', ARGV[1])
return {'claimed'}
"#;

/// Challenges in one Redis.
pub struct RedisChallenges {
    connection: Connection,
    prefix: String,
    claim: redis::Script,
}

impl RedisChallenges {
    /// Challenges over `connection`, keys under `prefix`.
    pub fn new(connection: Connection, prefix: &str) -> Self {
        RedisChallenges {
            connection,
            prefix: prefix.to_owned(),
            claim: redis::Script::new(CLAIM),
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

    async fn claim_image(&self, claim: &ImageClaim<'_>) -> Result<ImageClaimed, CaptchaError> {
        let reply: Vec<String> = self
            .claim
            .key(self.image_key(claim.nonce))
            .key(format!("{}captcha:wrong:{}", self.prefix, claim.ip_group))
            .arg(claim.claimant)
            .arg(claim.wrong_limit)
            .arg(claim.answer_hash)
            .arg(millis(claim.wrong_window))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("claimed") => Ok(ImageClaimed::Claimed),
            Some("wrong") => Ok(ImageClaimed::Wrong),
            Some("used") => Ok(ImageClaimed::Used),
            Some("missing") => Ok(ImageClaimed::Missing),
            Some("throttled") => {
                let left = reply
                    .get(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                Ok(ImageClaimed::Throttled(Duration::from_millis(left)))
            }
            other => Err(CaptchaError::Unavailable(format!(
                "unexpected answer from Redis: {other:?}"
            ))),
        }
    }

    async fn claim_pow(
        &self,
        challenge: &str,
        claimant: &str,
        ttl: Duration,
    ) -> Result<Option<String>, CaptchaError> {
        redis::cmd("SET")
            .arg(format!("{}pow:{challenge}", self.prefix))
            .arg(claimant)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)
    }
}
