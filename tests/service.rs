//! The submission service end to end: the real server on port 0, real Redis, the generated
//! client over TCP. Each outcome lands in its Redis structure with its fields; every validation
//! rule answers with its field violation; retries are idempotent; Redis failures give
//! UNAVAILABLE instead of a hang; health, reflection and graceful shutdown work.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Backend, PrivateRedis, TestApp, stream, submission, test_config, test_config_on};
use moderation::proto::v1 as pb;
use redis::Commands;
use tonic::Code;
use tonic_types::StatusExt;

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

fn comment_hash(app: &TestApp, id: &str) -> HashMap<String, String> {
    app.redis()
        .hgetall(app.key(&format!("comment:{id}")))
        .unwrap()
}

#[tokio::test]
async fn an_ordinary_comment_is_accepted_and_appended_to_the_accepted_stream() {
    let mut app = TestApp::spawn(test_config()).await;
    app.wait_for_health(SERVING).await;
    let answer = app
        .client
        .submit_comment(submission("ordinary-1"))
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::Accepted);
    assert!(answer.spam_score < 0.3, "spam {}", answer.spam_score);
    assert!(answer.reasons.is_empty());
    assert_eq!(answer.model_version, "vi-en-20261127");
    assert!(!answer.replayed);

    let entries = stream(&app, "accepted");
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["id"], answer.comment_id);
    assert_eq!(e["article_id"], "thoi-su-2026-11-27");
    assert_eq!(e["author_name"], "Nguyễn Văn An");
    assert!(e["body"].starts_with("Giá tăng liên tục"));
    assert_eq!(e["parent_id"], "");
    assert!(e["created_at"].parse::<i64>().unwrap() > 1_700_000_000_000);
    assert!(
        !e.contains_key("author_email"),
        "the stream is for publishing"
    );

    let hash = comment_hash(&app, &answer.comment_id);
    assert_eq!(hash["state"], "accepted");
    assert_eq!(hash["author_email"], "an.nguyen@example.com");
    assert_eq!(hash["client_ip"], "203.0.113.7");
    assert_eq!(hash["model_version"], "vi-en-20261127");
    let ttl: i64 = app
        .redis()
        .ttl(app.key(&format!("comment:{}", answer.comment_id)))
        .unwrap();
    assert!(ttl > 0, "accepted records expire after the retention");

    // The portal's consumer group exists and delivers the entry.
    let read: redis::streams::StreamReadReply = app
        .redis()
        .xread_options(
            &[app.key("accepted")],
            &[">"],
            &redis::streams::StreamReadOptions::default().group("portal", "test-consumer"),
        )
        .unwrap();
    assert_eq!(read.keys[0].ids.len(), 1);
}

on_both_backends!(obvious_spam_is_rejected_into_the_audit_stream_with_its_reasons);
async fn obvious_spam_is_rejected_into_the_audit_stream_with_its_reasons(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let mut request = submission("spam-1");
    request.body =
        "Nhà cái uy tín nạp 100k tặng 200k, liên hệ zalo 0912.345.678 hoặc vào bit.ly/nhacai"
            .into();
    let answer = app
        .client
        .clone()
        .submit_comment(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::Rejected);
    assert!(answer.spam_score > 0.9);
    let reason = &answer.reasons[0];
    assert_eq!(reason.code, "SPAM_CERTAIN");
    assert!(
        reason.message.starts_with("spam score "),
        "{}",
        reason.message
    );
    assert!(
        reason.message.contains("phone number"),
        "{}",
        reason.message
    );

    assert!(stream(&app, "accepted").is_empty());
    let entries = stream(&app, "rejected");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], answer.comment_id);
    assert!(entries[0]["reasons"].contains("SPAM_CERTAIN"));
    assert!(entries[0]["spam"].parse::<f32>().unwrap() > 0.9);
    let stored = common::stored(&app, &answer.comment_id).await;
    assert_eq!(stored.state(), pb::CommentState::Rejected);
}

