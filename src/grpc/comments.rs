//! `CommentService`: CAPTCHA challenges, submissions and reading a comment back. The mapping
//! from submission errors to statuses is the table in [`submit_status`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{Instrument, field};

use super::{ERROR_DOMAIN, comment_message, deadline, invalid_argument, sees, timestamp};
use crate::captcha::{CaptchaError, Captchas, Challenge, Mode};
use crate::comment::{ArticleId, CaptchaAnswer, CommentId, RawSubmission};
use crate::pipeline::{Pipeline, SubmitError, Submitted};
use crate::proto::v1 as pb;
use crate::rate_limit::RateLimitError;

/// `CommentService`.
#[derive(Clone)]
pub struct CommentApi {
    pipeline: Arc<Pipeline>,
    captchas: Arc<Captchas>,
    request_timeout: Duration,
}

impl CommentApi {
    /// The service over `pipeline` and `captchas`; each request may take at most
    /// `request_timeout` (or the client's shorter `grpc-timeout`).
    pub fn new(
        pipeline: Arc<Pipeline>,
        captchas: Arc<Captchas>,
        request_timeout: Duration,
    ) -> Self {
        CommentApi {
            pipeline,
            captchas,
            request_timeout,
        }
    }

    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        deadline(request, self.request_timeout)
    }
}

impl From<pb::SubmitCommentRequest> for RawSubmission {
    fn from(r: pb::SubmitCommentRequest) -> Self {
        let captcha = r.captcha.and_then(|c| c.answer).map(|answer| match answer {
            pb::captcha_answer::Answer::Image(a) => CaptchaAnswer::Image {
                challenge_id: a.challenge_id,
                answer: a.answer,
            },
            pb::captcha_answer::Answer::ProofOfWork(a) => CaptchaAnswer::ProofOfWork {
                challenge: a.challenge,
                solution: a.solution,
            },
            pb::captcha_answer::Answer::Provider(a) => CaptchaAnswer::Provider { token: a.token },
        });
        RawSubmission {
            article_id: r.article_id,
            article_title: r.article_title,
            parent_id: r.parent_id,
            author_name: r.author_name,
            author_email: r.author_email,
            body: r.body,
            client_ip: r.client_ip,
            user_agent: r.user_agent,
            idempotency_key: r.idempotency_key,
            captcha,
            honeypot: r.honeypot,
            // Saturating: a time too far off to be held in milliseconds is refused as out of
            // range by validation, never wrapped into a plausible one.
            form_rendered_at_ms: r.form_rendered_at.map(|t| {
                t.seconds
                    .saturating_mul(1000)
                    .saturating_add(i64::from(t.nanos) / 1_000_000)
            }),
        }
    }
}

impl From<Submitted> for pb::SubmitCommentResponse {
    fn from(s: Submitted) -> Self {
        let r = s.receipt;
        pb::SubmitCommentResponse {
            comment_id: r.comment_id.to_string(),
            outcome: pb::Outcome::from(r.outcome).into(),
            spam_score: r.spam,
            toxic_score: r.toxic,
            reasons: r.reasons.into_iter().map(Into::into).collect(),
            model_version: r.model_version,
            replayed: s.replayed,
        }
    }
}

/// The status for a failed submission. One arm per error, each with why that code.
pub fn submit_status(error: &SubmitError) -> Status {
    match error {
        // The portal shows each violation next to its form field.
        SubmitError::Invalid(violations) => invalid_argument("the comment is invalid", violations),
        // The key names another comment: retrying cannot help, the portal has a bug.
        SubmitError::KeyReused => Status::with_error_details(
            Code::AlreadyExists,
            "the idempotency key was already used for a different comment",
            ErrorDetails::with_error_info("IDEMPOTENCY_KEY_REUSED", ERROR_DOMAIN, []),
        ),
        // The portal can show "try again in N seconds".
        SubmitError::RateLimited(RateLimitError::Limited {
            bucket,
            retry_after,
        }) => {
            let mut details = ErrorDetails::with_retry_info(Some(*retry_after));
            details.add_quota_failure_violation(
                bucket.clone(),
                format!("too many comments for rate limit '{bucket}'"),
            );
            Status::with_error_details(
                Code::ResourceExhausted,
                format!(
                    "rate limit '{bucket}' exceeded; retry in {:.1} s",
                    retry_after.as_secs_f32()
                ),
                details,
            )
        }
        // Guessing CAPTCHA answers is throttled like a rate limit: the portal can tell when.
        SubmitError::Captcha(CaptchaError::Throttled(retry_after)) => {
            let mut details = ErrorDetails::with_retry_info(Some(*retry_after));
            details.add_quota_failure_violation(
                "captcha_wrong_answers",
                "too many wrong CAPTCHA answers from this address",
            );
            details.set_error_info("CAPTCHA_THROTTLED", ERROR_DOMAIN, []);
            Status::with_error_details(
                Code::ResourceExhausted,
                format!(
                    "too many wrong CAPTCHA answers; retry in {:.0} s",
                    retry_after.as_secs_f32().ceil()
                ),
                details,
            )
        }
        // Transient: the same request may succeed in a moment.
        SubmitError::RateLimited(RateLimitError::Unavailable(_))
        | SubmitError::Captcha(CaptchaError::Unavailable(_))
        | SubmitError::Unavailable(_) => Status::with_error_details(
            Code::Unavailable,
            "the service cannot store comments right now; retry with the same idempotency key",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
        ),
        // The reader must answer a new challenge; the reason says which message to show.
        SubmitError::Captcha(e) => Status::with_error_details(
            Code::FailedPrecondition,
            e.to_string(),
            ErrorDetails::with_error_info(e.reason(), ERROR_DOMAIN, []),
        ),
        // The portal tells the reader they may not comment, and until when.
        SubmitError::Reader(refusal) => reader_refused(refusal),
        // The portal shows that comments are closed; retrying cannot help.
        SubmitError::ArticleClosed => Status::with_error_details(
            Code::FailedPrecondition,
            error.to_string(),
            ErrorDetails::with_error_info("ARTICLE_CLOSED", ERROR_DOMAIN, []),
        ),
        // A bug or broken data: nothing the caller can fix; the cause is in the logs.
        SubmitError::Unexpected(_) => Status::internal("internal error"),
    }
}

