//! An Akismet-compatible API, so a CMS that already calls Akismet (WordPress and the many that
//! copied its plugin) can use this service by changing one host name: `POST /1.1/verify-key`,
//! `/1.1/comment-check`, `/1.1/submit-spam`, `/1.1/submit-ham`, with Akismet's form fields
//! and answers, on the console's listener. The key is one of our API keys with the portal role
//! (any key while authentication is off, where only this machine is served).
//!
//! `comment-check` runs the comment through the pipeline like `SubmitComment`: `true` (spam)
//! for a rejected comment (with `X-akismet-pro-tip: discard`) and for one held as spam or as a
//! bot, `false` otherwise; our outcome, comment id and reason codes travel in `X-Moderation-*`
//! headers. The same check sent again (a CMS retrying) gets the first answer. `submit-spam`
//! and `submit-ham` find the checked comment and decide it as a moderator named `akismet`:
//! they become labeled examples like any moderator's decision.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::Role;
use crate::comment::{IdempotencyKey, NewComment, RawSubmission};
use crate::console::Console;
use crate::console::session::Gatekeeper;
use crate::decide::Outcome;
use crate::pipeline::SubmitError;
use crate::review::{ClaimRequest, Decision, Label, Report, Verdict};

/// The moderator Akismet feedback is recorded as.
const MODERATOR: &str = "akismet";

/// What submit-spam and submit-ham answer (Akismet's exact words, which clients compare).
const THANKS: &str = "Thanks for making the web a better place.";

/// Akismet's form fields (those this service reads).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Fields {
    api_key: String,
    key: String,
    blog: String,
    user_ip: String,
    user_agent: String,
    permalink: String,
    #[serde(rename = "comment_post_ID")]
    comment_post_id: String,
    comment_author: String,
    comment_author_email: String,
    comment_content: String,
    comment_date_gmt: String,
    honeypot_field_name: String,
    #[serde(flatten)]
    other: std::collections::HashMap<String, String>,
}

fn answer(
    status: StatusCode,
    body: &'static str,
    headers: Vec<(&'static str, String)>,
) -> Response {
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), v);
        }
    }
    response
}

fn debug_help(status: StatusCode, body: &'static str, help: impl Into<String>) -> Response {
    answer(status, body, vec![("x-akismet-debug-help", help.into())])
}

/// Whether `fields` carry a key this service accepts for Akismet calls.
fn key_ok(console: &Console, fields: &Fields) -> bool {
    let presented = if fields.api_key.is_empty() {
        &fields.key
    } else {
        &fields.api_key
    };
    match &console.gate {
        Gatekeeper::Keys(keys) => keys.caller(presented).is_some_and(|c| c.has(Role::Portal)),
        Gatekeeper::Names { .. } => true,
    }
}

/// `POST /1.1/verify-key`: `valid` or `invalid`.
pub async fn verify_key(
    State(console): State<Arc<Console>>,
    Form(fields): Form<Fields>,
) -> Response {
    if key_ok(&console, &fields) {
        answer(StatusCode::OK, "valid", vec![])
    } else {
        debug_help(
            StatusCode::OK,
            "invalid",
            "the key is not one of this service's portal keys",
        )
    }
}

