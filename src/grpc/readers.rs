//! `ReaderService`: moderators look readers up and set their standing. The mapping from
//! failures to statuses is [`desk_status`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{caller, comment_message, deadline, invalid_argument, sees, timestamp};
use crate::comment::Violation;
use crate::proto::v1 as pb;
use crate::readers::desk::{Desk, DeskError, Profile, Swept};
use crate::readers::{Keyring, ReaderId, Standing};
use crate::review::Moderator;
use crate::store::StoreError;

/// How many of a reader's latest comments `GetReader` sends.
const LATEST_SENT: usize = 50;

/// `ReaderService`.
#[derive(Clone)]
pub struct ReaderApi {
    desk: Arc<Desk>,
    keyring: Arc<Keyring>,
    request_timeout: Duration,
}

impl ReaderApi {
    /// The service over `desk`, naming readers with `keyring`'s key.
    pub fn new(desk: Arc<Desk>, keyring: Arc<Keyring>, request_timeout: Duration) -> Self {
        ReaderApi {
            desk,
            keyring,
            request_timeout,
        }
    }

    /// The reader a request names.
    fn named(&self, reader_id: &str, email: &str) -> Result<ReaderId, Status> {
        let key = self.keyring.get().ok_or_else(|| {
            Status::unavailable("the readers' key is not read from storage yet; retry")
        })?;
        crate::readers::named(key, reader_id, email)
            .map_err(|v| invalid_argument("the request is invalid", &[v]))
    }
}

/// The status for a failed readers' operation.
fn desk_status(error: &DeskError) -> Status {
    match error {
        DeskError::Settings(e) => super::admin::admin_status(e),
        DeskError::Store(StoreError::Unavailable(_)) => Status::with_error_details(
            Code::Unavailable,
            "readers cannot be reached right now; read the reader again, then retry",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
        ),
        DeskError::Store(_) => Status::internal("internal error"),
    }
}

fn refuse(operation: &str, error: DeskError) -> Status {
    let status = desk_status(&error);
    tracing::info!(operation, code = ?status.code(), error = %error, "readers' operation refused");
    status
}

fn standing_message(s: Option<Standing>) -> pb::ReaderStanding {
    match s {
        None => pb::ReaderStanding::None,
        Some(Standing::Trusted) => pb::ReaderStanding::Trusted,
        Some(Standing::Premoderated) => pb::ReaderStanding::Premoderated,
        Some(Standing::Suspended) => pb::ReaderStanding::Suspended,
        Some(Standing::Banned) => pb::ReaderStanding::Banned,
    }
}

/// The standing asked for: `Ok(None)` lifts it.
fn standing_asked(s: pb::ReaderStanding) -> Result<Option<Standing>, Violation> {
    match s {
        pb::ReaderStanding::Unspecified => Err(Violation::new(
            "standing",
            "must be NONE, TRUSTED, PREMODERATED, SUSPENDED or BANNED",
        )),
        pb::ReaderStanding::None => Ok(None),
        pb::ReaderStanding::Trusted => Ok(Some(Standing::Trusted)),
        pb::ReaderStanding::Premoderated => Ok(Some(Standing::Premoderated)),
        pb::ReaderStanding::Suspended => Ok(Some(Standing::Suspended)),
        pb::ReaderStanding::Banned => Ok(Some(Standing::Banned)),
    }
}

fn reader_message(p: Profile, sees: super::Sees) -> pb::Reader {
    let now = jiff::Timestamp::now().as_millisecond();
    let (status, set_by, set_at) = match p.status {
        Some((s, by, at)) => (Some(s), by, Some(timestamp(at))),
        None => (None, String::new(), None),
    };
    let h = p.history;
    pb::Reader {
        reader_id: p.id.to_string(),
        standing: standing_message(status.as_ref().map(|s| s.standing)).into(),
        until: status.as_ref().and_then(|s| s.until_ms).map(timestamp),
        reason: status
            .as_ref()
            .map(|s| s.reason.clone())
            .unwrap_or_default(),
        in_force: status.as_ref().is_some_and(|s| s.in_force(now)),
        set_by,
        set_at,
        accepted: h.accepted,
        held: h.held,
        rejected: h.rejected,
        first_seen: h.first_seen_ms.map(timestamp),
        latest: h
            .latest
            .into_iter()
            .take(LATEST_SENT)
            .map(|c| comment_message(c, sees))
            .collect(),
    }
}