/// A banned or suspended reader's refusal: `PERMISSION_DENIED` with `READER_BANNED` or
/// `READER_SUSPENDED`, and the end and reason in its metadata (`until` as RFC 3339).
fn reader_refused(refusal: &crate::readers::Refusal) -> Status {
    use crate::readers::Standing;
    let code = match refusal.standing {
        Standing::Suspended => "READER_SUSPENDED",
        _ => "READER_BANNED",
    };
    let until = refusal
        .until_ms
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string());
    let mut metadata = std::collections::HashMap::new();
    if let Some(until) = &until {
        metadata.insert("until".to_owned(), until.clone());
    }
    if !refusal.reason.is_empty() {
        metadata.insert("reason".to_owned(), refusal.reason.clone());
    }
    let message = match &until {
        Some(until) => format!("the reader is {} until {until}", refusal.standing.as_str()),
        None => format!("the reader is {}", refusal.standing.as_str()),
    };
    Status::with_error_details(
        Code::PermissionDenied,
        message,
        ErrorDetails::with_error_info(code, ERROR_DOMAIN, metadata),
    )
}

impl From<pb::CaptchaKind> for Option<Mode> {
    fn from(kind: pb::CaptchaKind) -> Self {
        match kind {
            pb::CaptchaKind::Unspecified => None,
            pb::CaptchaKind::None => Some(Mode::Off),
            pb::CaptchaKind::Image => Some(Mode::Image),
            pb::CaptchaKind::ProofOfWork => Some(Mode::ProofOfWork),
            pb::CaptchaKind::Turnstile => Some(Mode::Turnstile),
            pb::CaptchaKind::Hcaptcha => Some(Mode::Hcaptcha),
            pb::CaptchaKind::RecaptchaV2 => Some(Mode::RecaptchaV2),
            pb::CaptchaKind::RecaptchaV3 => Some(Mode::RecaptchaV3),
        }
    }
}

impl From<Mode> for pb::CaptchaKind {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Off => pb::CaptchaKind::None,
            Mode::Image => pb::CaptchaKind::Image,
            Mode::ProofOfWork => pb::CaptchaKind::ProofOfWork,
            Mode::Turnstile => pb::CaptchaKind::Turnstile,
            Mode::Hcaptcha => pb::CaptchaKind::Hcaptcha,
            Mode::RecaptchaV2 => pb::CaptchaKind::RecaptchaV2,
            Mode::RecaptchaV3 => pb::CaptchaKind::RecaptchaV3,
        }
    }
}

impl From<Challenge> for pb::IssueCaptchaResponse {
    fn from(challenge: Challenge) -> Self {
        use pb::issue_captcha_response::Challenge as C;
        match challenge {
            Challenge::None => pb::IssueCaptchaResponse {
                kind: pb::CaptchaKind::None.into(),
                ..Default::default()
            },
            Challenge::Image(i) => pb::IssueCaptchaResponse {
                kind: pb::CaptchaKind::Image.into(),
                expires_at: Some(timestamp(i.expires_at_ms)),
                challenge: Some(C::Image(pb::ImageChallenge {
                    challenge_id: i.id,
                    png: i.png,
                    width: i.width,
                    height: i.height,
                })),
            },
            Challenge::ProofOfWork(p) => pb::IssueCaptchaResponse {
                kind: pb::CaptchaKind::ProofOfWork.into(),
                expires_at: Some(timestamp(p.expires_at_ms)),
                challenge: Some(C::ProofOfWork(pb::ProofOfWorkChallenge {
                    algorithm: p.algorithm,
                    challenge: p.challenge,
                    salt: p.salt,
                    max_number: p.max_number,
                    signature: p.signature,
                    token: p.token,
                })),
            },
            Challenge::Provider { mode, site_key } => pb::IssueCaptchaResponse {
                kind: pb::CaptchaKind::from(mode).into(),
                expires_at: None,
                challenge: Some(C::Provider(pb::ProviderChallenge { site_key })),
            },
        }
    }
}

