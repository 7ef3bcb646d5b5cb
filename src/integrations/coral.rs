//! Coral's external moderation phase: `POST /coral/moderate` takes the request Coral sends for
//! a new or edited comment (`action`, `comment.body`, `comment.parentID`, `author`, `story`,
//! `site`, `tenantID`), checks its `X-Coral-Signature` (HMAC-SHA256 of the body with the
//! phase's signing secret, `[coral] signing_secret`), runs the comment through the pipeline and
//! answers in Coral's shape: nothing for a published comment, `SYSTEM_WITHHELD` for a held
//! one and `REJECTED` for a rejected one, each with a `FLAG` action saying spam or toxic.
//!
//! Coral sends neither an e-mail nor an IP address. The pipeline needs both (quotas count by
//! them), so each Coral user gets stand-ins of their own: an address under the reserved
//! `.invalid` domain and a network in the private `fd00::/8` range, both derived from the user's
//! id; quotas per address then count per Coral user. Staff, moderators and admins are not
//! moderated (204, as Coral allows).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::comment::RawSubmission;
use crate::console::Console;
use crate::decide::Outcome;
use crate::pipeline::SubmitError;
use crate::secret::Secret;

/// Section `[coral]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoralSettings {
    /// The external moderation phase's signing secret, as Coral's admin shows it. Without it the
    /// endpoint refuses every request.
    pub signing_secret: Option<Secret>,
}

/// The request, as Coral's documentation gives it (the fields this service reads).
#[derive(Debug, Deserialize)]
struct ModerationRequest {
    action: String,
    comment: CoralComment,
    author: CoralAuthor,
    story: CoralStory,
    #[serde(rename = "tenantID", default)]
    tenant_id: String,
}

#[derive(Debug, Deserialize)]
struct CoralComment {
    body: String,
}

#[derive(Debug, Deserialize)]
struct CoralAuthor {
    id: String,
    #[serde(default)]
    role: String,
}

#[derive(Debug, Deserialize)]
struct CoralStory {
    id: String,
}

/// Whether one of the `sha256=` signatures in `header` is the body's HMAC with `secret`.
fn signed(secret: &str, header: &str, body: &[u8]) -> bool {
    let expected = crate::secret::hmac_sha256_hex(secret.as_bytes(), &[body]);
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("sha256="))
        .any(|given| crate::secret::same(given, &expected))
}

fn hash(s: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).into()
}

/// Coral's bodies are HTML from its editor (`<p>`, `<b>`, `<i>`, `<a>`, `<br>`,
/// `<blockquote>`): the text is what is scored and stored. Written here because only that
/// small, known subset needs reading, not arbitrary HTML: tags become nothing (block tags a
/// line break), the five named entities and numeric ones are decoded.
pub fn text_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        decode_into(&rest[..start], &mut out);
        let Some(end) = rest[start..].find('>') else {
            decode_into(&rest[start..], &mut out);
            return out.trim().to_owned();
        };
        let tag = rest[start + 1..start + end]
            .trim_start_matches('/')
            .to_ascii_lowercase();
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        if matches!(name, "br" | "p" | "div" | "blockquote" | "li")
            && !out.ends_with('\n')
            && !out.is_empty()
        {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    decode_into(rest, &mut out);
    out.trim().to_owned()
}

fn decode_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let entity = after.find(';').map(|end| &after[1..end]);
        let decoded = entity.and_then(|e| match e {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        });
        match (decoded, entity) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &after[e.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
}

impl ModerationRequest {
    fn submission(&self) -> RawSubmission {
        let user = hash(&format!("{}\u{1f}{}", self.tenant_id, self.author.id));
        let ip = format!(
            "fd{:02x}:{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}::1",
            user[0], user[1], user[2], user[3], user[4], user[5], user[6]
        );
        let body = text_of(&self.comment.body);
        let key = hash(&format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.tenant_id, self.story.id, self.author.id, self.action, body
        ));
        RawSubmission {
            article_id: self.story.id.chars().take(128).collect(),
            // Coral's parentID names a comment in Coral, not one stored here.
            parent_id: None,
            author_name: self.author.id.chars().take(100).collect(),
            author_email: format!("coral-{}@coral.invalid", crate::hex::hex(&user[..8])),
            body,
            client_ip: ip,
            user_agent: "coral".into(),
            idempotency_key: format!("coral-{}", crate::hex::hex(&key[..16])),
            ..RawSubmission::default()
        }
    }
}

