//! The CAPTCHA stage: whether the reader answered the challenge shown under the form
//! ("Xác thực"). Three kinds, chosen per deployment and per article:
//!
//! - [`image`]: a distorted image of characters the reader types, issued and checked here;
//! - [`pow`]: an invisible proof of work the reader's browser computes (ALTCHA-style), for
//!   readers who cannot read the image;
//! - [`provider`]: a hosted provider's widget (Cloudflare Turnstile, hCaptcha, reCAPTCHA v2 and
//!   v3), checked through the provider's siteverify API.
//!
//! A challenge answers once: image and proof-of-work answers are checked here as far as they
//! can be (signature, expiry, the proof's hash), then claimed by the submission that uses them
//! in the same atomic storage call that stores it (a retry of that same submission may use it
//! again; any other submission is told CAPTCHA_USED); Turnstile gets the submission's
//! idempotency key.

pub mod image;
pub mod pow;
pub mod provider;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::comment::{ArticleId, CaptchaAnswer, NewComment};
use crate::secret::Secret;

/// Why a CAPTCHA answer was refused. Each has its own reason code so the portal can show the
/// right message and fetch a new challenge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaptchaError {
    /// No answer was sent but one is required.
    #[error("a CAPTCHA answer is required")]
    Missing,
    /// An answer of another kind than the one required here.
    #[error("this article requires a {0} CAPTCHA")]
    WrongKind(&'static str),
    /// The answer is wrong.
    #[error("the CAPTCHA answer is wrong")]
    Wrong,
    /// The challenge expired.
    #[error("the CAPTCHA challenge expired")]
    Expired,
    /// The challenge was already answered by another submission.
    #[error("the CAPTCHA challenge was already used")]
    Used,
    /// No such challenge was issued.
    #[error("unknown CAPTCHA challenge")]
    Unknown,
    /// Too many wrong answers from this address: guessing does not pay.
    #[error("too many wrong CAPTCHA answers; retry in {0:?}")]
    Throttled(Duration),
    /// The provider scored the reader as likely a bot (reCAPTCHA v3).
    #[error("the CAPTCHA score is too low")]
    LowScore,
    /// The provider's token was made for another site.
    #[error("the CAPTCHA was solved on another hostname")]
    WrongHostname,
    /// The provider's token was made for another action.
    #[error("the CAPTCHA was solved for another action")]
    WrongAction,
    /// The verifier (Redis or the provider) could not be reached, or is misconfigured.
    #[error("the CAPTCHA verifier is unavailable: {0}")]
    Unavailable(String),
}

impl CaptchaError {
    /// The stable reason code sent to the portal in `google.rpc.ErrorInfo`.
    pub fn reason(&self) -> &'static str {
        match self {
            CaptchaError::Missing => "CAPTCHA_MISSING",
            CaptchaError::WrongKind(_) => "CAPTCHA_WRONG_KIND",
            CaptchaError::Wrong => "CAPTCHA_WRONG",
            CaptchaError::Expired => "CAPTCHA_EXPIRED",
            CaptchaError::Used => "CAPTCHA_USED",
            CaptchaError::Unknown => "CAPTCHA_UNKNOWN",
            CaptchaError::Throttled(_) => "CAPTCHA_THROTTLED",
            CaptchaError::LowScore => "CAPTCHA_LOW_SCORE",
            CaptchaError::WrongHostname => "CAPTCHA_WRONG_HOSTNAME",
            CaptchaError::WrongAction => "CAPTCHA_WRONG_ACTION",
            CaptchaError::Unavailable(_) => "CAPTCHA_UNAVAILABLE",
        }
    }
}

/// What checking an answer in process found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Nothing is left to check: no CAPTCHA is needed, or a hosted provider confirmed it.
    Passed,
    /// Right as far as can be told here: the submission makes this claim with its storage
    /// step, which decides (an image's answer, a proof of work's single use).
    Claim(store::Claim),
}

/// Checks a comment's CAPTCHA answer.
#[async_trait]
pub trait CaptchaVerifier: Send + Sync {
    /// Whether checking `comment`'s answer asks a hosted provider over the network (then a
    /// retry is answered from storage before asking, as providers accept a token once).
    fn remote(&self, comment: &NewComment) -> bool;

    /// Refuses the answer, or says what remains to claim; a claimed answer cannot be used by
    /// another submission.
    async fn verify(
        &self,
        comment: &NewComment,
        deadline: Instant,
    ) -> Result<Checked, CaptchaError>;
}

/// No CAPTCHA at all: every comment passes, nothing is checked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Off;

#[async_trait]
impl CaptchaVerifier for Off {
    fn remote(&self, _comment: &NewComment) -> bool {
        false
    }

