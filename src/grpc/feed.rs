//! `FeedService`: the portal's feed over a server stream. A subscription reads the backend's
//! feed in batches, sends each event, and waits a little when nothing is new; it ends when the
//! client goes away, and answers UNAVAILABLE (the client subscribes again) when storage fails.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{invalid_argument, timestamp};
use crate::comment::Violation;
use crate::feed::{Event, EventKind, FeedStore, Name};
use crate::proto::v1 as pb;

/// Events read at once.
const BATCH: usize = 200;

/// How long a subscription waits before looking again when nothing is new.
const IDLE: Duration = Duration::from_millis(100);

/// `FeedService`.
#[derive(Clone)]
pub struct FeedApi {
    store: Arc<dyn FeedStore>,
}

impl FeedApi {
    /// The service over `store`.
    pub fn new(store: Arc<dyn FeedStore>) -> Self {
        FeedApi { store }
    }
}

impl From<Event> for pb::FeedEvent {
    fn from(e: Event) -> Self {
        let kind = match e.kind {
            EventKind::Published => pb::FeedEventKind::Published,
            EventKind::Removed => pb::FeedEventKind::Removed,
        };
        pb::FeedEvent {
            cursor: e.cursor,
            kind: kind.into(),
            comment_id: e.comment_id,
            article_id: e.article_id,
            parent_id: e.parent_id,
            author_name: e.author_name,
            body: e.body,
            created_at: (e.created_at_ms > 0).then(|| timestamp(e.created_at_ms)),
        }
    }
}

fn unavailable() -> Status {
    Status::with_error_details(
        Code::Unavailable,
        "the feed cannot be read right now; subscribe again",
        ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
    )
}

/// The subscription's parameters, every violation at once.
fn subscription(r: &pb::SubscribeRequest) -> Result<(Name, Name, Duration), Status> {
    let mut violations: Vec<Violation> = Vec::new();
    let group = Name::parse("group", &r.group)
        .map_err(|v| violations.push(v))
        .ok();
    let consumer = Name::parse("consumer", &r.consumer)
        .map_err(|v| violations.push(v))
        .ok();
    let visibility = match r.visibility_seconds {
        0 => 60,
        s @ 1..=3600 => s,
        _ => {
            violations.push(Violation::new("visibility_seconds", "must be 1 to 3600"));
            60
        }
    };
    match (group, consumer) {
        (Some(g), Some(c)) if violations.is_empty() => {
            Ok((g, c, Duration::from_secs(u64::from(visibility))))
        }
        _ => Err(invalid_argument("the subscription is invalid", &violations)),
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<pb::FeedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::feed_service_server::FeedService for FeedApi {
    type SubscribeStream = Events;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let (group, consumer, visibility) = subscription(request.get_ref())?;
        let store = self.store.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::FeedEvent, Status>>(BATCH);
        tokio::spawn(async move {
            loop {
                match store.read(&group, &consumer, BATCH, visibility).await {
                    Ok(events) if events.is_empty() => tokio::time::sleep(IDLE).await,
                    Ok(events) => {
                        for event in events {
                            if tx.send(Ok(event.into())).await.is_err() {
                                return; // The client went away.
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the feed failed");
                        let _ = tx.send(Err(unavailable())).await;
                        return;
                    }
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let r = request.into_inner();
        let mut violations = Vec::new();
        let group = Name::parse("group", &r.group)
            .map_err(|v| violations.push(v))
            .ok();
        let cursor_ok = |c: &String| {
            (1..=64).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":-".contains(&b))
        };
        if r.cursors.len() > 10_000 || !r.cursors.iter().all(cursor_ok) {
            violations.push(Violation::new(
                "cursors",
                "must be at most 10000 cursors as received from Subscribe",
            ));
        }
        let Some(group) = group.filter(|_| violations.is_empty()) else {
            return Err(invalid_argument(
                "the acknowledgement is invalid",
                &violations,
            ));
        };
        let acknowledged = self.store.ack(&group, &r.cursors).await.map_err(|e| {
            tracing::warn!(error = %e, "acknowledging feed events failed");
            unavailable()
        })?;
        Ok(Response::new(pb::AckResponse { acknowledged }))
    }
}
