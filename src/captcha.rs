//! The CAPTCHA stage: whether the reader answered the challenge shown under the form
//! ("Xác thực").

use async_trait::async_trait;

use crate::comment::NewComment;

/// Why a CAPTCHA answer was refused. Each has its own reason code so the portal can show the
/// right message and fetch a new challenge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaptchaError {
    /// No answer was sent but one is required.
    #[error("a CAPTCHA answer is required")]
    Missing,
    /// The answer is wrong.
    #[error("the CAPTCHA answer is wrong")]
    Wrong,
    /// The challenge expired.
    #[error("the CAPTCHA challenge expired")]
    Expired,
    /// The challenge was already answered once.
    #[error("the CAPTCHA challenge was already used")]
    Used,
    /// No such challenge was issued.
    #[error("unknown CAPTCHA challenge")]
    Unknown,
    /// The verifier could not be reached.
    #[error("the CAPTCHA verifier is unavailable: {0}")]
    Unavailable(String),
}

impl CaptchaError {
    /// The stable reason code sent to the portal in `google.rpc.ErrorInfo`.
    pub fn reason(&self) -> &'static str {
        match self {
            CaptchaError::Missing => "CAPTCHA_MISSING",
            CaptchaError::Wrong => "CAPTCHA_WRONG",
            CaptchaError::Expired => "CAPTCHA_EXPIRED",
            CaptchaError::Used => "CAPTCHA_USED",
            CaptchaError::Unknown => "CAPTCHA_UNKNOWN",
            CaptchaError::Unavailable(_) => "CAPTCHA_UNAVAILABLE",
        }
    }
}

/// Checks a comment's CAPTCHA answer.
#[async_trait]
pub trait CaptchaVerifier: Send + Sync {
    /// Accepts or refuses the answer; an accepted answer cannot be used again.
    async fn verify(&self, comment: &NewComment) -> Result<(), CaptchaError>;
}

/// No CAPTCHA required (switched off in configuration): every comment passes, nothing is
/// checked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Off;

#[async_trait]
impl CaptchaVerifier for Off {
    async fn verify(&self, _comment: &NewComment) -> Result<(), CaptchaError> {
        Ok(())
    }
}