    async fn verify(
        &self,
        _comment: &NewComment,
        _deadline: Instant,
    ) -> Result<Checked, CaptchaError> {
        Ok(Checked::Passed)
    }
}

/// Which CAPTCHA a comment needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// None.
    #[default]
    Off,
    /// The image challenge.
    Image,
    /// The proof-of-work challenge.
    ProofOfWork,
    /// Cloudflare Turnstile.
    Turnstile,
    /// hCaptcha.
    Hcaptcha,
    /// reCAPTCHA v2 (checkbox).
    RecaptchaV2,
    /// reCAPTCHA v3 (score).
    RecaptchaV3,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 7] = [
        Mode::Off,
        Mode::Image,
        Mode::ProofOfWork,
        Mode::Turnstile,
        Mode::Hcaptcha,
        Mode::RecaptchaV2,
        Mode::RecaptchaV3,
    ];

    /// The name used in configuration and messages.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Image => "image",
            Mode::ProofOfWork => "proof_of_work",
            Mode::Turnstile => "turnstile",
            Mode::Hcaptcha => "hcaptcha",
            Mode::RecaptchaV2 => "recaptcha_v2",
            Mode::RecaptchaV3 => "recaptcha_v3",
        }
    }
}

/// `[captcha]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptchaSettings {
    /// The CAPTCHA every comment needs, unless its article says otherwise.
    pub mode: Mode,
    /// Per-article overrides: article id → mode.
    pub articles: BTreeMap<String, Mode>,
    /// Check answers and count refusals, but refuse nobody (to roll a CAPTCHA out).
    pub shadow: bool,
    /// Key for the keyed hashes of image answers and the signatures of challenges; the same on
    /// every instance. Required for `image` and `proof_of_work`.
    pub secret: Option<Secret>,
    /// How long an issued image or proof-of-work challenge stays valid.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Characters in an image (5 or 6).
    pub image_chars: u8,
    /// Proof-of-work difficulty: the browser tries on average half this many SHA-256 hashes
    /// (see BENCHMARKS.md for the solve time: about 0.5 s on a server core in JavaScript at the
    /// default, a few times that on a phone).
    pub pow_max_number: u64,
    /// Where the image is required, let a reader who cannot read it solve a proof of work
    /// instead (an accessibility alternative). Off by default: a bot solves a proof of work
    /// without reading anything, so with this on the image costs a bot only CPU time.
    pub image_alternative: bool,
    /// The work factor of that alternative, much larger than `pow_max_number` so it is not the
    /// cheap way around the image (see README: a browser takes seconds, a bot tens of ms).
    pub image_alternative_max_number: u64,
    /// Wrong answers an address may give within `wrong_answer_window` before its answers are
    /// refused without being checked (an IPv6 address counts by its /64).
    pub wrong_answers_per_ip: u32,
    /// See `wrong_answers_per_ip`.
    #[serde(with = "humantime_serde")]
    pub wrong_answer_window: Duration,
    /// Longest wait for a hosted provider's answer.
    #[serde(with = "humantime_serde")]
    pub provider_timeout: Duration,
    /// Cloudflare Turnstile.
    pub turnstile: Option<provider::ProviderSettings>,
    /// hCaptcha.
    pub hcaptcha: Option<provider::ProviderSettings>,
    /// reCAPTCHA (v2 and v3 share the site's secret).
    pub recaptcha: Option<provider::ProviderSettings>,
}

impl Default for CaptchaSettings {
    fn default() -> Self {
        CaptchaSettings {
            mode: Mode::Off,
            articles: BTreeMap::new(),
            shadow: false,
            secret: None,
            ttl: Duration::from_secs(300),
            image_chars: 6,
            pow_max_number: 20_000,
            image_alternative: false,
            image_alternative_max_number: 500_000,
            wrong_answers_per_ip: 10,
            wrong_answer_window: Duration::from_secs(600),
            provider_timeout: Duration::from_millis(1500),
            turnstile: None,
            hcaptcha: None,
            recaptcha: None,
        }
    }
}

impl CaptchaSettings {
    /// The mode `article` needs.
    pub fn mode_for(&self, article: &ArticleId) -> Mode {
        self.articles
            .get(article.as_str())
            .copied()
            .unwrap_or(self.mode)
    }

