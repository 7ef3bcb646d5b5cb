//! Safe defaults and bounded inputs, each over the real server on port 0, real Redis and real
//! TCP: protected mode and e-mail addresses, readers' reports, pages and error details that
//! stay small, requests that do not decode, times and names that cannot be, and the many ways
//! of writing one e-mail or IPv4 address.

mod common;

use std::time::Duration;

use common::{
    Backend, TestApp, hold, holding_config, stream, submission, test_config, test_config_on,
    violated_fields,
};
use moderation::auth::{KeySettings, Role};
use moderation::config::Config;
use moderation::proto::v1 as pb;
use pb::moderation_service_client::ModerationServiceClient;
use tonic::Code;
use tonic::codec::{DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_types::StatusExt;

const SERVING: i32 = 1;

async fn publish(app: &TestApp, key: &str) -> String {
    let id = hold(app, submission(key)).await;
    let mut moderation = ModerationServiceClient::new(app.channel().await);
    moderation
        .decide_comment(pb::DecideCommentRequest {
            comment_id: id.clone(),
            version: 1,
            decision: pb::ModeratorDecision::Approve.into(),
            moderator: "lan".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    id
}

fn report(id: &str, reporter: &str, reason: &str) -> pb::ReportCommentRequest {
    pb::ReportCommentRequest {
        comment_id: id.into(),
        reason: reason.into(),
        reporter: reporter.into(),
    }
}

#[test]
fn the_defaults_listen_on_loopback_in_protected_mode() {
    let c = Config::default();
    assert!(c.server.listen.ip().is_loopback(), "{}", c.server.listen);
    assert!(c.metrics.listen.ip().is_loopback(), "{}", c.metrics.listen);
    assert!(c.http.listen.ip().is_loopback(), "{}", c.http.listen);
    assert!(c.auth.protected_mode());
    let mut on = Config::default();
    on.auth.enabled = true;
    assert!(!on.auth.protected_mode());
}

on_both_backends!(bound_to_every_address_without_auth_loopback_clients_are_still_served);
async fn bound_to_every_address_without_auth_loopback_clients_are_still_served(backend: Backend) {
    let mut config = test_config_on(backend);
    config.server.listen = "0.0.0.0:0".parse().unwrap();
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let channel = common::channel(format!("127.0.0.1:{}", app.address.port()).parse().unwrap());
    let mut client = pb::comment_service_client::CommentServiceClient::new(channel.await);
    client
        .submit_comment(submission("loopback-1"))
        .await
        .expect("a client on this machine is served");
}

on_both_backends!(e_mail_addresses_reach_moderator_keys_only);
async fn e_mail_addresses_reach_moderator_keys_only(backend: Backend) {
    let new_api_key = || {
        let key = moderation::auth::new_key().unwrap();
        let sha256 = moderation::auth::hash(&key);
        (key, sha256)
    };
    let mut config = common::holding_config_on(backend);
    config.auth.enabled = true;
    let mut keys = Vec::new();
    for (name, role) in [("portal-web", Role::Portal), ("lan", Role::Moderator)] {
        let (key, sha256) = new_api_key();
        config.auth.keys.push(KeySettings {
            name: name.into(),
            roles: vec![role],
            sha256,
        });
        keys.push(key);
    }
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let with_key = |key: String| {
        move |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
            Ok(r)
        }
    };
    let channel = app.channel().await;
    let mut portal = pb::comment_service_client::CommentServiceClient::with_interceptor(
        channel.clone(),
        with_key(keys[0].clone()),
    );
    portal.submit_comment(submission("email-1")).await.unwrap();
    let mut moderator =
        ModerationServiceClient::with_interceptor(channel.clone(), with_key(keys[1].clone()));
    let page = moderator
        .list_flagged(pb::ListFlaggedRequest::default())
        .await
        .unwrap()
        .into_inner();
    let comment = page.items[0].comment.as_ref().unwrap();
    assert_eq!(
        comment.author_email.as_deref(),
        Some("an.nguyen@example.com")
    );
}

#[tokio::test]
async fn a_reader_counts_once_and_only_the_latest_reports_are_kept() {
    let mut config = holding_config();
    config.review.reports_kept = 3;
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let id = publish(&app, "reports-1").await;
    let mut moderation = ModerationServiceClient::new(app.channel().await);
    for k in 0..8 {
        moderation
            .report_comment(report(&id, &format!("reader-{k}"), &format!("lý do {k}")))
            .await
            .unwrap();
    }
    let again = moderation
        .report_comment(report(&id, "reader-3", "lại nữa"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(
        again.get_details_error_info().unwrap().reason,
        "ALREADY_REPORTED"
    );
    let page = moderation
        .list_flagged(pb::ListFlaggedRequest::default())
        .await
        .unwrap()
        .into_inner();
    let item = &page.items[0];
    assert_eq!(item.report_count, 8);
    assert_eq!(item.reports, ["lý do 5", "lý do 6", "lý do 7"]);
    // The hash stays small: three reasons, not eight.
    let mut redis = app.redis();
    let stored: String = redis::cmd("HGET")
        .arg(app.key(&format!("comment:{id}")))
        .arg("reports")
        .query(&mut redis)
        .unwrap();
    assert!(!stored.contains("lý do 0"), "{stored}");
    // The reporter is stored only as a hash.
    let reporters: Vec<String> = redis::cmd("SMEMBERS")
        .arg(app.key(&format!("reporters:{id}")))
        .query(&mut redis)
        .unwrap();
    assert_eq!(reporters.len(), 8);
    assert!(reporters.iter().all(|r| !r.contains("reader")));
}

on_both_backends!(one_reader_cannot_report_without_limit);
async fn one_reader_cannot_report_without_limit(backend: Backend) {
    let mut config = common::holding_config_on(backend);
    config.review.reports_per_reader = 2;
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut moderation = ModerationServiceClient::new(app.channel().await);
    let mut ids = Vec::new();
    for k in 0..3 {
        ids.push(publish(&app, &format!("flood-{k}")).await);
    }
    for id in &ids[..2] {
        moderation
            .report_comment(report(id, "noisy", "spam"))
            .await
            .unwrap();
    }
    let refused = moderation
        .report_comment(report(&ids[2], "noisy", "spam"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let wait = refused
        .get_details_retry_info()
        .unwrap()
        .retry_delay
        .unwrap();
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(600),
        "{wait:?}"
    );
    // Another reader is not held back; a report without a reporter is invalid.
    moderation
        .report_comment(report(&ids[2], "calm", "spam"))
        .await
        .unwrap();
    let status = moderation
        .report_comment(report(&ids[2], "", "spam"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["reporter"]);
}

on_both_backends!(a_page_of_the_queue_stays_under_its_byte_bound);
async fn a_page_of_the_queue_stays_under_its_byte_bound(backend: Backend) {
    use prost::Message;
    let mut config = common::holding_config_on(backend);
    config.server.max_message_bytes = 1 << 20;
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    // 90 comments of 5,000 three-byte characters: about 1.35 MB in one page of 200.
    let body: String = "ệ".repeat(4_990);
    let mut ids = Vec::new();
    for k in 0..90 {
        let mut request = submission(&format!("big-{k}"));
        request.body = format!("{k:04} {body}");
        ids.push(hold(&app, request).await);
    }
    let mut moderation = ModerationServiceClient::new(app.channel().await);
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = moderation
            .list_flagged(pb::ListFlaggedRequest {
                page_size: 200,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            page.encoded_len() <= 1 << 20,
            "{} bytes",
            page.encoded_len()
        );
        pages += 1;
        seen.extend(
            page.items
                .iter()
                .map(|i| i.comment.as_ref().unwrap().id.clone()),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(pages >= 2, "the page was cut");
    assert_eq!(seen, ids, "every comment once, in order");
}

on_both_backends!(a_claim_with_thousands_of_bad_ids_gets_a_short_answer);
async fn a_claim_with_thousands_of_bad_ids_gets_a_short_answer(backend: Backend) {
    let mut config = common::holding_config_on(backend);
    config.server.max_message_bytes = 1 << 20;
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut moderation = ModerationServiceClient::new(app.channel().await);
    let status = moderation
        .claim_flagged(pb::ClaimFlaggedRequest {
            moderator: "lan".into(),
            comment_ids: (0..5_000).map(|k| format!("bad-{k}")).collect(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), moderation::grpc::MAX_VIOLATIONS + 1);
    assert!(
        violations.last().unwrap().description.contains("more"),
        "{:?}",
        violations.last()
    );
    assert!(
        status.details().len() < 8_000,
        "{} bytes",
        status.details().len()
    );
}

/// Sends bytes as they are, and reads the answer as bytes: to send what no generated client
/// would.
#[derive(Clone, Default)]
struct RawCodec;

struct RawBytes;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

on_both_backends!(a_request_that_does_not_decode_is_invalid_not_internal);
async fn a_request_that_does_not_decode_is_invalid_not_internal(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    app.wait_for_health(SERVING).await;
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    for (what, bytes) in [
        ("invalid UTF-8 in article_id", vec![0x0a, 0x02, 0xff, 0xfe]),
        ("a truncated field", vec![0x0a, 0x05, 0x61]),
        ("a wrong wire type", vec![0x0b]),
    ] {
        grpc.ready().await.unwrap();
        let path =
            http::uri::PathAndQuery::from_static("/moderation.v1.CommentService/SubmitComment");
        let status = grpc
            .unary(tonic::Request::new(bytes), path, RawCodec)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(violated_fields(&status), ["message"], "{what}");
    }
}

on_both_backends!(invisible_names_and_impossible_render_times_are_refused);
async fn invisible_names_and_impossible_render_times_are_refused(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let mut client = app.client.clone();
    let mut request = submission("invisible-1");
    request.author_name = "\u{3164}\u{3164}".into();
    let status = client.submit_comment(request).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["author_name"]);
    for seconds in [253_402_300_799, i64::MAX, i64::MIN] {
        let mut request = submission(&format!("future-{}", seconds.unsigned_abs() % 1000));
        request.form_rendered_at = Some(prost_types::Timestamp { seconds, nanos: 0 });
        let status = client.submit_comment(request).await.unwrap_err();
        assert_eq!(violated_fields(&status), ["form_rendered_at"], "{seconds}");
    }
}

on_both_backends!(every_spelling_of_an_address_shares_its_rate_limit_bucket);
async fn every_spelling_of_an_address_shares_its_rate_limit_bucket(backend: Backend) {
    use moderation::rate_limit::Quota;
    use moderation::secret::Secret;
    let mut config = test_config_on(backend);
    config.rate_limit.enabled = true;
    config.rate_limit.email_hash_key = Some(Secret::new("test key"));
    config.rate_limit.buckets.email = Some(Quota {
        rate: 1,
        per: Duration::from_secs(3600),
        burst: 1,
        shadow: false,
    });
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut client = app.client.clone();
    let mut first = submission("spelling-0");
    first.author_email = "ban.doc@bücher.de".into();
    client.submit_comment(first).await.unwrap();
    for (k, spelling) in [
        "BAN.DOC@BÜCHER.DE",
        "ban.doc@xn--bcher-kva.de",
        "ｂａｎ.ｄｏｃ＠bücher.de",
        "ban.doc@bu\u{0308}cher.de",
    ]
    .into_iter()
    .enumerate()
    {
        let mut again = submission(&format!("spelling-{}", k + 1));
        again.author_email = spelling.into();
        let status = client.submit_comment(again).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{spelling}");
    }
    let mut hidden = submission("spelling-9");
    hidden.author_email = "ban.doc\u{200B}@bücher.de".into();
    let status = client.submit_comment(hidden).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["author_email"]);
}

#[tokio::test]
async fn the_portals_group_comes_back_when_redis_returns_empty() {
    let app = TestApp::spawn(test_config()).await;
    app.wait_for_health(SERVING).await;
    // Redis restarts empty while the instance still thinks all is well.
    common::delete_prefix(app.config.redis.url.expose(), &app.config.redis.prefix);
    app.client
        .clone()
        .submit_comment(submission("group-1"))
        .await
        .unwrap();
    let mut redis = app.redis();
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("portal")
        .arg("web-1")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(app.key("accepted"))
        .arg(">")
        .query(&mut redis)
        .expect("the group exists: no NOGROUP");
    assert_ne!(read, redis::Value::Nil, "the comment is delivered");
    assert_eq!(stream(&app, "accepted").len(), 1);
}