fn millis(t: &prost_types::Timestamp) -> i64 {
    t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000)
}

/// The moderator acting: the key's owner with authentication on, else whoever is named.
fn acting<T>(request: &Request<T>, named: &str) -> Result<Moderator, Status> {
    let name = match caller(request) {
        Some(c) if named.is_empty() || named == c.name => c.name.clone(),
        Some(c) => {
            return Err(Status::permission_denied(format!(
                "the key of {} cannot act as moderator {named:?}",
                c.name
            )));
        }
        None => named.to_owned(),
    };
    Moderator::parse(&name).map_err(|v| invalid_argument("the moderator is not named", &[v]))
}

fn swept_message(s: Swept) -> (Vec<String>, Vec<String>, Vec<pb::LeftComment>) {
    (
        s.rejected.iter().map(ToString::to_string).collect(),
        s.taken_down.iter().map(ToString::to_string).collect(),
        s.left
            .into_iter()
            .map(|(id, why)| pb::LeftComment {
                comment_id: id.to_string(),
                why,
            })
            .collect(),
    )
}

#[tonic::async_trait]
impl pb::reader_service_server::ReaderService for ReaderApi {
    async fn get_reader(
        &self,
        request: Request<pb::GetReaderRequest>,
    ) -> Result<Response<pb::Reader>, Status> {
        let deadline: Instant = deadline(&request, self.request_timeout);
        let sees = sees(&request);
        let r = request.into_inner();
        let id = self.named(&r.reader_id, &r.email)?;
        let profile = self
            .desk
            .profile(id, deadline)
            .await
            .map_err(|e| refuse("GetReader", e))?;
        Ok(Response::new(reader_message(profile, sees)))
    }

    async fn set_reader_standing(
        &self,
        request: Request<pb::SetReaderStandingRequest>,
    ) -> Result<Response<pb::SetReaderStandingResponse>, Status> {
        let deadline: Instant = deadline(&request, self.request_timeout);
        let sees = sees(&request);
        let moderator = acting(&request, &request.get_ref().moderator)?;
        let r = request.into_inner();
        let now = jiff::Timestamp::now().as_millisecond();
        let key = self.keyring.get().ok_or_else(|| {
            Status::unavailable("the readers' key is not read from storage yet; retry")
        })?;
        let id = crate::readers::named(key, &r.reader_id, &r.email);
        let asked = standing_asked(r.standing());
        let (id, asked) = match (id, asked) {
            (Ok(id), Ok(asked)) => (id, asked),
            (id, asked) => {
                let violations: Vec<Violation> =
                    [id.err(), asked.err()].into_iter().flatten().collect();
                return Err(invalid_argument("the request is invalid", &violations));
            }
        };
        let status = crate::readers::requested(asked, r.until.as_ref().map(millis), &r.reason, now)
            .map_err(|v| invalid_argument("the standing cannot be", &v))?;
        if r.reject_all && !matches!(asked, Some(Standing::Banned | Standing::Suspended)) {
            return Err(invalid_argument(
                "the standing cannot be",
                &[Violation::new(
                    "reject_all",
                    "only with a ban or a suspension",
                )],
            ));
        }
        let swept = match (&status, r.reject_all) {
            (Some(s), true) => self
                .desk
                .ban_and_reject_all(id, s, &moderator, &s.reason, deadline)
                .await
                .map_err(|e| refuse("SetReaderStanding", e))?,
            _ => {
                self.desk
                    .set(id, status.as_ref(), moderator.as_str(), &r.reason, deadline)
                    .await
                    .map_err(|e| refuse("SetReaderStanding", e))?;
                Swept::default()
            }
        };
        let profile = self
            .desk
            .profile(id, deadline)
            .await
            .map_err(|e| refuse("GetReader", e))?;
        let (rejected_ids, taken_down_ids, left) = swept_message(swept);
        Ok(Response::new(pb::SetReaderStandingResponse {
            reader: Some(reader_message(profile, sees)),
            rejected_ids,
            taken_down_ids,
            left,
        }))
    }
}