    /// Every mode in force somewhere.
    fn modes(&self) -> impl Iterator<Item = Mode> + '_ {
        std::iter::once(self.mode).chain(self.articles.values().copied())
    }

    /// Every problem with these settings, as (setting, description).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let uses = |m: Mode| self.modes().any(|x| x == m);
        if (uses(Mode::Image) || uses(Mode::ProofOfWork)) && self.secret.is_none() {
            problems.push((
                "captcha.secret".into(),
                "is required for image and proof-of-work challenges".into(),
            ));
        }
        if !(5..=6).contains(&self.image_chars) {
            problems.push(("captcha.image_chars".into(), "must be 5 or 6".into()));
        }
        if self.ttl.is_zero() {
            problems.push(("captcha.ttl".into(), "must be more than 0".into()));
        }
        if self.pow_max_number == 0 {
            problems.push(("captcha.pow_max_number".into(), "must be at least 1".into()));
        }
        if self.image_alternative && self.image_alternative_max_number < self.pow_max_number {
            problems.push((
                "captcha.image_alternative_max_number".into(),
                "must be at least captcha.pow_max_number".into(),
            ));
        }
        for (mode, section, settings) in [
            (Mode::Turnstile, "turnstile", &self.turnstile),
            (Mode::Hcaptcha, "hcaptcha", &self.hcaptcha),
            (Mode::RecaptchaV2, "recaptcha", &self.recaptcha),
            (Mode::RecaptchaV3, "recaptcha", &self.recaptcha),
        ] {
            if uses(mode) && settings.is_none() {
                problems.push((
                    format!("captcha.{section}"),
                    format!("is required for mode {}", mode.name()),
                ));
            }
        }
        problems
    }
}

/// A challenge to show under the form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// No CAPTCHA is required here.
    None,
    /// An image to read.
    Image(image::ImageChallenge),
    /// A proof of work for the browser.
    ProofOfWork(pow::PowChallenge),
    /// A hosted provider's widget.
    Provider {
        /// Which provider.
        mode: Mode,
        /// The site key the widget needs.
        site_key: String,
    },
}

/// Which mode is required where: the global mode and the per-article ones. Ops change them at
/// runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Required {
    /// The mode every comment needs, unless its article says otherwise.
    pub mode: Mode,
    /// Article id → mode.
    pub articles: BTreeMap<String, Mode>,
}

impl Required {
    /// The mode `article` needs.
    pub fn mode_for(&self, article: &ArticleId) -> Mode {
        self.articles
            .get(article.as_str())
            .copied()
            .unwrap_or(self.mode)
    }
}

/// The service's CAPTCHAs: issues challenges and verifies answers.
pub struct Captchas {
    settings: CaptchaSettings,
    required: arc_swap::ArcSwap<Required>,
    images: Option<image::ImageCaptcha>,
    pow: Option<pow::ProofOfWork>,
    providers: provider::Providers,
}

impl Captchas {
    /// CAPTCHAs for `settings` (assumed checked), keeping challenges in `store`.
    pub fn new(settings: CaptchaSettings, store: Arc<dyn store::ChallengeStore>) -> Self {
        let secret = settings.secret.clone().unwrap_or_default();
        Captchas {
            images: Some(image::ImageCaptcha::new(
                store.clone(),
                &secret,
                settings.ttl,
                settings.image_chars,
                settings.wrong_answers_per_ip,
                settings.wrong_answer_window,
            )),
            pow: Some(pow::ProofOfWork::new(
                &secret,
                settings.ttl,
                [
                    settings.pow_max_number,
                    settings.image_alternative_max_number,
                ],
            )),
            providers: provider::Providers::new(&settings),
            required: arc_swap::ArcSwap::from_pointee(Required {
                mode: settings.mode,
                articles: settings.articles.clone(),
            }),
            settings,
        }
    }

    /// Requires other modes from now on (ops changed them; the secrets and providers they need
    /// were checked against the configuration).
    pub fn require(&self, required: Required) {
        self.required.store(Arc::new(required));
    }

    /// The settings in force.
    pub fn settings(&self) -> &CaptchaSettings {
        &self.settings
    }

    /// A challenge for a reader of `article`: of the kind `requested` if given (a reader who
    /// cannot read images asks for proof of work), else of the kind the article needs.
    pub async fn issue(
        &self,
        article: &ArticleId,
        requested: Option<Mode>,
    ) -> Result<Challenge, CaptchaError> {
        let required = self.required.load().mode_for(article);
        let alternative = self.settings.image_alternative;
        let mode = match requested {
            // A (harder) proof of work is the accessible stand-in for the image, where allowed.
            Some(Mode::ProofOfWork) if required == Mode::Image && alternative => {
                return Ok(Challenge::ProofOfWork(
                    self.pow()?.issue(pow::Purpose::ImageAlternative),
                ));
            }
            Some(m) if m != required && required != Mode::Off => {
                return Err(CaptchaError::WrongKind(required.name()));
            }
            _ => required,
        };
        match mode {
            Mode::Off => Ok(Challenge::None),
            Mode::Image => self.images()?.issue().await.map(Challenge::Image),
            Mode::ProofOfWork => Ok(Challenge::ProofOfWork(
                self.pow()?.issue(pow::Purpose::Standalone),
            )),
            Mode::Turnstile | Mode::Hcaptcha | Mode::RecaptchaV2 | Mode::RecaptchaV3 => {
                let site_key = self.providers.site_key(mode).ok_or_else(|| {
                    CaptchaError::Unavailable(format!("{} is not configured", mode.name()))
                })?;
                Ok(Challenge::Provider { mode, site_key })
            }
        }
    }