#[tonic::async_trait]
impl pb::comment_service_server::CommentService for CommentApi {
    async fn issue_captcha(
        &self,
        request: Request<pb::IssueCaptchaRequest>,
    ) -> Result<Response<pb::IssueCaptchaResponse>, Status> {
        let deadline = self.deadline(&request);
        let request = request.into_inner();
        let kind = request.kind();
        let article = ArticleId::parse(&request.article_id).map_err(|v| {
            Status::with_error_details(
                Code::InvalidArgument,
                format!("article_id {}", v.description),
                ErrorDetails::with_bad_request_violation(v.field, v.description),
            )
        })?;
        let issued =
            tokio::time::timeout_at(deadline.into(), self.captchas.issue(&article, kind.into()))
                .await
                .unwrap_or_else(|_| {
                    Err(CaptchaError::Unavailable(
                        "no answer before the deadline".into(),
                    ))
                });
        match issued {
            Ok(challenge) => Ok(Response::new(challenge.into())),
            // The article requires another kind: the portal asked for the wrong one.
            Err(e @ CaptchaError::WrongKind(_)) => Err(Status::with_error_details(
                Code::FailedPrecondition,
                e.to_string(),
                ErrorDetails::with_error_info(e.reason(), ERROR_DOMAIN, []),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "issuing a CAPTCHA failed");
                Err(Status::with_error_details(
                    Code::Unavailable,
                    "no CAPTCHA can be issued right now; retry",
                    ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
                ))
            }
        }
    }

    async fn submit_comment(
        &self,
        request: Request<pb::SubmitCommentRequest>,
    ) -> Result<Response<pb::SubmitCommentResponse>, Status> {
        let started = Instant::now();
        let deadline = self.deadline(&request);
        let raw = RawSubmission::from(request.into_inner());
        // Lengths only: comment text, names and e-mail addresses never reach the logs.
        let span = tracing::info_span!(
            "SubmitComment",
            body_bytes = raw.body.len(),
            comment_id = field::Empty,
            outcome = field::Empty,
            spam = field::Empty,
            toxic = field::Empty,
            replayed = field::Empty,
        );
        let result = self
            .pipeline
            .submit(&raw, deadline)
            .instrument(span.clone())
            .await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(submitted) => {
                let r = &submitted.receipt;
                span.record("comment_id", field::display(r.comment_id));
                span.record("outcome", r.outcome.as_str());
                // Displayed as the f32 they are (0.29), not widened to f64 (0.28999999165534973).
                span.record("spam", field::display(r.spam));
                span.record("toxic", field::display(r.toxic));
                span.record("replayed", submitted.replayed);
                span.in_scope(|| tracing::info!(elapsed_ms, "comment decided"));
                Ok(Response::new(submitted.into()))
            }
            Err(error) => {
                let status = submit_status(&error);
                span.in_scope(|| match &error {
                    SubmitError::Unexpected(cause) => {
                        tracing::error!(elapsed_ms, code = ?status.code(), error = format!("{cause:#}"), "submission failed")
                    }
                    // The storage watch says once that storage is down (and why); a line per
                    // request would flood the log while it is. The metrics count every one.
                    SubmitError::Unavailable(why) => {
                        tracing::debug!(elapsed_ms, code = ?status.code(), why, "submission failed")
                    }
                    _ => tracing::info!(elapsed_ms, code = ?status.code(), error = %error, "submission refused"),
                });
                Err(status)
            }
        }
    }

    async fn get_comment(
        &self,
        request: Request<pb::GetCommentRequest>,
    ) -> Result<Response<pb::GetCommentResponse>, Status> {
        let deadline = self.deadline(&request);
        // Moderators and operators see the reader's e-mail address; the portal does not.
        let show_email = sees(&request);
        let raw_id = request.into_inner().comment_id;
        let id = CommentId::parse("comment_id", &raw_id).map_err(|v| {
            Status::with_error_details(
                Code::InvalidArgument,
                "comment_id is not a comment id",
                ErrorDetails::with_bad_request_violation(v.field, v.description),
            )
        })?;
        match self.pipeline.comment(id, deadline).await {
            Ok(Some(comment)) => Ok(Response::new(pb::GetCommentResponse {
                comment: Some(comment_message(comment, show_email)),
            })),
            Ok(None) => Err(Status::not_found(format!("no comment {id}"))),
            Err(error) => {
                if let SubmitError::Unexpected(cause) = &error {
                    tracing::error!(comment_id = %id, error = format!("{cause:#}"), "reading a comment failed");
                }
                Err(submit_status(&error))
            }
        }
    }
}