#[tokio::test]
async fn uncertain_comments_wait_in_the_flagged_queue_in_order_of_arrival() {
    let mut config = test_config();
    // Every comment is uncertain with these thresholds.
    config.decision.accept_below = Some(0.0);
    config.decision.reject_at = Some(1.0);
    let app = TestApp::spawn(config).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let answer = app
            .client
            .clone()
            .submit_comment(submission(&format!("flag-{n}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.outcome(), pb::Outcome::PendingReview);
        assert_eq!(answer.reasons[0].code, "SPAM_LIKELY");
        ids.push(answer.comment_id);
    }
    let queued: Vec<String> = app.redis().zrange(app.key("flagged"), 0, -1).unwrap();
    assert_eq!(queued, ids);
    let hash = comment_hash(&app, &ids[0]);
    assert_eq!(hash["state"], "pending_review");
    assert!(hash["reasons"].contains("SPAM_LIKELY"));
    let ttl: i64 = app
        .redis()
        .ttl(app.key(&format!("comment:{}", ids[0])))
        .unwrap();
    assert_eq!(ttl, -1, "a pending comment stays until a moderator decides");
    assert!(stream(&app, "accepted").is_empty());
    assert!(stream(&app, "rejected").is_empty());
}

on_both_backends!(a_toxic_comment_goes_to_review_even_when_it_is_not_spam);
async fn a_toxic_comment_goes_to_review_even_when_it_is_not_spam(backend: Backend) {
    let mut config = test_config_on(backend);
    config.decision.review_toxic_at = Some(0.5);
    let app = TestApp::spawn(config).await;
    let mut request = submission("toxic-1");
    request.body = "Đồ ngu, cút đi thằng óc chó".into();
    let answer = app
        .client
        .clone()
        .submit_comment(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::PendingReview);
    assert!(answer.toxic_score >= 0.5);
    assert!(answer.reasons.iter().any(|r| r.code == "TOXIC_LIKELY"));
}

/// (field, how to break a valid request)
type Case = (&'static str, fn(&mut pb::SubmitCommentRequest));

on_both_backends!(every_validation_rule_answers_with_its_field_violation);
async fn every_validation_rule_answers_with_its_field_violation(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let cases: Vec<Case> = vec![
        ("article_id", |r| r.article_id = String::new()),
        ("article_id", |r| r.article_id = "a".repeat(129)),
        ("article_title", |r| r.article_title = Some("t".repeat(301))),
        ("parent_id", |r| r.parent_id = Some("42".into())),
        ("author_name", |r| r.author_name = " \u{200B} ".into()),
        ("author_name", |r| r.author_name = "n".repeat(101)),
        ("author_name", |r| r.author_name = "An\u{0}".into()),
        ("author_email", |r| r.author_email = "an.nguyen".into()),
        ("author_email", |r| {
            r.author_email = format!("{}@example.com", "a".repeat(250))
        }),
        ("body", |r| r.body = String::new()),
        ("body", |r| r.body = "b".repeat(5_001)),
        ("body", |r| r.body = "xin chào\u{1B}".into()),
        ("client_ip", |r| r.client_ip = "localhost".into()),
        ("user_agent", |r| r.user_agent = "u".repeat(513)),
        ("idempotency_key", |r| {
            r.idempotency_key = "with space".into()
        }),
    ];
    for (field, breaks) in cases {
        let mut request = submission("valid-key");
        breaks(&mut request);
        let status = app
            .client
            .clone()
            .submit_comment(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let details = status.get_error_details();
        let violations = &details
            .bad_request()
            .expect("a BadRequest")
            .field_violations;
        assert_eq!(violations.len(), 1, "{field}: {violations:?}");
        assert_eq!(violations[0].field, field);
        assert!(!violations[0].description.is_empty());
    }
    assert!(
        stream(&app, "accepted").is_empty(),
        "nothing invalid is stored"
    );
}

on_both_backends!(all_violations_of_one_request_come_back_together);
async fn all_violations_of_one_request_come_back_together(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let status = app
        .client
        .clone()
        .submit_comment(pb::SubmitCommentRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "article_id",
            "author_name",
            "author_email",
            "body",
            "client_ip",
            "idempotency_key"
        ]
    );
}

on_both_backends!(a_retry_with_the_same_key_gets_the_first_answer_and_stores_nothing_new);
async fn a_retry_with_the_same_key_gets_the_first_answer_and_stores_nothing_new(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let first = app
        .client
        .clone()
        .submit_comment(submission("retry-1"))
        .await
        .unwrap()
        .into_inner();
    let mut retry = submission("retry-1");
    retry.client_ip = "198.51.100.9".into(); // through another proxy
    let second = app
        .client
        .clone()
        .submit_comment(retry)
        .await
        .unwrap()
        .into_inner();
    assert!(second.replayed);
    assert_eq!(second.comment_id, first.comment_id);
    assert_eq!(second.outcome, first.outcome);
    assert_eq!(second.spam_score, first.spam_score);
    assert_eq!(stream(&app, "accepted").len(), 1);
}

on_both_backends!(concurrent_submissions_with_one_key_store_one_comment);
async fn concurrent_submissions_with_one_key_store_one_comment(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let calls = (0..8).map(|_| {
        let mut client = app.client.clone();
        tokio::spawn(async move { client.submit_comment(submission("race-1")).await })
    });
    let answers: Vec<pb::SubmitCommentResponse> = futures_join(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().into_inner())
        .collect();
    let first = &answers[0].comment_id;
    assert!(answers.iter().all(|a| &a.comment_id == first));
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert_eq!(stream(&app, "accepted").len(), 1);
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await);
    }
    out
}

on_both_backends!(the_same_key_with_a_different_comment_is_already_exists);
async fn the_same_key_with_a_different_comment_is_already_exists(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    app.client
        .clone()
        .submit_comment(submission("reuse-1"))
        .await
        .unwrap();
    let mut other = submission("reuse-1");
    other.body = "Một bình luận hoàn toàn khác.".into();
    let status = app.client.clone().submit_comment(other).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(stream(&app, "accepted").len(), 1);
}

on_both_backends!(get_comment_reads_the_stored_record_without_the_email_address);
async fn get_comment_reads_the_stored_record_without_the_email_address(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let parent = app
        .client
        .clone()
        .submit_comment(submission("get-parent"))
        .await
        .unwrap()
        .into_inner();
    let mut request = submission("get-1");
    request.parent_id = Some(parent.comment_id.clone());
    let submitted = app
        .client
        .clone()
        .submit_comment(request.clone())
        .await
        .unwrap()
        .into_inner();
    let comment = common::stored(&app, &submitted.comment_id).await;
    assert_eq!(comment.id, submitted.comment_id);
    assert_eq!(comment.state(), pb::CommentState::Accepted);
    assert_eq!(comment.body, request.body);
    assert_eq!(comment.parent_id, request.parent_id);
    assert_eq!(comment.article_title, request.article_title);
    assert_eq!(comment.author_email, None);
    assert_eq!(comment.spam_score, submitted.spam_score);
    assert!(comment.created_at.unwrap().seconds > 1_700_000_000);

    let missing = app
        .client
        .clone()
        .get_comment(pb::GetCommentRequest {
            comment_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad = app
        .client
        .clone()
        .get_comment(pb::GetCommentRequest {
            comment_id: "not-an-id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        bad.get_details_bad_request().unwrap().field_violations[0].field,
        "comment_id"
    );
}

on_both_backends!(a_message_over_the_size_limit_is_refused);
async fn a_message_over_the_size_limit_is_refused(backend: Backend) {
    let mut config = test_config_on(backend);
    config.server.max_message_bytes = 4 * 1024;
    let app = TestApp::spawn(config).await;
    let mut request = submission("big-1");
    request.body = "x".repeat(8 * 1024);
    let status = app
        .client
        .clone()
        .submit_comment(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(stream(&app, "accepted").is_empty());
}

#[tokio::test]
async fn with_redis_unreachable_submissions_fail_with_unavailable_within_the_deadline() {
    let mut config = test_config();
    config.redis.url = moderation::store::redis::RedisUrl::new(format!(
        "redis://127.0.0.1:{}",
        common::free_port()
    ));
    let app = TestApp::spawn(config).await;
    app.wait_for_health(NOT_SERVING).await;
    // The client waits five times the server's deadline: an answer within it, and not the
    // client's own DEADLINE_EXCEEDED, shows the server did not hang.
    let mut request = tonic::Request::new(submission("down-1"));
    request.set_timeout(Duration::from_secs(5));
    let status = app
        .client
        .clone()
        .submit_comment(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.get_details_retry_info().is_some());
}

#[tokio::test]
async fn health_follows_redis_and_the_service_reconnects_by_itself() {
    let mut redis = PrivateRedis::start();
    let mut config = test_config();
    config.redis.url = moderation::store::redis::RedisUrl::new(redis.url());
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    app.client
        .clone()
        .submit_comment(submission("up-1"))
        .await
        .unwrap();

    redis.stop();
    app.wait_for_health(NOT_SERVING).await;
    let status = app
        .client
        .clone()
        .submit_comment(submission("up-2"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    redis.restart();
    app.wait_for_health(SERVING).await;
    let answer = app
        .client
        .clone()
        .submit_comment(submission("up-3"))
        .await
        .expect("accepted again once Redis is back");
    assert_eq!(answer.into_inner().outcome(), pb::Outcome::Accepted);
    // The restarted Redis was empty: the consumer group was made again.
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(app.key("accepted"))
        .query(&mut redis.connection())
        .unwrap();
    assert_eq!(groups.len(), 1);
}

#[tokio::test]
async fn with_redis_stalled_the_answer_is_unavailable_at_the_deadline_not_a_hang() {
    let redis = PrivateRedis::start();
    let mut config = test_config();
    config.redis.url = moderation::store::redis::RedisUrl::new(redis.url());
    config.server.request_timeout = Duration::from_millis(300);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query(&mut redis.connection())
        .unwrap();
    let mut request = tonic::Request::new(submission("stall-1"));
    request.set_timeout(Duration::from_secs(2));
    let status = app
        .client
        .clone()
        .submit_comment(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

on_both_backends!(reflection_lists_the_comment_service);
async fn reflection_lists_the_comment_service(backend: Backend) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn(test_config_on(backend)).await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"moderation.v1.CommentService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(item: T) -> impl tonic::IntoStreamingRequest<Message = T> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.try_send(item).unwrap();
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[tokio::test]
async fn shutdown_turns_health_off_and_finishes_the_call_in_flight() {
    let redis = PrivateRedis::start();
    let mut config = test_config();
    config.redis.url = moderation::store::redis::RedisUrl::new(redis.url());
    config.server.request_timeout = Duration::from_secs(5);
    let mut app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;

    // Redis holds every command for 600 ms, so the submission is still in flight when the
    // server is told to stop.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(600)
        .arg("ALL")
        .query(&mut redis.connection())
        .unwrap();
    let mut client = app.client.clone();
    let in_flight = tokio::spawn(async move { client.submit_comment(submission("late-1")).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, SERVING);
    app.shut_down();
    // Health turns NOT_SERVING first, while the call is still in flight.
    assert_eq!(watch.message().await.unwrap().unwrap().status, NOT_SERVING);
    assert!(!in_flight.is_finished());

    let answer = in_flight
        .await
        .unwrap()
        .expect("the in-flight call completes");
    assert_eq!(answer.into_inner().outcome(), pb::Outcome::Accepted);
    app.task
        .take()
        .unwrap()
        .await
        .unwrap()
        .expect("the server stops cleanly");
    // Once stopped, nothing answers any more.
    assert!(
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_err()
    );
}

on_both_backends!(a_reply_must_answer_a_stored_comment_under_the_same_article);
async fn a_reply_must_answer_a_stored_comment_under_the_same_article(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let mut client = app.client.clone();
    let mut elsewhere = submission("reply-elsewhere");
    elsewhere.article_id = "the-thao-2026-11-30".into();
    let other_article = client.submit_comment(elsewhere).await.unwrap().into_inner();
    for (k, parent) in [uuid::Uuid::now_v7().to_string(), other_article.comment_id]
        .into_iter()
        .enumerate()
    {
        let mut reply = submission(&format!("reply-bad-{k}"));
        reply.parent_id = Some(parent);
        let refused = client.submit_comment(reply).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(common::violated_fields(&refused), ["parent_id"]);
    }
    assert_eq!(
        stream(&app, "accepted").len(),
        1,
        "only the first comment is stored"
    );
}