    /// The image challenges (issuing with a chosen answer is for tests).
    pub fn images(&self) -> Result<&image::ImageCaptcha, CaptchaError> {
        self.images
            .as_ref()
            .ok_or_else(|| CaptchaError::Unavailable("image challenges are not configured".into()))
    }

    /// The proof-of-work challenges.
    pub fn pow(&self) -> Result<&pow::ProofOfWork, CaptchaError> {
        self.pow.as_ref().ok_or_else(|| {
            CaptchaError::Unavailable("proof-of-work challenges are not configured".into())
        })
    }
}

#[async_trait]
impl CaptchaVerifier for Captchas {
    fn remote(&self, comment: &NewComment) -> bool {
        let required = self.required.load().mode_for(&comment.article_id);
        matches!(
            (required, &comment.captcha),
            (
                Mode::Turnstile | Mode::Hcaptcha | Mode::RecaptchaV2 | Mode::RecaptchaV3,
                Some(CaptchaAnswer::Provider { .. })
            )
        )
    }

    async fn verify(
        &self,
        comment: &NewComment,
        deadline: Instant,
    ) -> Result<Checked, CaptchaError> {
        let required = self.required.load().mode_for(&comment.article_id);
        if required == Mode::Off {
            return Ok(Checked::Passed);
        }
        let Some(answer) = &comment.captcha else {
            return Err(CaptchaError::Missing);
        };
        let claim = match (required, answer) {
            (
                Mode::Image,
                CaptchaAnswer::Image {
                    challenge_id,
                    answer,
                },
            ) => {
                let ip_group = comment.client_ip.group_key();
                self.images()?.claim(challenge_id, answer, &ip_group)?
            }
            // Where the image is required, only the alternative's harder proof of work stands
            // in for it, and only when allowed.
            (
                Mode::Image,
                CaptchaAnswer::ProofOfWork {
                    challenge,
                    solution,
                },
            ) if self.settings.image_alternative => {
                let purpose = pow::Purpose::ImageAlternative;
                self.pow()?.claim(challenge, *solution, purpose)?
            }
            (
                Mode::ProofOfWork,
                CaptchaAnswer::ProofOfWork {
                    challenge,
                    solution,
                },
            ) => self
                .pow()?
                .claim(challenge, *solution, pow::Purpose::Standalone)?,
            (
                Mode::Turnstile | Mode::Hcaptcha | Mode::RecaptchaV2 | Mode::RecaptchaV3,
                CaptchaAnswer::Provider { token },
            ) => {
                let wait = self
                    .settings
                    .provider_timeout
                    .min(deadline.saturating_duration_since(Instant::now()));
                let ip = comment.client_ip.to_string();
                let claimant = comment.idempotency_key.as_str();
                self.providers
                    .verify(required, token, &ip, claimant, wait)
                    .await?;
                return Ok(Checked::Passed);
            }
            (mode, _) => return Err(CaptchaError::WrongKind(mode.name())),
        };
        Ok(Checked::Claim(claim))
    }
}

/// Keyed hash (HMAC-SHA256) of `parts`, hex.
pub(crate) fn keyed_hash(secret: &Secret, parts: &[&[u8]]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| Hmac::<sha2::Sha256>::new_from_slice(b"").expect("empty key works"));
    for part in parts {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes())
}

pub(crate) use crate::hex::hex;

pub(crate) use crate::secret::same;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_can_require_another_mode_than_the_default() {
        let mut s = CaptchaSettings {
            mode: Mode::Image,
            ..CaptchaSettings::default()
        };
        s.articles.insert("quiet".into(), Mode::Off);
        let id = |a: &str| ArticleId::parse(a).unwrap();
        assert_eq!(s.mode_for(&id("quiet")), Mode::Off);
        assert_eq!(s.mode_for(&id("hot")), Mode::Image);
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        let s = CaptchaSettings {
            mode: Mode::Turnstile,
            image_chars: 9,
            articles: [("a".to_owned(), Mode::Image)].into_iter().collect(),
            ..CaptchaSettings::default()
        };
        let names: Vec<String> = s.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            ["captcha.secret", "captcha.image_chars", "captcha.turnstile"]
        );
    }

    #[test]
    fn constant_time_comparison_still_compares() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
