//! The gRPC edge. Requests become domain calls once, here, and results become responses or
//! statuses once, here: the rest of the crate knows nothing of tonic or prost. Each service has
//! its module; what they share (deadlines, timestamps, the comment message) is below.

mod admin;
pub mod codec;
mod comments;
pub mod edge;
mod feed;
mod moderation;
mod readers;

pub use admin::{AdminApi, admin_status};
pub use comments::{CommentApi, submit_status};
pub use feed::FeedApi;
pub use moderation::{ModerationApi, review_status};
pub use readers::ReaderApi;

use std::time::{Duration, Instant};

use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::auth::Caller;
use crate::comment::Violation;

use crate::decide::{Outcome, Reason};
use crate::proto::v1 as pb;
use crate::store::StoredComment;

/// The `google.rpc.ErrorInfo` domain of this service's errors.
const ERROR_DOMAIN: &str = "moderation.v1";

/// The most field violations one status lists; the rest are counted in one more. A request
/// with thousands of bad ids would otherwise get megabytes of trailers back.
pub const MAX_VIOLATIONS: usize = 20;

/// `INVALID_ARGUMENT` with a `BadRequest` naming the invalid fields (the first
/// [`MAX_VIOLATIONS`], then how many more); `what` opens the message ("the comment is invalid:
/// author_email, body").
fn invalid_argument(what: &str, violations: &[Violation]) -> Status {
    let shown = &violations[..violations.len().min(MAX_VIOLATIONS)];
    let mut fields: Vec<&str> = Vec::with_capacity(shown.len());
    for v in shown {
        if !fields.contains(&v.field) {
            fields.push(v.field);
        }
    }
    let mut listed: Vec<FieldViolation> = shown
        .iter()
        .map(|v| FieldViolation::new(v.field, v.description.clone()))
        .collect();
    let more = violations.len() - shown.len();
    if more > 0 {
        let field = violations[MAX_VIOLATIONS].field;
        listed.push(FieldViolation::new(
            field,
            format!("and {more} more violations not listed"),
        ));
    }
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{what}: {}", fields.join(", ")),
        ErrorDetails::with_bad_request(listed),
    )
}

/// The caller [`edge`] recognised, when authentication is on.
fn caller<T>(request: &Request<T>) -> Option<&Caller> {
    request.extensions().get::<Caller>()
}

/// Whether the caller may see readers' e-mail addresses: a key with the moderator or ops
/// role. Without authentication nobody is known, so nobody sees them.
fn may_see_email<T>(request: &Request<T>) -> bool {
    caller(request)
        .is_some_and(|c| c.has(crate::auth::Role::Moderator) || c.has(crate::auth::Role::Ops))
}

/// What a caller may see of a comment's reader: their address (a moderator's or operator's
/// key), and their id (those keys, or any caller with keys off: then only this machine is
/// served, and the id is no address).
#[derive(Clone, Copy, Debug)]
struct Sees {
    email: bool,
    reader: bool,
}

fn sees<T>(request: &Request<T>) -> Sees {
    let email = may_see_email(request);
    Sees {
        email,
        reader: email || caller(request).is_none(),
    }
}

/// Who to record as acting: the key's name, or `anonymous` when authentication is off.
fn actor<T>(request: &Request<T>) -> String {
    caller(request).map_or_else(|| "anonymous".to_owned(), |c| c.name.clone())
}

/// When a request must be answered: after `longest`, or the client's shorter `grpc-timeout`.
fn deadline<T>(request: &Request<T>, longest: Duration) -> Instant {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map_or(longest, |t| t.min(longest));
    Instant::now() + timeout
}

/// Parses a `grpc-timeout` header value: up to eight digits and a unit (H, M, S, m, u, n).
/// Written here because it is eight lines and tonic keeps its own parser private.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl From<Outcome> for pb::Outcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Accepted => pb::Outcome::Accepted,
            Outcome::PendingReview => pb::Outcome::PendingReview,
            Outcome::Rejected => pb::Outcome::Rejected,
        }
    }
}

impl From<Outcome> for pb::CommentState {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Accepted => pb::CommentState::Accepted,
            Outcome::PendingReview => pb::CommentState::PendingReview,
            Outcome::Rejected => pb::CommentState::Rejected,
        }
    }
}

impl From<Reason> for pb::Reason {
    fn from(r: Reason) -> Self {
        pb::Reason {
            code: r.code,
            message: r.message,
        }
    }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A stored comment as sent; the e-mail address and reader's id only to whom `sees` them.
fn comment_message(c: StoredComment, sees: Sees) -> pb::Comment {
    let show_email = sees.email;
    pb::Comment {
        id: c.id.to_string(),
        article_id: c.article_id,
        article_title: c.article_title,
        parent_id: c.parent_id,
        author_name: c.author_name,
        author_email: show_email.then_some(c.author_email),
        body: c.body,
        state: pb::CommentState::from(c.state).into(),
        spam_score: c.spam,
        toxic_score: c.toxic,
        reasons: c.reasons.into_iter().map(Into::into).collect(),
        model_version: c.model_version,
        created_at: Some(timestamp(c.created_at_ms)),
        updated_at: Some(timestamp(c.updated_at_ms)),
        published: c.published,
        reader_id: (sees.reader && !c.reader.is_empty()).then_some(c.reader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_refuse_nonsense() {
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "m", "10", "123456789S", "1x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamps_split_milliseconds_into_seconds_and_nanos() {
        let t = timestamp(1_700_000_000_123);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        let before_epoch = timestamp(-1);
        assert_eq!(
            (before_epoch.seconds, before_epoch.nanos),
            (-1, 999_000_000)
        );
    }
}
