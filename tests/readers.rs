//! Readers over the real gRPC API, on both backends: standings set by moderators (audited, in
//! force at once), "ban and reject all", first comments, automatic pre-moderation, and every
//! bad request answered precisely.

mod common;

use std::time::Duration;

use common::{Backend, TestApp, submission_from as from, submit, test_config_on};
use moderation::proto::v1 as pb;
use pb::admin_service_client::AdminServiceClient;
use pb::reader_service_client::ReaderServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

async fn update(app: &TestApp, changes: &[(&str, &str)]) {
    common::update_settings(app, changes).await.unwrap();
}

async fn readers(app: &TestApp) -> ReaderServiceClient<Channel> {
    ReaderServiceClient::new(app.channel().await)
}

async fn reader(client: &mut ReaderServiceClient<Channel>, email: &str) -> pb::Reader {
    client
        .get_reader(pb::GetReaderRequest {
            email: email.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn standing(
    email: &str,
    standing: pb::ReaderStanding,
    reason: &str,
) -> pb::SetReaderStandingRequest {
    pb::SetReaderStandingRequest {
        email: email.into(),
        standing: standing.into(),
        reason: reason.into(),
        moderator: "minh".into(),
        ..Default::default()
    }
}

const LAN: &str = "lan.tran@example.vn";

on_both_backends!(a_ban_refuses_the_reader_and_rejects_and_takes_down_all_they_wrote);
async fn a_ban_refuses_the_reader_and_rejects_and_takes_down_all_they_wrote(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let mut client = readers(&app).await;
    let published = submit(
        &app,
        from(
            LAN,
            "lan-1",
            "Bài viết rất hữu ích, cảm ơn tác giả đã tổng hợp.",
        ),
    )
    .await;
    assert_eq!(published.outcome(), pb::Outcome::Accepted);
    let premoderated = client
        .set_reader_standing(standing(LAN, pb::ReaderStanding::Premoderated, "watch her"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        premoderated.reader.unwrap().standing(),
        pb::ReaderStanding::Premoderated
    );
    let held = submit(
        &app,
        from(LAN, "lan-2", "Tôi vẫn giữ ý kiến của mình về chuyện này."),
    )
    .await;
    assert_eq!(held.outcome(), pb::Outcome::PendingReview);
    assert_eq!(held.reasons[0].code, "READER_PREMODERATED");
    assert!(
        held.reasons[0].message.contains("watch her"),
        "{:?}",
        held.reasons
    );
    let other = submit(
        &app,
        from(
            "an@example.vn",
            "an-1",
            "Tôi đồng ý với bài viết này hoàn toàn.",
        ),
    )
    .await;
    assert_eq!(other.outcome(), pb::Outcome::Accepted, "only her comments");

    let seen = reader(&mut client, LAN).await;
    assert_eq!((seen.accepted, seen.held, seen.rejected), (1, 1, 0));
    assert_eq!((seen.set_by.as_str(), seen.in_force), ("minh", true));
    assert_eq!(seen.latest[0].id, held.comment_id, "newest first");
    assert!(!seen.reader_id.is_empty() && !seen.reader_id.contains("lan"));
    assert_eq!(
        seen.latest[0].reader_id.as_deref(),
        Some(seen.reader_id.as_str()),
        "comments carry their reader's id"
    );

    let mut ban = standing(LAN, pb::ReaderStanding::Banned, "insults, again");
    ban.reject_all = true;
    let swept = client.set_reader_standing(ban).await.unwrap().into_inner();
    assert_eq!(swept.rejected_ids, std::slice::from_ref(&held.comment_id));
    assert_eq!(
        swept.taken_down_ids,
        std::slice::from_ref(&published.comment_id)
    );
    assert!(swept.left.is_empty(), "{:?}", swept.left);
    let down = common::stored(&app, &published.comment_id).await;
    assert_eq!(
        (down.state(), down.published),
        (pb::CommentState::Rejected, false)
    );
    let removed = common::stream(&app, "removed");
    assert!(
        removed
            .iter()
            .any(|e| e.get("id") == Some(&published.comment_id)),
        "the portal is told to take it down: {removed:?}"
    );
    assert_eq!(
        common::stored(&app, &held.comment_id).await.state(),
        pb::CommentState::Rejected
    );
    assert_eq!(
        common::stored(&app, &other.comment_id).await.state(),
        pb::CommentState::Accepted
    );

    let refused = app
        .client
        .clone()
        .submit_comment(from(LAN, "lan-3", "Sao bình luận của tôi bị xoá?"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let info = refused.get_details_error_info().unwrap();
    assert_eq!(info.reason, "READER_BANNED");
    assert_eq!(
        info.metadata.get("reason").map(String::as_str),
        Some("insults, again")
    );
    let retry = submit(
        &app,
        from(
            LAN,
            "lan-1",
            "Bài viết rất hữu ích, cảm ơn tác giả đã tổng hợp.",
        ),
    )
    .await;
    assert!(
        retry.replayed,
        "a retry of a stored submission still gets its first answer"
    );

    // Audited as settings changes, under the reader's key (never the address).
    let audit = AdminServiceClient::new(app.channel().await)
        .list_settings_audit(pb::ListSettingsAuditRequest { limit: 5 })
        .await
        .unwrap()
        .into_inner();
    let change = &audit.records[0].changes[0];
    assert_eq!(change.key, format!("reader.{}", seen.reader_id));
    assert_eq!(change.old_value, "premoderated because watch her");
    assert_eq!(change.new_value, "banned because insults, again");
    assert_eq!(audit.records[0].by, "minh");

    client
        .set_reader_standing(standing(LAN, pb::ReaderStanding::None, ""))
        .await
        .unwrap();
    let again = submit(
        &app,
        from(LAN, "lan-4", "Cảm ơn ban biên tập đã xem xét lại."),
    )
    .await;
    assert_eq!(again.outcome(), pb::Outcome::Accepted, "lifted");
}

on_both_backends!(trust_skips_review_and_a_suspension_names_its_end);
async fn trust_skips_review_and_a_suspension_names_its_end(backend: Backend) {
    let app = TestApp::spawn(common::holding_config_on(backend)).await;
    let mut client = readers(&app).await;
    let body = "Tôi nghĩ thành phố nên mở thêm tuyến xe buýt cho khu này.";
    assert_eq!(
        submit(&app, from(LAN, "t-1", body)).await.outcome(),
        pb::Outcome::PendingReview
    );
    client
        .set_reader_standing(standing(
            LAN,
            pb::ReaderStanding::Trusted,
            "long-time reader",
        ))
        .await
        .unwrap();
    let trusted = submit(
        &app,
        from(
            LAN,
            "t-2",
            "Tuyến xe buýt số 8 cũng nên chạy muộn hơn vào buổi tối.",
        ),
    )
    .await;
    assert_eq!(
        trusted.outcome(),
        pb::Outcome::Accepted,
        "{:?}",
        trusted.reasons
    );
    assert!(trusted.reasons.is_empty());

    let until = jiff::Timestamp::now().as_second() + 3600;
    let mut suspend = standing(LAN, pb::ReaderStanding::Suspended, "cool down");
    suspend.until = Some(prost_types::Timestamp {
        seconds: until,
        nanos: 0,
    });
    client.set_reader_standing(suspend).await.unwrap();
    let refused = app
        .client
        .clone()
        .submit_comment(from(LAN, "t-3", body))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let info = refused.get_details_error_info().unwrap();
    assert_eq!(info.reason, "READER_SUSPENDED");
    let end = jiff::Timestamp::from_second(until).unwrap().to_string();
    assert_eq!(info.metadata.get("until"), Some(&end));
    assert!(refused.message().contains(&end), "{}", refused.message());
}

on_both_backends!(a_first_comment_waits_when_ops_ask);
async fn a_first_comment_waits_when_ops_ask(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    update(&app, &[("readers.hold_first_comment", "true")]).await;
    let first = submit(
        &app,
        from(
            "moi@example.vn",
            "f-1",
            "Lần đầu tôi bình luận trên báo này.",
        ),
    )
    .await;
    assert_eq!(first.outcome(), pb::Outcome::PendingReview);
    assert_eq!(first.reasons[0].code, "FIRST_COMMENT");
    let second = submit(
        &app,
        from(
            "moi@example.vn",
            "f-2",
            "Lần thứ hai thì không cần chờ nữa.",
        ),
    )
    .await;
    assert_eq!(second.outcome(), pb::Outcome::Accepted);
}

on_both_backends!(rejections_pre_moderate_a_reader_for_a_while);
async fn rejections_pre_moderate_a_reader_for_a_while(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    update(
        &app,
        &[
            ("readers.auto_premoderate", "2 of 3 for 1h"),
            ("lists.blocked_words", "lô đề"),
        ],
    )
    .await;
    for k in 0..2 {
        let spam = submit(
            &app,
            from(LAN, &format!("a-{k}"), "Soi cầu lô đề chuẩn nhất hôm nay"),
        )
        .await;
        assert_eq!(spam.outcome(), pb::Outcome::Rejected);
    }
    let mut client = readers(&app).await;
    // The watcher weighs rejections after they are answered: wait for it (bounded).
    let mut seen = reader(&mut client, LAN).await;
    for _ in 0..50 {
        if seen.standing() == pb::ReaderStanding::Premoderated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = reader(&mut client, LAN).await;
    }
    assert_eq!(seen.standing(), pb::ReaderStanding::Premoderated);
    assert_eq!(seen.set_by, "service");
    assert!(seen.reason.contains("2 of the last 3"), "{}", seen.reason);
    assert!(seen.until.is_some());
    let clean = submit(
        &app,
        from(
            LAN,
            "a-9",
            "Xin lỗi mọi người, tôi sẽ bình luận nghiêm túc.",
        ),
    )
    .await;
    assert_eq!(clean.outcome(), pb::Outcome::PendingReview);
    assert_eq!(clean.reasons[0].code, "READER_PREMODERATED");
    assert!(
        clean.reasons[0].message.contains("automatic"),
        "{:?}",
        clean.reasons
    );
}

on_both_backends!(bad_requests_are_refused_naming_the_field);
async fn bad_requests_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let mut client = readers(&app).await;
    let fields = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        common::violated_fields(&status)
    };
    let nobody = client
        .get_reader(pb::GetReaderRequest::default())
        .await
        .unwrap_err();
    assert_eq!(fields(nobody), ["reader_id"]);
    let bad_id = client
        .get_reader(pb::GetReaderRequest {
            reader_id: "lan".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(bad_id), ["reader_id"]);
    let bad_email = client
        .get_reader(pb::GetReaderRequest {
            email: "not an address".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(bad_email), ["email"]);
    let unknown = reader(&mut client, "nobody@example.vn").await;
    assert_eq!(
        (unknown.standing(), unknown.latest.len()),
        (pb::ReaderStanding::None, 0)
    );

    let mut no_standing = standing(LAN, pb::ReaderStanding::Unspecified, "");
    no_standing.email = String::new();
    let both = client.set_reader_standing(no_standing).await.unwrap_err();
    assert_eq!(fields(both), ["reader_id", "standing"]);
    let endless = client
        .set_reader_standing(standing(LAN, pb::ReaderStanding::Suspended, ""))
        .await
        .unwrap_err();
    assert_eq!(fields(endless), ["until"]);
    let mut past = standing(LAN, pb::ReaderStanding::Banned, "");
    past.until = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    });
    assert_eq!(
        fields(client.set_reader_standing(past).await.unwrap_err()),
        ["until"]
    );
    let mut sweep_trusted = standing(LAN, pb::ReaderStanding::Trusted, "");
    sweep_trusted.reject_all = true;
    assert_eq!(
        fields(client.set_reader_standing(sweep_trusted).await.unwrap_err()),
        ["reject_all"]
    );
    let long = standing(LAN, pb::ReaderStanding::Banned, &"x".repeat(501));
    assert_eq!(
        fields(client.set_reader_standing(long).await.unwrap_err()),
        ["reason"]
    );
    assert_eq!(
        reader(&mut client, LAN).await.standing(),
        pb::ReaderStanding::None,
        "nothing set"
    );
}

/// With storage down, readers' calls answer UNAVAILABLE within their deadline (never a hang),
/// and a re-scan too.
#[tokio::test(flavor = "multi_thread")]
async fn with_redis_down_readers_and_rescans_say_so() {
    let mut redis = common::PrivateRedis::start();
    let mut config = test_config_on(Backend::Redis);
    config.redis.url = moderation::store::redis::RedisUrl::new(redis.url());
    config.server.request_timeout = Duration::from_millis(500);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(1).await;
    let mut client = readers(&app).await;
    reader(&mut client, LAN).await;
    redis.stop();
    // A hang would run into these guards instead of an answer.
    let guard = Duration::from_secs(10);
    let looked_up = tokio::time::timeout(
        guard,
        client.get_reader(pb::GetReaderRequest {
            email: LAN.into(),
            ..Default::default()
        }),
    )
    .await
    .expect("answered, not hung")
    .unwrap_err();
    assert_eq!(looked_up.code(), Code::Unavailable, "{looked_up:?}");
    let set = tokio::time::timeout(
        guard,
        client.set_reader_standing(standing(LAN, pb::ReaderStanding::Banned, "spam")),
    )
    .await
    .expect("answered, not hung")
    .unwrap_err();
    assert_eq!(set.code(), Code::Unavailable, "{set:?}");
    let mut admin = AdminServiceClient::new(app.channel().await);
    let rescan = tokio::time::timeout(guard, admin.rescan(pb::RescanRequest::default()))
        .await
        .expect("answered, not hung")
        .unwrap_err();
    assert_eq!(rescan.code(), Code::Unavailable, "{rescan:?}");
}
