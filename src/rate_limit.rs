//! The rate-limit stage: whether this reader, address, article and the service as a whole may
//! post another comment now.

use std::time::Duration;

use async_trait::async_trait;

use crate::comment::NewComment;

/// Why a comment was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A bucket is empty: the request may be retried after `retry_after`.
    #[error("rate limit {bucket} exceeded; retry in {retry_after:?}")]
    Limited {
        /// The bucket that refused (`ip`, `email`, `article`, `global`).
        bucket: String,
        /// How long until the request would be admitted.
        retry_after: Duration,
    },
    /// The shared limiter cannot be reached and the policy is to refuse.
    #[error("the rate limiter is unavailable: {0}")]
    Unavailable(String),
}

/// Admits or refuses a comment; a refused comment uses no quota.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Charges every bucket of `comment` if all admit it.
    async fn admit(&self, comment: &NewComment) -> Result<(), RateLimitError>;
}

/// Rate limiting switched off in configuration: admits everything, counts nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Off;

#[async_trait]
impl RateLimiter for Off {
    async fn admit(&self, _comment: &NewComment) -> Result<(), RateLimitError> {
        Ok(())
    }
}
