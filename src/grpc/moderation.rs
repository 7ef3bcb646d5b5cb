//! `ModerationService`: the review queue for moderators and readers' reports from the portal.
//! The mapping from review errors to statuses is the table in [`review_status`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{ERROR_DOMAIN, caller, comment_message, deadline, invalid_argument, sees, timestamp};
use crate::comment::{CommentId, Violation};
use crate::proto::v1 as pb;
use crate::review::{
    ClaimRequest, Cursor, Decision, FlaggedItem, HistoryEvent, Label, Page, Query, Queue, Report,
    ReviewError, Verdict,
};
use crate::store::StoreError;

/// `ModerationService`.
#[derive(Clone)]
pub struct ModerationApi {
    queue: Arc<Queue>,
    request_timeout: Duration,
}

impl ModerationApi {
    /// The service over `queue`; each request may take at most `request_timeout` (or the
    /// client's shorter `grpc-timeout`).
    pub fn new(queue: Arc<Queue>, request_timeout: Duration) -> Self {
        ModerationApi {
            queue,
            request_timeout,
        }
    }

    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        deadline(request, self.request_timeout)
    }
}

/// The moderator acting: with authentication on, the key's owner (a request naming someone
/// else is refused); without it, whoever the request names.
fn moderator<T>(request: &Request<T>, named: &str) -> Result<String, Status> {
    match caller(request) {
        None => Ok(named.to_owned()),
        Some(c) if named.is_empty() || named == c.name => Ok(c.name.clone()),
        Some(c) => Err(Status::permission_denied(format!(
            "the key of {} cannot act as moderator {named:?}",
            c.name
        ))),
    }
}

fn invalid(violations: Vec<Violation>) -> ReviewError {
    ReviewError::Invalid(violations)
}

/// The status for a refused review operation. One arm per error, each with why that code.
pub fn review_status(error: &ReviewError) -> Status {
    let info = |reason: &str, metadata: Vec<(&str, String)>| {
        ErrorDetails::with_error_info(
            reason,
            ERROR_DOMAIN,
            metadata
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<std::collections::HashMap<_, _>>(),
        )
    };
    match error {
        // The moderator's tool shows each violation next to its field.
        ReviewError::Invalid(violations) => invalid_argument("the request is invalid", violations),
        ReviewError::NotFound(id) => Status::with_error_details(
            Code::NotFound,
            error.to_string(),
            ErrorDetails::with_resource_info("comment", id.to_string(), "", "no such comment"),
        ),
        // Someone else changed it since it was read: read it again, then decide.
        ReviewError::Stale { current, given, .. } => Status::with_error_details(
            Code::Aborted,
            error.to_string(),
            info(
                "STALE_VERSION",
                vec![
                    ("current_version", current.to_string()),
                    ("given_version", given.to_string()),
                ],
            ),
        ),
        // Retrying cannot help until the other moderator's claim ends.
        ReviewError::ClaimedByOther { moderator, .. } => Status::with_error_details(
            Code::FailedPrecondition,
            error.to_string(),
            info("CLAIMED_BY_OTHER", vec![("moderator", moderator.clone())]),
        ),
        ReviewError::NotInReview { state, .. } => Status::with_error_details(
            Code::FailedPrecondition,
            error.to_string(),
            info("NOT_IN_REVIEW", vec![("state", state.as_str().to_owned())]),
        ),
        // The reader's report is already counted: nothing to retry.
        ReviewError::AlreadyReported(_) => Status::with_error_details(
            Code::AlreadyExists,
            error.to_string(),
            info("ALREADY_REPORTED", vec![]),
        ),
        // Like a rate limit on submissions: the portal can tell the reader when.
        ReviewError::TooManyReports(retry_after) => {
            let mut details = ErrorDetails::with_retry_info(Some(*retry_after));
            details.add_quota_failure_violation(
                "reports_per_reader",
                "too many reports from this reader",
            );
            Status::with_error_details(Code::ResourceExhausted, error.to_string(), details)
        }
        ReviewError::NotPublished { state, .. } => Status::with_error_details(
            Code::FailedPrecondition,
            error.to_string(),
            info("NOT_PUBLISHED", vec![("state", state.as_str().to_owned())]),
        ),
        // Transient: the same request may succeed in a moment.
        ReviewError::Store(StoreError::Unavailable(_)) => Status::with_error_details(
            Code::Unavailable,
            "the review queue cannot be reached right now; retry",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
        ),
        // Broken data or a bug: the cause is in the logs.
        ReviewError::Store(StoreError::Corrupt(_) | StoreError::KeyReused) => {
            Status::internal("internal error")
        }
    }
}