/// The response, in Coral's shape.
fn coral_answer(outcome: Outcome, codes: &[&str]) -> Response {
    let mut actions = Vec::new();
    if codes
        .iter()
        .any(|c| c.starts_with("SPAM_") || c.starts_with("BOT_") || c.starts_with("BLOCKED_"))
    {
        actions
            .push(serde_json::json!({ "actionType": "FLAG", "reason": "COMMENT_DETECTED_SPAM" }));
    }
    if codes.iter().any(|c| c.starts_with("TOXIC_")) {
        actions
            .push(serde_json::json!({ "actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC" }));
    }
    let body = match outcome {
        Outcome::Accepted => serde_json::json!({}),
        Outcome::PendingReview => {
            serde_json::json!({ "status": "SYSTEM_WITHHELD", "actions": actions })
        }
        Outcome::Rejected => serde_json::json!({ "status": "REJECTED", "actions": actions }),
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `POST /coral/moderate`.
pub async fn moderate(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = &console.coral.signing_secret else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "set [coral] signing_secret to the external moderation phase's signing secret",
        );
    };
    let signature = headers
        .get("x-coral-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !signed(secret.expose(), signature, &body) {
        return refusal(
            StatusCode::UNAUTHORIZED,
            "X-Coral-Signature does not match the body",
        );
    }
    let request: ModerationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!("not an external moderation request: {e}"),
            );
        }
    };
    if !request.author.role.is_empty() && request.author.role != "COMMENTER" {
        return StatusCode::NO_CONTENT.into_response();
    }
    match console
        .pipeline
        .submit(&request.submission(), console.deadline())
        .await
    {
        Ok(submitted) => {
            let codes: Vec<&str> = submitted
                .receipt
                .reasons
                .iter()
                .map(|r| r.code.as_str())
                .collect();
            coral_answer(submitted.receipt.outcome, &codes)
        }
        Err(SubmitError::ArticleClosed) => coral_answer(Outcome::Rejected, &[]),
        Err(SubmitError::Reader(_)) => coral_answer(Outcome::Rejected, &["READER_BANNED"]),
        // A flood is held for Coral's moderators rather than published.
        Err(SubmitError::RateLimited(_)) => coral_answer(Outcome::PendingReview, &[]),
        Err(SubmitError::Invalid(violations)) => {
            let what: Vec<String> = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect();
            refusal(StatusCode::BAD_REQUEST, &what.join("; "))
        }
        // Coral skips a phase that fails or times out: the comment gets Coral's own default.
        Err(e) => refusal(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coral_html_becomes_text() {
        assert_eq!(
            text_of("<p>Bài <b>hay</b> &amp; đúng</p><p>Cảm&nbsp;ơn &#272;&#x1ea1;i</p>"),
            "Bài hay & đúng\nCảm ơn Đại"
        );
        assert_eq!(text_of("a &bogus; b < c"), "a &bogus; b < c");
        assert_eq!(text_of("<script>x</script>y"), "xy");
    }

    #[test]
    fn signatures_are_checked_like_coral_signs() {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let good = format!("sha256={}", crate::hex::hex(&mac.finalize().into_bytes()));
        assert!(signed("s3cret", &good, b"{}"));
        assert!(
            signed("s3cret", &format!("sha256=00,{good}"), b"{}"),
            "a rolled secret"
        );
        assert!(!signed("s3cret", &good, b"{ }"));
        assert!(!signed("other", &good, b"{}"));
        assert!(!signed("s3cret", "", b"{}"));
    }
}
