//! Re-scans over the real gRPC API, on both backends: after ops block a phrase, the held and
//! recently published comments that contain it would now be rejected; with `flag`, the
//! published ones come back to the queue.

mod common;

use common::{Backend, TestApp, submission_from as from, submit, test_config_on};
use moderation::proto::v1 as pb;
use pb::admin_service_client::AdminServiceClient;
use pb::moderation_service_client::ModerationServiceClient;

async fn update(app: &TestApp, key: &str, value: &str) {
    common::update_settings(app, &[(key, value)]).await.unwrap();
}

on_both_backends!(a_new_block_list_entry_finds_what_it_would_have_rejected);
async fn a_new_block_list_entry_finds_what_it_would_have_rejected(backend: Backend) {
    let mut config = test_config_on(backend);
    // The classifier holds and rejects nothing: what changes is the block list's doing.
    config.decision.accept_below = Some(0.999);
    config.decision.reject_at = Some(1.0);
    config.decision.review_toxic_at = Some(1.0);
    let app = TestApp::spawn(config).await;
    update(&app, "articles.premoderated", "cho-duyet").await;
    let body = "Mọi người ghé xem trang của tôi nói về chuyện xổ số kiến thiết tuần này nhé";
    let published = submit(&app, from("mot@example.vn", "rs-1", body)).await;
    assert_eq!(published.outcome(), pb::Outcome::Accepted);
    let mut waiting = from(
        "hai@example.vn",
        "rs-2",
        "Kết quả xổ số miền nam hôm nay có ai trúng không các bạn ơi",
    );
    waiting.article_id = "cho-duyet".into();
    let held = submit(&app, waiting).await;
    assert_eq!(held.outcome(), pb::Outcome::PendingReview);
    let fine = submit(
        &app,
        from(
            "ba@example.vn",
            "rs-3",
            "Tôi đồng ý với tác giả về chuyện giao thông giờ cao điểm.",
        ),
    )
    .await;
    let mut admin = AdminServiceClient::new(app.channel().await);
    let before = admin
        .rescan(pb::RescanRequest {
            published_days: 1,
            flag: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (before.scanned, before.changed),
        (3, 0),
        "nothing changed yet: {before:?}"
    );

    update(&app, "lists.blocked_words", "xổ số").await;
    let found = admin
        .rescan(pb::RescanRequest {
            published_days: 1,
            flag: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.changed, 2, "{found:?}");
    let change = |id: &str| found.changes.iter().find(|c| c.comment_id == id).unwrap();
    let (p, h) = (change(&published.comment_id), change(&held.comment_id));
    assert_eq!(
        (p.now(), p.would()),
        (pb::CommentState::Accepted, pb::CommentState::Rejected)
    );
    assert_eq!(
        (h.now(), h.would()),
        (pb::CommentState::PendingReview, pb::CommentState::Rejected)
    );
    assert_eq!(p.reasons, ["BLOCKED_WORD"]);
    assert_eq!(found.flagged, 1, "the published one is brought back");
    let queue = ModerationServiceClient::new(app.channel().await)
        .list_flagged(pb::ListFlaggedRequest {
            page_size: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let back = queue
        .items
        .iter()
        .find(|i| i.comment.as_ref().unwrap().id == published.comment_id)
        .expect("back in the queue");
    assert!(back.reports[0].starts_with("RESCAN"), "{:?}", back.reports);
    assert!(
        back.comment.as_ref().unwrap().published,
        "still published until rejected"
    );
    let stored = common::stored(&app, &fine.comment_id).await;
    assert_eq!(
        stored.state(),
        pb::CommentState::Accepted,
        "the others are left alone"
    );
}