impl Fields {
    /// The submission these fields describe. Akismet makes the author and the e-mail address
    /// optional; this service needs both, so a missing one is filled in (`anonymous`, and an
    /// address under the reserved `.invalid` domain per IP address, so that e-mail quotas
    /// count each address apart).
    fn submission(&self) -> RawSubmission {
        let author = Some(self.comment_author.trim())
            .filter(|a| !a.is_empty())
            .unwrap_or("anonymous");
        let email = Some(self.comment_author_email.trim())
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("anonymous-{}@akismet.invalid", short_hash(&self.user_ip)));
        let article: String = [&self.permalink, &self.comment_post_id, &self.blog]
            .into_iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .unwrap_or("akismet")
            .chars()
            .take(128)
            .collect();
        let honeypot = if self.honeypot_field_name.is_empty() {
            String::new()
        } else {
            self.other
                .get(&self.honeypot_field_name)
                .cloned()
                .unwrap_or_default()
        };
        // The same check sent again is the same submission: a retry gets the first answer.
        let key = format!(
            "akismet-{}",
            short_hash(
                &[
                    self.blog.as_str(),
                    &article,
                    author,
                    &email,
                    &self.comment_content,
                    &self.user_ip,
                    &self.comment_date_gmt,
                ]
                .join("\u{1f}")
            )
        );
        RawSubmission {
            article_id: article,
            author_name: author.to_owned(),
            author_email: email,
            body: self.comment_content.clone(),
            client_ip: self.user_ip.trim().to_owned(),
            user_agent: self.user_agent.clone(),
            idempotency_key: key,
            honeypot,
            ..RawSubmission::default()
        }
    }
}

/// 32 hex digits of SHA-256.
fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::hex::hex(&Sha256::digest(s.as_bytes())[..16])
}

fn missing(fields: &Fields) -> Option<&'static str> {
    if fields.blog.trim().is_empty() {
        Some("Missing required field: blog.")
    } else if fields.user_ip.trim().is_empty() {
        Some("Missing required field: user_ip.")
    } else {
        None
    }
}

/// `POST /1.1/comment-check`.
pub async fn comment_check(
    State(console): State<Arc<Console>>,
    Form(fields): Form<Fields>,
) -> Response {
    if !key_ok(&console, &fields) {
        return debug_help(
            StatusCode::OK,
            "invalid",
            "the key is not one of this service's portal keys",
        );
    }
    if let Some(problem) = missing(&fields) {
        return debug_help(StatusCode::OK, "Missing required field.", problem);
    }
    let raw = fields.submission();
    match console.pipeline.submit(&raw, console.deadline()).await {
        Ok(submitted) => {
            let r = &submitted.receipt;
            let codes: Vec<&str> = r.reasons.iter().map(|x| x.code.as_str()).collect();
            let spam_like = codes
                .iter()
                .any(|c| c.starts_with("SPAM_") || c.starts_with("BOT_"));
            let spam = match r.outcome {
                Outcome::Rejected => true,
                Outcome::PendingReview => spam_like,
                Outcome::Accepted => false,
            };
            let mut headers = vec![
                ("x-moderation-outcome", r.outcome.as_str().to_owned()),
                ("x-moderation-comment-id", r.comment_id.to_string()),
                ("x-moderation-reasons", codes.join(", ")),
            ];
            if r.outcome == Outcome::Rejected {
                headers.push(("x-akismet-pro-tip", "discard".to_owned()));
            }
            answer(StatusCode::OK, if spam { "true" } else { "false" }, headers)
        }
        Err(e) => refused(&e),
    }
}

/// A submission this API could not answer `true` or `false` for.
fn refused(e: &SubmitError) -> Response {
    match e {
        SubmitError::Invalid(violations) => {
            let help: Vec<String> = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect();
            debug_help(StatusCode::BAD_REQUEST, "invalid", help.join("; "))
        }
        SubmitError::RateLimited(limit) => {
            let retry = match limit {
                crate::rate_limit::RateLimitError::Limited { retry_after, .. } => {
                    retry_after.as_secs().max(1)
                }
                crate::rate_limit::RateLimitError::Unavailable(_) => 1,
            };
            answer(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limited",
                vec![
                    ("retry-after", retry.to_string()),
                    ("x-akismet-debug-help", limit.to_string()),
                ],
            )
        }
        SubmitError::Captcha(c) => debug_help(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!(
                "the CAPTCHA is required here ({c}); Akismet clients send none: set captcha.mode = \"off\" or exempt their articles"
            ),
        ),
        // A banned or suspended reader's comment is not published: spam, as Akismet says it.
        SubmitError::Reader(r) => answer(
            StatusCode::OK,
            "true",
            vec![(
                "x-akismet-pro-tip",
                format!("discard (the reader is {})", r.standing.as_str()),
            )],
        ),
        SubmitError::ArticleClosed => debug_help(
            StatusCode::CONFLICT,
            "closed",
            "comments on this article are closed (articles.closed)",
        ),
        SubmitError::Unavailable(why) => {
            debug_help(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why.clone())
        }
        SubmitError::KeyReused | SubmitError::Unexpected(_) => debug_help(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            "the service could not check this comment; see its logs",
        ),
    }
}

