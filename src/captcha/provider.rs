//! Hosted CAPTCHA providers, checked through their siteverify APIs: Cloudflare Turnstile,
//! hCaptcha, reCAPTCHA v2 (checkbox) and v3 (score). A short timeout bounds the wait; the
//! hostname (and for Turnstile and reCAPTCHA v3 the action) the token was made for must be the
//! expected one; a reCAPTCHA v3 score must reach the minimum. Turnstile gets an idempotency key
//! derived from the submission's, so a retried submission does not burn its token.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CaptchaError, CaptchaSettings, Mode};
use crate::secret::Secret;

/// One provider's settings (`[captcha.turnstile]`, `[captcha.hcaptcha]`,
/// `[captcha.recaptcha]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The secret key the provider gave for this site.
    pub secret: Secret,
    /// The site key the widget is rendered with.
    pub site_key: String,
    /// The siteverify endpoint, if not the provider's own (for a proxy, or tests).
    #[serde(default)]
    pub verify_url: Option<String>,
    /// Hostnames a token may have been solved on; empty accepts any.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// The action the widget was rendered with (Turnstile, reCAPTCHA v3); unset accepts any.
    #[serde(default)]
    pub action: Option<String>,
    /// Lowest reCAPTCHA v3 score accepted (0 to 1).
    #[serde(default = "default_min_score")]
    pub min_score: f32,
}

fn default_min_score() -> f32 {
    0.5
}

/// The providers' own siteverify endpoints.
fn official_url(mode: Mode) -> &'static str {
    match mode {
        Mode::Turnstile => "https://challenges.cloudflare.com/turnstile/v0/siteverify",
        Mode::Hcaptcha => "https://api.hcaptcha.com/siteverify",
        _ => "https://www.google.com/recaptcha/api/siteverify",
    }
}

/// A siteverify answer (the fields the three providers share, and v3's).
#[derive(Debug, Deserialize)]
struct SiteVerify {
    success: bool,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    score: Option<f32>,
    #[serde(default, rename = "error-codes")]
    error_codes: Vec<String>,
}

/// The configured providers and an HTTP client for them.
pub struct Providers {
    client: reqwest::Client,
    turnstile: Option<ProviderSettings>,
    hcaptcha: Option<ProviderSettings>,
    recaptcha: Option<ProviderSettings>,
}

impl Providers {
    /// The providers of `settings`.
    pub fn new(settings: &CaptchaSettings) -> Self {
        // TLS uses rustls with the ring provider (no C toolchain needed beyond a compiler);
        // installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap_or_default();
        Providers {
            client,
            turnstile: settings.turnstile.clone(),
            hcaptcha: settings.hcaptcha.clone(),
            recaptcha: settings.recaptcha.clone(),
        }
    }

    fn settings(&self, mode: Mode) -> Option<&ProviderSettings> {
        match mode {
            Mode::Turnstile => self.turnstile.as_ref(),
            Mode::Hcaptcha => self.hcaptcha.as_ref(),
            Mode::RecaptchaV2 | Mode::RecaptchaV3 => self.recaptcha.as_ref(),
            _ => None,
        }
    }

    /// The site key of `mode`'s provider.
    pub fn site_key(&self, mode: Mode) -> Option<String> {
        self.settings(mode).map(|s| s.site_key.clone())
    }

    /// Checks `token` with `mode`'s provider, waiting at most `wait`.
    pub async fn verify(
        &self,
        mode: Mode,
        token: &str,
        ip: &str,
        claimant: &str,
        wait: Duration,
    ) -> Result<(), CaptchaError> {
        let settings = self.settings(mode).ok_or_else(|| {
            CaptchaError::Unavailable(format!("{} is not configured", mode.name()))
        })?;
        if token.trim().is_empty() {
            return Err(CaptchaError::Missing);
        }
        let mut form: Vec<(&str, String)> = vec![
            ("secret", settings.secret.expose().to_owned()),
            ("response", token.to_owned()),
            ("remoteip", ip.to_owned()),
        ];
        match mode {
            // The same submission always sends the same key, so a retry is answered from
            // Cloudflare's memory instead of failing as a duplicate.
            Mode::Turnstile => form.push((
                "idempotency_key",
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, claimant.as_bytes()).to_string(),
            )),
            Mode::Hcaptcha => form.push(("sitekey", settings.site_key.clone())),
            _ => {}
        }
        let url = settings
            .verify_url
            .clone()
            .unwrap_or_else(|| official_url(mode).to_owned());
        let response = self
            .client
            .post(&url)
            .timeout(wait)
            .form(&form)
            .send()
            .await
            .map_err(|e| CaptchaError::Unavailable(format!("{}: {e}", mode.name())))?;
        if !response.status().is_success() {
            return Err(CaptchaError::Unavailable(format!(
                "{} answered HTTP {}",
                mode.name(),
                response.status()
            )));
        }
        let answer: SiteVerify = response
            .json()
            .await
            .map_err(|e| CaptchaError::Unavailable(format!("{}: {e}", mode.name())))?;
        judge(mode, settings, &answer)
    }
}