/// Logs what the caller cannot act on, then answers with the status.
fn refuse(operation: &str, error: ReviewError) -> Status {
    let status = review_status(&error);
    match &error {
        ReviewError::Store(StoreError::Unavailable(why)) => {
            tracing::warn!(operation, why, "review operation failed")
        }
        ReviewError::Store(e) => tracing::error!(operation, error = %e, "review operation failed"),
        _ => {
            tracing::info!(operation, code = ?status.code(), error = %error, "review operation refused")
        }
    }
    status
}

/// A waiting comment as sent; the reader's e-mail address only when `show_email` (a
/// moderator's or operator's key).
fn flagged_item(item: FlaggedItem, show_email: super::Sees) -> pb::FlaggedItem {
    pb::FlaggedItem {
        comment: Some(comment_message(item.comment, show_email)),
        version: item.version,
        explanation: item
            .explanation
            .into_iter()
            .map(|e| pb::Feature {
                head: e.head,
                feature: e.feature,
                weight: e.weight,
            })
            .collect(),
        claim: item.claim.map(|c| pb::Claim {
            moderator: c.moderator,
            until: Some(timestamp(c.until_ms)),
        }),
        author_record: Some(pb::AuthorRecord {
            accepted: item.author.accepted,
            rejected: item.author.rejected,
        }),
        ip_record: Some(pb::AuthorRecord {
            accepted: item.ip.accepted,
            rejected: item.ip.rejected,
        }),
        reports: item.reports,
        report_count: item.report_count,
    }
}

/// The most a page of `ListFlagged` may weigh on the wire: a page ends early (with a token to
/// go on) rather than exceed it, so it stays well inside the 4 MiB clients accept by default.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// Converts a page, ending it before [`MAX_PAGE_BYTES`]; the token then points after the last
/// item sent. A page always has its first item (one item is far below the bound).
fn page_message(page: Page, show_email: super::Sees) -> pb::ListFlaggedResponse {
    use prost::Message;
    let mut items = Vec::with_capacity(page.items.len());
    let mut bytes = 0;
    let mut next = page.next;
    let mut last = None;
    for item in page.items {
        let after = Cursor {
            arrived_ms: item.arrived_ms,
            id: item.comment.id,
        };
        let message = flagged_item(item, show_email);
        let len = message.encoded_len();
        if bytes + len > MAX_PAGE_BYTES && last.is_some() {
            // Cut here: the next page starts after the last item sent.
            next = last;
            break;
        }
        bytes += len;
        items.push(message);
        last = Some(after);
    }
    pb::ListFlaggedResponse {
        next_page_token: next.map(|c| c.token()).unwrap_or_default(),
        items,
    }
}

impl From<HistoryEvent> for pb::HistoryEvent {
    fn from(e: HistoryEvent) -> Self {
        pb::HistoryEvent {
            at: Some(timestamp(e.at_ms)),
            actor: e.actor,
            action: e.action,
            state: pb::CommentState::from(e.state).into(),
            note: e.note,
        }
    }
}

fn comment_id(raw: &str) -> Result<CommentId, ReviewError> {
    CommentId::parse("comment_id", raw).map_err(|v| invalid(vec![v]))
}

