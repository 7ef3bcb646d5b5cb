//! Webhooks against a real local HTTP receiver, on both backends: each event signed and
//! without the reader's e-mail or IP address; held, decided and taken-down comments; retries
//! with the same event id; a refusal dead-lettered and shown to operators; and a receiver that
//! never answers does not hold up a single submission.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::{Backend, TestApp};
use moderation::proto::v1 as pb;
use moderation::secret::Secret;
use moderation::webhooks::{EventType, WebhookSettings};
use pb::moderation_service_client::ModerationServiceClient;

const SERVING: i32 = 1;
const SECRET: &str = "webhook-secret-for-tests";

/// What the receiver got: (headers, body).
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver on loopback answering each request with the next of `answers` (the last one
/// repeats); while `gate` is closed it holds every request.
async fn receiver(
    answers: Vec<StatusCode>,
    gate: Arc<tokio::sync::Semaphore>,
) -> (String, Received) {
    let received: Received = Arc::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            let answers = answers.clone();
            let gate = gate.clone();
            async move {
                let _pass = gate.acquire().await.unwrap();
                let mut all = seen.lock().unwrap();
                let answer = answers[all.len().min(answers.len() - 1)];
                all.push((headers, body));
                answer
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn open() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(1000))
}

fn hook(url: &str, events: &[EventType]) -> WebhookSettings {
    WebhookSettings {
        name: "site".into(),
        url: url.into(),
        secret: Secret::new(SECRET),
        events: events.to_vec(),
        timeout: Duration::from_secs(5),
        max_attempts: 3,
    }
}

/// Waits until the receiver holds `n` requests; returns their parsed bodies.
async fn wait_for(received: &Received, n: usize) -> Vec<(HeaderMap, serde_json::Value)> {
    for _ in 0..200 {
        {
            let all = received.lock().unwrap();
            if all.len() >= n {
                return all
                    .iter()
                    .map(|(h, b)| (h.clone(), serde_json::from_str(b).unwrap()))
                    .collect();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the receiver got {} of {n}", received.lock().unwrap().len());
}

on_both_backends!(events_are_signed_and_carry_no_personal_data);
async fn events_are_signed_and_carry_no_personal_data(backend: Backend) {
    let (url, received) = receiver(vec![StatusCode::OK], open()).await;
    let mut config = common::test_config_on(backend);
    config.webhooks = vec![hook(&url, &[EventType::Published, EventType::Rejected])];
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let answer = app
        .client
        .clone()
        .submit_comment(common::submission("hook-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::Accepted);
    let got = wait_for(&received, 1).await;
    let (headers, event) = &got[0];
    assert_eq!(event["type"], "comment.published");
    assert_eq!(event["data"]["comment_id"], answer.comment_id);
    assert_eq!(event["data"]["author_name"], "Nguyễn Văn An");
    assert_eq!(headers["x-moderation-event"], event["id"].as_str().unwrap());
    let raw = received.lock().unwrap()[0].1.clone();
    assert!(
        !raw.contains("an.nguyen@example.com") && !raw.contains("203.0.113.7"),
        "{raw}"
    );
    let signature = headers["x-moderation-signature"].to_str().unwrap();
    let now = jiff::Timestamp::now().as_second();
    let window = Duration::from_secs(300);
    assert!(moderation::webhooks::verify(
        SECRET, signature, &raw, now, window
    ));
    assert!(!moderation::webhooks::verify(
        SECRET,
        signature,
        &raw.replace("An", "Ba"),
        now,
        window
    ));
}

on_both_backends!(held_decided_and_taken_down_comments_are_told);
async fn held_decided_and_taken_down_comments_are_told(backend: Backend) {
    let (url, received) = receiver(vec![StatusCode::NO_CONTENT], open()).await;
    let mut config = common::holding_config_on(backend);
    config.webhooks = vec![hook(
        &url,
        &[EventType::Held, EventType::Decided, EventType::Removed],
    )];
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let id = common::hold(&app, common::submission("hook-held")).await;
    let mut moderation = ModerationServiceClient::new(app.channel().await);
    let decide = |version: u64, decision: pb::ModeratorDecision| pb::DecideCommentRequest {
        comment_id: id.clone(),
        version,
        decision: decision as i32,
        moderator: "lan".into(),
        note: "ổn".into(),
        ..Default::default()
    };
    let first = moderation
        .decide_comment(decide(1, pb::ModeratorDecision::Approve))
        .await
        .unwrap()
        .into_inner();
    let reported = moderation
        .report_comment(pb::ReportCommentRequest {
            comment_id: id.clone(),
            reason: "xúc phạm".into(),
            reporter: "reader-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reported.version > first.version);
    moderation
        .decide_comment(decide(reported.version, pb::ModeratorDecision::Reject))
        .await
        .unwrap();
    let got = wait_for(&received, 4).await;
    // Each event is delivered on its own: they may arrive in any order.
    let mut kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|(_, e)| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["state"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("comment.decided", "accepted"),
            ("comment.decided", "rejected"),
            ("comment.held", "pending_review"),
            ("comment.removed", ""),
        ]
    );
    assert!(
        got.iter()
            .all(|(_, e)| e["data"]["comment_id"] == id.as_str())
    );
    let of = |kind: &str| {
        got.iter()
            .find(|(_, e)| e["type"] == kind)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(of("comment.decided")["data"]["moderator"], "lan");
    assert_eq!(
        of("comment.removed")["data"]["article_id"],
        "thoi-su-2026-11-27"
    );
}

on_both_backends!(failures_are_retried_then_dead_lettered_and_shown_to_operators);
async fn failures_are_retried_then_dead_lettered_and_shown_to_operators(backend: Backend) {
    // Two failures, then success: delivered on the third attempt, under one event id.
    let flaky = vec![
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::OK,
    ];
    let (flaky_url, flaky_got) = receiver(flaky, open()).await;
    // A refusal (400) is not retried.
    let (refusing_url, refused_got) = receiver(vec![StatusCode::BAD_REQUEST], open()).await;
    let mut config = common::test_config_on(backend);
    config.webhooks = vec![hook(&flaky_url, &[EventType::Published]), {
        let mut h = hook(&refusing_url, &[EventType::Published]);
        h.name = "refusing".into();
        h
    }];
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    app.client
        .clone()
        .submit_comment(common::submission("hook-retry"))
        .await
        .unwrap();
    let attempts = wait_for(&flaky_got, 3).await;
    let ids: Vec<&str> = attempts
        .iter()
        .map(|(h, _)| h["x-moderation-event"].to_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    wait_for(&refused_got, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(refused_got.lock().unwrap().len(), 1, "a 400 is not retried");

    // Operators see the dead letter on their page, and the metrics count both.
    let http = common::console_http();
    let base = format!("http://{}", app.console_address);
    let cookie = common::console_cookie(&http, &base, "hoa").await;
    let page = common::console_page(&http, &format!("{base}/ops"), &cookie).await;
    assert!(
        page.contains("Webhook gửi không thành công (1)"),
        "the dead letter is listed: {page}"
    );
    assert!(page.contains("answered 400 Bad Request"));
    let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "moderation_webhook_deliveries_total{webhook=\"site\",result=\"delivered\"} 1",
        "moderation_webhook_deliveries_total{webhook=\"site\",result=\"retried\"} 2",
        "moderation_webhook_deliveries_total{webhook=\"refusing\",result=\"dead_lettered\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

on_both_backends!(a_receiver_that_never_answers_holds_up_no_submission);
async fn a_receiver_that_never_answers_holds_up_no_submission(backend: Backend) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (url, received) = receiver(vec![StatusCode::OK], gate.clone()).await;
    let mut config = common::test_config_on(backend);
    config.webhooks = vec![hook(&url, &[EventType::Published])];
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    // Every submission is answered while the receiver holds every delivery.
    for k in 0..20 {
        let answer = app
            .client
            .clone()
            .submit_comment(common::submission(&format!("hook-slow-{k}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.outcome(), pb::Outcome::Accepted);
    }
    assert!(
        received.lock().unwrap().is_empty(),
        "nothing got through the gate yet"
    );
    gate.add_permits(1000);
    wait_for(&received, 20).await;
}