/// The verdict on a provider's answer.
fn judge(mode: Mode, settings: &ProviderSettings, answer: &SiteVerify) -> Result<(), CaptchaError> {
    if !answer.success {
        let code = answer.error_codes.first().map(String::as_str).unwrap_or("");
        return Err(match code {
            "missing-input-response" => CaptchaError::Missing,
            "timeout-or-duplicate" | "already-seen-response" => CaptchaError::Used,
            "expired-input-response" => CaptchaError::Expired,
            // Our own configuration is wrong, or the provider failed: not the reader's fault.
            "missing-input-secret"
            | "invalid-input-secret"
            | "sitekey-secret-mismatch"
            | "bad-request"
            | "internal-error" => {
                tracing::error!(
                    provider = mode.name(),
                    code,
                    "the CAPTCHA provider refused our request"
                );
                CaptchaError::Unavailable(format!("{} said {code}", mode.name()))
            }
            _ => CaptchaError::Wrong,
        });
    }
    if !settings.hostnames.is_empty() {
        let host = answer.hostname.as_deref().unwrap_or("");
        if !settings.hostnames.iter().any(|h| h == host) {
            return Err(CaptchaError::WrongHostname);
        }
    }
    if let Some(expected) = &settings.action
        && matches!(mode, Mode::Turnstile | Mode::RecaptchaV3)
        && answer.action.as_deref() != Some(expected.as_str())
    {
        return Err(CaptchaError::WrongAction);
    }
    if mode == Mode::RecaptchaV3 && answer.score.unwrap_or(0.0) < settings.min_score {
        return Err(CaptchaError::LowScore);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProviderSettings {
        ProviderSettings {
            secret: Secret::new("s"),
            site_key: "k".into(),
            verify_url: None,
            hostnames: vec!["tin.example.vn".into()],
            action: Some("comment".into()),
            min_score: 0.5,
        }
    }

    fn answer(json: &str) -> SiteVerify {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_provider_answer_has_its_verdict() {
        let s = settings();
        let ok =
            r#"{"success": true, "hostname": "tin.example.vn", "action": "comment", "score": 0.9}"#;
        let cases: &[(Mode, &str, Result<(), CaptchaError>)] = &[
            (Mode::Turnstile, ok, Ok(())),
            (Mode::RecaptchaV3, ok, Ok(())),
            (
                Mode::Hcaptcha,
                r#"{"success": true, "hostname": "tin.example.vn"}"#,
                Ok(()),
            ),
            (
                Mode::Turnstile,
                r#"{"success": false, "error-codes": ["timeout-or-duplicate"]}"#,
                Err(CaptchaError::Used),
            ),
            (
                Mode::Hcaptcha,
                r#"{"success": false, "error-codes": ["invalid-input-response"]}"#,
                Err(CaptchaError::Wrong),
            ),
            (
                Mode::RecaptchaV2,
                r#"{"success": false, "error-codes": ["missing-input-response"]}"#,
                Err(CaptchaError::Missing),
            ),
            (
                Mode::Turnstile,
                r#"{"success": false, "error-codes": ["invalid-input-secret"]}"#,
                Err(CaptchaError::Unavailable(
                    "turnstile said invalid-input-secret".into(),
                )),
            ),
            (
                Mode::Turnstile,
                r#"{"success": true, "hostname": "evil.example", "action": "comment"}"#,
                Err(CaptchaError::WrongHostname),
            ),
            (
                Mode::Turnstile,
                r#"{"success": true, "hostname": "tin.example.vn", "action": "login"}"#,
                Err(CaptchaError::WrongAction),
            ),
            (
                Mode::RecaptchaV3,
                r#"{"success": true, "hostname": "tin.example.vn", "action": "comment", "score": 0.1}"#,
                Err(CaptchaError::LowScore),
            ),
            // v2 has no score and no action.
            (
                Mode::RecaptchaV2,
                r#"{"success": true, "hostname": "tin.example.vn"}"#,
                Ok(()),
            ),
        ];
        for (mode, json, expected) in cases {
            assert_eq!(
                &judge(*mode, &s, &answer(json)),
                expected,
                "{mode:?} {json}"
            );
        }
    }
}
