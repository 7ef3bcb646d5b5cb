//! The portal's feed over real gRPC, on both backends: what is accepted arrives in order, is
//! delivered again until acknowledged, and a bad subscription is refused precisely.

mod common;

use std::time::Duration;

use common::{TestApp, submission, test_config};
use moderation::config::{Backend, Config};
use moderation::proto::v1 as pb;
use pb::feed_service_client::FeedServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;

const SERVING: i32 = 1;

fn subscribe(group: &str, consumer: &str, visibility: u32) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        group: group.into(),
        consumer: consumer.into(),
        visibility_seconds: visibility,
    }
}

async fn next(
    stream: &mut tonic::Streaming<pb::FeedEvent>,
    within: Duration,
) -> Option<pb::FeedEvent> {
    tokio::time::timeout(within, stream.next())
        .await
        .ok()
        .flatten()
        .map(|r| r.expect("an event, not an error"))
}

async fn feed_works(config: Config) {
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut ids = Vec::new();
    for k in 0..3 {
        let answer = app
            .client
            .clone()
            .submit_comment(submission(&format!("feed-{k}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.outcome(), pb::Outcome::Accepted);
        ids.push(answer.comment_id);
    }
    let mut feed = FeedServiceClient::new(app.channel().await);
    let mut stream = feed
        .subscribe(subscribe("site", "web-1", 1))
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(
            next(&mut stream, Duration::from_secs(5))
                .await
                .expect("delivered"),
        );
    }
    let got: Vec<&str> = events.iter().map(|e| e.comment_id.as_str()).collect();
    assert_eq!(got, ids);
    assert_eq!(events[0].kind(), pb::FeedEventKind::Published);
    assert_eq!(events[0].author_name, "Nguyễn Văn An");
    assert!(events[0].created_at.is_some());
    // A new comment arrives on the open subscription.
    let later = app
        .client
        .clone()
        .submit_comment(submission("feed-later"))
        .await
        .unwrap()
        .into_inner();
    let live = next(&mut stream, Duration::from_secs(5))
        .await
        .expect("live");
    assert_eq!(live.comment_id, later.comment_id);
    // Acknowledge all but the first: only the first is delivered again, after its visibility.
    let acked = feed
        .ack(pb::AckRequest {
            group: "site".into(),
            cursors: events[1..]
                .iter()
                .chain([&live])
                .map(|e| e.cursor.clone())
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.acknowledged, 3);
    let again = next(&mut stream, Duration::from_secs(5))
        .await
        .expect("redelivered");
    assert_eq!(again.comment_id, ids[0]);
    feed.ack(pb::AckRequest {
        group: "site".into(),
        cursors: vec![again.cursor.clone()],
    })
    .await
    .unwrap();
    assert!(
        next(&mut stream, Duration::from_millis(1500))
            .await
            .is_none(),
        "nothing left once everything is acknowledged"
    );
    drop(stream);

    let bad = feed
        .subscribe(subscribe("có dấu", "", 99_999))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        common::violated_fields(&bad),
        ["group", "consumer", "visibility_seconds"]
    );
}

#[tokio::test]
async fn the_feed_on_redis() {
    feed_works(test_config()).await;
}

#[tokio::test]
async fn the_feed_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.store.backend = Backend::Embedded;
    config.store.path = dir.path().join("moderation.db");
    feed_works(config).await;
}