#[tonic::async_trait]
impl pb::moderation_service_server::ModerationService for ModerationApi {
    async fn list_flagged(
        &self,
        request: Request<pb::ListFlaggedRequest>,
    ) -> Result<Response<pb::ListFlaggedResponse>, Status> {
        let deadline = self.deadline(&request);
        let show_email = sees(&request);
        let r = request.into_inner();
        let page = async {
            let query = Query::parse(
                r.article_id.as_deref(),
                r.reason.as_deref(),
                r.min_age_seconds,
                r.max_age_seconds,
                r.page_size,
                &r.page_token,
            )
            .map_err(invalid)?;
            self.queue.list(&query, deadline).await
        }
        .await
        .map_err(|e| refuse("ListFlagged", e))?;
        Ok(Response::new(page_message(page, show_email)))
    }

    async fn claim_flagged(
        &self,
        request: Request<pb::ClaimFlaggedRequest>,
    ) -> Result<Response<pb::ClaimFlaggedResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = moderator(&request, &request.get_ref().moderator)?;
        let show_email = sees(&request);
        let r = request.into_inner();
        let items = async {
            let claim = ClaimRequest::parse(
                &who,
                r.count,
                &r.comment_ids,
                r.lease_seconds,
                self.queue.settings(),
            )
            .map_err(invalid)?;
            self.queue.claim(&claim, deadline).await
        }
        .await
        .map_err(|e| refuse("ClaimFlagged", e))?;
        Ok(Response::new(pb::ClaimFlaggedResponse {
            items: items
                .into_iter()
                .map(|i| flagged_item(i, show_email))
                .collect(),
        }))
    }

    async fn decide_comment(
        &self,
        request: Request<pb::DecideCommentRequest>,
    ) -> Result<Response<pb::DecideCommentResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = moderator(&request, &request.get_ref().moderator)?;
        let r = request.into_inner();
        let label = match r.label() {
            pb::RejectLabel::Unspecified => None,
            pb::RejectLabel::Spam => Some(Label::Spam),
            pb::RejectLabel::Abuse => Some(Label::Abuse),
        };
        let verdict = match r.decision() {
            pb::ModeratorDecision::Unspecified => None,
            pb::ModeratorDecision::Approve => Some(Verdict::Approve),
            pb::ModeratorDecision::Reject => Some(Verdict::Reject(label)),
        };
        let (state, version) = async {
            let decision = Decision::parse(&r.comment_id, r.version, &who, verdict, &r.note)
                .map_err(invalid)?;
            self.queue.decide(&decision, deadline).await
        }
        .await
        .map_err(|e| refuse("DecideComment", e))?;
        Ok(Response::new(pb::DecideCommentResponse {
            state: pb::CommentState::from(state).into(),
            version,
        }))
    }

    async fn report_comment(
        &self,
        request: Request<pb::ReportCommentRequest>,
    ) -> Result<Response<pb::ReportCommentResponse>, Status> {
        let deadline = self.deadline(&request);
        let r = request.into_inner();
        let version = async {
            let report = Report::parse(&r.comment_id, &r.reason, &r.reporter).map_err(invalid)?;
            self.queue.report(&report, deadline).await
        }
        .await
        .map_err(|e| refuse("ReportComment", e))?;
        Ok(Response::new(pb::ReportCommentResponse {
            state: pb::CommentState::PendingReview.into(),
            version,
        }))
    }

    async fn get_comment_history(
        &self,
        request: Request<pb::GetCommentHistoryRequest>,
    ) -> Result<Response<pb::GetCommentHistoryResponse>, Status> {
        let deadline = self.deadline(&request);
        let r = request.into_inner();
        let events = async {
            let id = comment_id(&r.comment_id)?;
            self.queue.history(id, deadline).await
        }
        .await
        .map_err(|e| refuse("GetCommentHistory", e))?;
        Ok(Response::new(pb::GetCommentHistoryResponse {
            events: events.into_iter().map(Into::into).collect(),
        }))
    }
}