/// `POST /1.1/submit-spam`.
pub async fn submit_spam(
    State(console): State<Arc<Console>>,
    Form(fields): Form<Fields>,
) -> Response {
    feedback(&console, &fields, true).await
}

/// `POST /1.1/submit-ham`.
pub async fn submit_ham(
    State(console): State<Arc<Console>>,
    Form(fields): Form<Fields>,
) -> Response {
    feedback(&console, &fields, false).await
}

/// Decides the checked comment these fields describe as spam or as ham; says what it did in
/// `X-Moderation-Feedback` (Akismet's answer is always the same sentence).
async fn feedback(console: &Console, fields: &Fields, spam: bool) -> Response {
    if !key_ok(console, fields) {
        return debug_help(
            StatusCode::OK,
            "invalid",
            "the key is not one of this service's portal keys",
        );
    }
    if let Some(problem) = missing(fields) {
        return debug_help(StatusCode::OK, "Missing required field.", problem);
    }
    let did = match decide_checked(console, fields, spam).await {
        Ok(did) => did,
        Err(why) => why,
    };
    answer(StatusCode::OK, THANKS, vec![("x-moderation-feedback", did)])
}

async fn decide_checked(console: &Console, fields: &Fields, spam: bool) -> Result<String, String> {
    let raw = fields.submission();
    let comment = NewComment::parse(&raw, &console.pipeline.limits)
        .map_err(|_| "the fields do not describe a comment this service checked".to_owned())?;
    let key: &IdempotencyKey = &comment.idempotency_key;
    let receipt = console
        .pipeline
        .store
        .receipt(key, &comment.fingerprint())
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no comment-check of this comment is stored".to_owned())?;
    let id = receipt.comment_id;
    let deadline = console.deadline();
    let queue = &console.queue;
    let state = queue
        .comment(id, deadline)
        .await
        .map_err(|e| e.to_string())?
        .map(|c| c.state)
        .ok_or_else(|| "the checked comment is no longer stored".to_owned())?;
    let verdict = if spam {
        Verdict::Reject(Some(Label::Spam))
    } else {
        Verdict::Approve
    };
    let version = match (state, spam) {
        (Outcome::PendingReview, _) => claim(console, id).await?,
        // Spam that was published: reported back to the queue, then rejected (taken down).
        (Outcome::Accepted, true) => {
            let report = Report::parse(&id.to_string(), "submit-spam", MODERATOR)
                .map_err(|_| "the report could not be made".to_owned())?;
            queue
                .report(&report, deadline)
                .await
                .map_err(|e| e.to_string())?;
            claim(console, id).await?
        }
        (state, _) => return Ok(format!("nothing to do: the comment is {state}")),
    };
    let decision = Decision::parse(&id.to_string(), version, MODERATOR, Some(verdict), "")
        .map_err(|_| "the decision could not be made".to_owned())?;
    let (now, _) = queue
        .decide(&decision, deadline)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("the comment is now {now}"))
}

/// Claims `id` for the Akismet moderator; its version.
async fn claim(console: &Console, id: crate::comment::CommentId) -> Result<u64, String> {
    let request = ClaimRequest::parse(
        MODERATOR,
        0,
        &[id.to_string()],
        None,
        console.queue.settings(),
    )
    .map_err(|_| "the claim could not be made".to_owned())?;
    let claimed = console
        .queue
        .claim(&request, console.deadline())
        .await
        .map_err(|e| e.to_string())?;
    claimed
        .first()
        .map(|i| i.version)
        .ok_or_else(|| "the comment could not be claimed".to_owned())
}
