//! The review queue end to end: the real server on port 0, real Redis, the generated client
//! over TCP, and the `moderation` binary for the moderators' command line and the feedback
//! export. Held comments are listed with what a moderator needs, claims are leases that never
//! overlap and expire, decisions are versioned and land in the portal's streams, reports bring
//! published comments back, and decisions become training data `train` accepts.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{
    Backend, PrivateRedis, TestApp, cli, stdout, stream, submission, test_config, violated_fields,
};
use moderation::proto::v1 as pb;
use pb::moderation_service_client::ModerationServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const SERVING: i32 = 1;

/// A server whose thresholds send every comment to review.
async fn review_app(backend: Backend) -> (TestApp, ModerationServiceClient<Channel>) {
    let app = TestApp::spawn(common::holding_config_on(backend)).await;
    app.wait_for_health(SERVING).await;
    let client = ModerationServiceClient::new(app.channel().await);
    (app, client)
}

/// Submits a held comment; returns its id.
async fn hold(
    app: &TestApp,
    key: &str,
    edit: impl FnOnce(&mut pb::SubmitCommentRequest),
) -> String {
    let mut request = submission(key);
    edit(&mut request);
    common::hold(app, request).await
}

async fn hold_many(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for k in 0..n {
        ids.push(
            hold(app, &format!("{prefix}-{k}"), |r| {
                r.body = format!("Ý kiến số {k} về bài này")
            })
            .await,
        );
    }
    ids
}

fn list(page_size: u32) -> pb::ListFlaggedRequest {
    pb::ListFlaggedRequest {
        page_size,
        ..Default::default()
    }
}

fn claim(moderator: &str, count: u32) -> pb::ClaimFlaggedRequest {
    pb::ClaimFlaggedRequest {
        moderator: moderator.into(),
        count,
        ..Default::default()
    }
}

fn decide(
    id: &str,
    version: u64,
    moderator: &str,
    decision: pb::ModeratorDecision,
) -> pb::DecideCommentRequest {
    pb::DecideCommentRequest {
        comment_id: id.into(),
        version,
        decision: decision.into(),
        moderator: moderator.into(),
        ..Default::default()
    }
}

fn ids_of(items: &[pb::FlaggedItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| i.comment.as_ref().unwrap().id.clone())
        .collect()
}

fn reason_of(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

on_both_backends!(a_held_comment_is_listed_claimed_approved_and_published);
async fn a_held_comment_is_listed_claimed_approved_and_published(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    let id = hold(&app, "cycle-1", |r| {
        r.body = "Liên hệ zalo 0912 345 678 để nhận quà miễn phí".into();
    })
    .await;

    let page = moderation.list_flagged(list(0)).await.unwrap().into_inner();
    assert_eq!(ids_of(&page.items), [id.as_str()]);
    assert!(page.next_page_token.is_empty());
    let item = &page.items[0];
    let comment = item.comment.as_ref().unwrap();
    assert_eq!(comment.state(), pb::CommentState::PendingReview);
    assert_eq!(
        comment.article_title.as_deref(),
        Some("Giá xăng tăng từ chiều nay")
    );
    assert_eq!(
        comment.author_email, None,
        "without authentication nobody is known to be a moderator, so nobody sees addresses"
    );
    assert!(comment.spam_score > 0.0);
    assert_eq!(comment.reasons[0].code, "SPAM_LIKELY");
    assert!(
        item.explanation
            .iter()
            .any(|f| f.head == "spam" && f.weight > 0.0),
        "{:?}",
        item.explanation
    );
    assert_eq!(item.author_record.unwrap(), pb::AuthorRecord::default());
    assert_eq!(item.version, 1);
    assert!(item.claim.is_none());

    let claimed = moderation
        .claim_flagged(claim("lan", 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids_of(&claimed.items),
        [id.as_str()],
        "fewer than asked when the queue is short"
    );
    let lease = claimed.items[0].claim.clone().unwrap();
    assert_eq!(lease.moderator, "lan");
    let until = lease.until.unwrap().seconds;
    let now = jiff::Timestamp::now().as_second();
    assert!(
        (now + 540..=now + 600).contains(&until),
        "the default lease is 10 minutes"
    );

    let mut approve = decide(&id, 1, "lan", pb::ModeratorDecision::Approve);
    approve.note = "khuyến mãi thật của nhà tài trợ".into();
    let decided = moderation
        .decide_comment(approve)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decided.state(), pb::CommentState::Accepted);
    assert_eq!(decided.version, 2);

    let published = stream(&app, "accepted");
    assert_eq!(published.len(), 1);
    let entry = &published[0];
    assert_eq!(entry["id"], id);
    assert_eq!(entry["article_id"], "thoi-su-2026-11-27");
    assert_eq!(entry["author_name"], "Nguyễn Văn An");
    assert_eq!(
        entry["body"],
        "Liên hệ zalo 0912 345 678 để nhận quà miễn phí"
    );
    assert!(entry["created_at"].parse::<i64>().unwrap() > 0);
    assert!(
        !entry.contains_key("author_email"),
        "the portal publishes no e-mail address"
    );

    assert!(
        moderation
            .list_flagged(list(0))
            .await
            .unwrap()
            .into_inner()
            .items
            .is_empty()
    );
    let got = common::stored(&app, &id).await;
    assert_eq!(got.state(), pb::CommentState::Accepted);

    let history = moderation
        .get_comment_history(pb::GetCommentHistoryRequest {
            comment_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let steps: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("service", "submitted"),
            ("lan", "claimed"),
            ("lan", "approved")
        ]
    );
    assert_eq!(history[2].note, "khuyến mãi thật của nhà tài trợ");
    assert_eq!(history[2].state(), pb::CommentState::Accepted);

    // The author's next comment shows the record.
    hold(&app, "cycle-2", |_| {}).await;
    let next = moderation.list_flagged(list(0)).await.unwrap().into_inner();
    let record = next.items[0].author_record.unwrap();
    assert_eq!((record.accepted, record.rejected), (1, 0));
    assert_eq!(next.items[0].ip_record.unwrap().accepted, 1);
}

on_both_backends!(a_rejected_comment_goes_to_the_rejected_log_and_not_to_the_portal);
async fn a_rejected_comment_goes_to_the_rejected_log_and_not_to_the_portal(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    let id = hold(&app, "reject-1", |r| r.body = "Đồ ngu, cút khỏi đây".into()).await;
    let mut reject = decide(&id, 1, "minh", pb::ModeratorDecision::Reject);
    reject.label = pb::RejectLabel::Abuse.into();
    reject.note = "xúc phạm".into();
    let decided = moderation
        .decide_comment(reject)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decided.state(), pb::CommentState::Rejected);

    assert!(stream(&app, "accepted").is_empty());
    let log = stream(&app, "rejected");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["id"], id);
    assert_eq!(log[0]["decided_by"], "minh");
    assert!(log[0]["reasons"].contains("SPAM_LIKELY"));

    let feedback = stream(&app, "feedback");
    assert_eq!(feedback.len(), 1);
    assert_eq!(feedback[0]["comment_id"], id);
    assert_eq!(feedback[0]["toxic"], "true");
    assert_eq!(feedback[0]["spam"], "false");
    assert_eq!(feedback[0]["lang"], "vi");

    // Decided once: a second decision is refused, whatever the version.
    let again = moderation
        .decide_comment(decide(&id, 2, "minh", pb::ModeratorDecision::Approve))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&again), "NOT_IN_REVIEW");
}

on_both_backends!(two_moderators_claiming_at_once_get_disjoint_comments);
async fn two_moderators_claiming_at_once_get_disjoint_comments(backend: Backend) {
    let (app, moderation) = review_app(backend).await;
    let all: HashSet<String> = hold_many(&app, "race", 10).await.into_iter().collect();
    let (mut a, mut b) = (moderation.clone(), moderation.clone());
    let (lan, minh) = tokio::join!(
        a.claim_flagged(claim("lan", 4)),
        b.claim_flagged(claim("minh", 4))
    );
    let lan = ids_of(&lan.unwrap().into_inner().items);
    let minh = ids_of(&minh.unwrap().into_inner().items);
    assert_eq!((lan.len(), minh.len()), (4, 4));
    let lan_set: HashSet<_> = lan.iter().cloned().collect();
    assert!(
        minh.iter().all(|id| !lan_set.contains(id)),
        "{lan:?} and {minh:?} overlap"
    );

    // The third gets what is left; claiming by count never returns one's own claims again.
    let rest = ids_of(
        &moderation
            .clone()
            .claim_flagged(claim("lan", 10))
            .await
            .unwrap()
            .into_inner()
            .items,
    );
    assert_eq!(rest.len(), 2);
    let claimed: HashSet<String> = lan.into_iter().chain(minh).chain(rest).collect();
    assert_eq!(claimed, all);
}

on_both_backends!(a_claim_finds_free_comments_behind_many_claimed_ones);
async fn a_claim_finds_free_comments_behind_many_claimed_ones(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    hold_many(&app, "deep", 251).await;
    for (moderator, count) in [("lan", 100), ("minh", 100), ("an", 50)] {
        let got = moderation
            .claim_flagged(claim(moderator, count))
            .await
            .unwrap();
        assert_eq!(got.into_inner().items.len(), count as usize, "{moderator}");
    }
    // 250 claimed ahead of it: the one free comment left is still found.
    let last = moderation
        .claim_flagged(claim("bao", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.items.len(), 1);
    let none = moderation
        .claim_flagged(claim("bao", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(
        none.items.is_empty(),
        "Bao's own claim is not handed out again"
    );
}

on_both_backends!(claims_held_by_another_refuse_decisions_until_they_expire);
async fn claims_held_by_another_refuse_decisions_until_they_expire(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    let id = hold(&app, "lease-1", |_| {}).await;
    let mut short = claim("lan", 1);
    short.lease_seconds = Some(1);
    let held = moderation.claim_flagged(short).await.unwrap().into_inner();
    assert_eq!(ids_of(&held.items), [id.as_str()]);

    // Another moderator finds nothing to claim, cannot claim it by id, and cannot decide it.
    let none = moderation
        .claim_flagged(claim("minh", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(none.items.is_empty());
    let by_id = moderation
        .claim_flagged(pb::ClaimFlaggedRequest {
            moderator: "minh".into(),
            comment_ids: vec![id.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(by_id.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&by_id), "CLAIMED_BY_OTHER");
    let refused = moderation
        .decide_comment(decide(&id, 1, "minh", pb::ModeratorDecision::Approve))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&refused), "CLAIMED_BY_OTHER");
    assert_eq!(
        refused.get_details_error_info().unwrap().metadata["moderator"],
        "lan"
    );

    // The abandoned claim ends by itself and the comment is back in the queue.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let listed = moderation.list_flagged(list(0)).await.unwrap().into_inner();
    assert!(
        listed.items[0].claim.is_none(),
        "an expired claim is not shown"
    );
    let taken = moderation
        .claim_flagged(claim("minh", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of(&taken.items), [id.as_str()]);
    let decided = moderation
        .decide_comment(decide(&id, 1, "minh", pb::ModeratorDecision::Approve))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decided.state(), pb::CommentState::Accepted);
}

on_both_backends!(a_stale_version_is_aborted_and_nothing_changes);
async fn a_stale_version_is_aborted_and_nothing_changes(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    let id = hold(&app, "stale-1", |_| {}).await;
    // Moderator A reads version 1, the comment is approved, reported, and back at version 3.
    moderation
        .decide_comment(decide(&id, 1, "lan", pb::ModeratorDecision::Approve))
        .await
        .unwrap();
    let reported = moderation
        .report_comment(pb::ReportCommentRequest {
            reporter: "reader-0".into(),
            comment_id: id.clone(),
            reason: "Bình luận lăng mạ người khác".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reported.version, 3);

    let stale = moderation
        .decide_comment(decide(&id, 1, "minh", pb::ModeratorDecision::Approve))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let info = stale.get_details_error_info().unwrap();
    assert_eq!(info.reason, "STALE_VERSION");
    assert_eq!(info.metadata["current_version"], "3");
    assert_eq!(info.metadata["given_version"], "1");
    let listed = moderation.list_flagged(list(0)).await.unwrap().into_inner();
    assert_eq!(ids_of(&listed.items), [id]);
    assert_eq!(listed.items[0].version, 3);
}

on_both_backends!(a_reported_comment_comes_back_and_its_rejection_takes_it_down);
async fn a_reported_comment_comes_back_and_its_rejection_takes_it_down(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    let kept = hold(&app, "report-kept", |_| {}).await;
    let removed = hold(&app, "report-removed", |r| {
        r.body = "Thằng tác giả ngu như bò".into()
    })
    .await;
    for id in [&kept, &removed] {
        moderation
            .decide_comment(decide(id, 1, "lan", pb::ModeratorDecision::Approve))
            .await
            .unwrap();
    }
    assert_eq!(stream(&app, "accepted").len(), 2);

    // Only published comments can be reported.
    let pending = hold(&app, "report-pending", |_| {}).await;
    let refused = moderation
        .report_comment(pb::ReportCommentRequest {
            reporter: "reader-1".into(),
            comment_id: pending.clone(),
            reason: "spam".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&refused), "NOT_PUBLISHED");

    for id in [&kept, &removed] {
        let answer = moderation
            .report_comment(pb::ReportCommentRequest {
                reporter: "reader-2".into(),
                comment_id: id.clone(),
                reason: "Xúc phạm tác giả".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.state(), pb::CommentState::PendingReview);
        // Back in the queue, and still on the portal until a moderator says otherwise.
        assert!(common::stored(&app, id).await.published, "{id}");
    }
    assert!(
        !common::stored(&app, &pending).await.published,
        "held, never published"
    );
    // A second reader's report joins the first; the version does not move.
    let again = moderation
        .report_comment(pb::ReportCommentRequest {
            reporter: "reader-3".into(),
            comment_id: kept.clone(),
            reason: "Nói tục".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.version, 3);
    let reported = moderation
        .list_flagged(pb::ListFlaggedRequest {
            reason: Some("REPORTED".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of(&reported.items), [kept.clone(), removed.clone()]);
    assert_eq!(reported.items[0].reports, ["Xúc phạm tác giả", "Nói tục"]);
    let codes: Vec<&str> = reported.items[0]
        .comment
        .as_ref()
        .unwrap()
        .reasons
        .iter()
        .map(|r| r.code.as_str())
        .collect();
    assert_eq!(codes, ["SPAM_LIKELY", "REPORTED"]);
    // Listed under its first reason too, by either index.
    for article in [None, Some("thoi-su-2026-11-27".to_owned())] {
        let by_reason = moderation
            .list_flagged(pb::ListFlaggedRequest {
                reason: Some("SPAM_LIKELY".into()),
                article_id: article.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let ids = ids_of(&by_reason.items);
        assert!(
            ids.contains(&kept) && ids.contains(&removed),
            "{article:?}: {ids:?}"
        );
    }

    // Upheld: taken down. Not upheld: stays published, not published twice.
    moderation
        .decide_comment(decide(&removed, 3, "minh", pb::ModeratorDecision::Reject))
        .await
        .unwrap();
    moderation
        .decide_comment(decide(&kept, 3, "minh", pb::ModeratorDecision::Approve))
        .await
        .unwrap();
    assert_eq!(stream(&app, "accepted").len(), 2);
    assert!(
        !common::stored(&app, &removed).await.published,
        "taken down"
    );
    assert!(
        common::stored(&app, &kept).await.published,
        "upheld: still published"
    );
    let taken_down = stream(&app, "removed");
    assert_eq!(taken_down.len(), 1);
    assert_eq!(taken_down[0]["id"], removed);

    // The report's verdicts are labeled: upheld (rejected without a label) is abuse.
    let feedback = stream(&app, "feedback");
    let last = |id: &str| {
        feedback
            .iter()
            .rev()
            .find(|f| f["comment_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(last(&removed)["toxic"], "true");
    assert_eq!(last(&kept)["toxic"], "false");
    let remaining = moderation.list_flagged(list(0)).await.unwrap().into_inner();
    assert_eq!(ids_of(&remaining.items), [pending]);
}

on_both_backends!(listings_filter_by_article_reason_and_age_and_page_without_gaps);
async fn listings_filter_by_article_reason_and_age_and_page_without_gaps(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    let mut under_b = Vec::new();
    for k in 0..5 {
        hold(&app, &format!("a-{k}"), |r| r.article_id = "bai-a".into()).await;
        under_b.push(hold(&app, &format!("b-{k}"), |r| r.article_id = "bai-b".into()).await);
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = moderation
            .list_flagged(pb::ListFlaggedRequest {
                article_id: Some("bai-b".into()),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(ids_of(&page.items));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, under_b, "oldest first, each once");
    assert_eq!(pages, 3);

    let with_reason = |reason: &str| pb::ListFlaggedRequest {
        article_id: Some("bai-a".into()),
        reason: Some(reason.into()),
        ..Default::default()
    };
    let spam = moderation
        .list_flagged(with_reason("SPAM_LIKELY"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(spam.items.len(), 5);
    let toxic = moderation
        .list_flagged(with_reason("TOXIC_LIKELY"))
        .await
        .unwrap()
        .into_inner();
    assert!(toxic.items.is_empty());

    let older_than_an_hour = moderation
        .list_flagged(pb::ListFlaggedRequest {
            min_age_seconds: Some(3600),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(older_than_an_hour.items.is_empty());
    let within_an_hour = moderation
        .list_flagged(pb::ListFlaggedRequest {
            max_age_seconds: Some(3600),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(within_an_hour.items.len(), 10);
}

on_both_backends!(bad_requests_name_the_field_and_unknown_comments_are_not_found);
async fn bad_requests_name_the_field_and_unknown_comments_are_not_found(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    let id = hold(&app, "bad-1", |_| {}).await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let invalid = [
        (
            moderation
                .list_flagged(pb::ListFlaggedRequest {
                    page_token: "nonsense".into(),
                    ..Default::default()
                })
                .await,
            "page_token",
        ),
        (
            moderation
                .list_flagged(pb::ListFlaggedRequest {
                    reason: Some("BORING".into()),
                    ..Default::default()
                })
                .await,
            "reason",
        ),
        (
            moderation
                .list_flagged(pb::ListFlaggedRequest {
                    min_age_seconds: Some(60),
                    max_age_seconds: Some(10),
                    ..Default::default()
                })
                .await,
            "max_age_seconds",
        ),
    ];
    for (answer, field) in invalid {
        let status = answer.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violated_fields(&status), [field]);
    }

    let claims = [
        (claim("lan", 0), "count"),
        (claim("lan", 101), "count"),
        (claim("", 1), "moderator"),
        (claim("Trần Lan", 1), "moderator"),
        (
            pb::ClaimFlaggedRequest {
                lease_seconds: Some(7200),
                ..claim("lan", 1)
            },
            "lease_seconds",
        ),
        (
            pb::ClaimFlaggedRequest {
                comment_ids: vec!["not-an-id".into()],
                ..claim("lan", 0)
            },
            "comment_ids",
        ),
    ];
    for (request, field) in claims {
        let status = moderation.claim_flagged(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violated_fields(&status), [field]);
    }

    let mut unspecified = decide(&id, 1, "lan", pb::ModeratorDecision::Unspecified);
    unspecified.note = "x".repeat(1001);
    let status = moderation.decide_comment(unspecified).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["decision", "note"]);
    let status = moderation
        .decide_comment(decide("42", 0, "lan", pb::ModeratorDecision::Approve))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["comment_id", "version"]);
    let status = moderation
        .report_comment(pb::ReportCommentRequest {
            reporter: "reader-4".into(),
            comment_id: id.clone(),
            reason: "  ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["reason"]);

    let not_found = [
        moderation
            .decide_comment(decide(&unknown, 1, "lan", pb::ModeratorDecision::Approve))
            .await
            .unwrap_err(),
        moderation
            .claim_flagged(pb::ClaimFlaggedRequest {
                comment_ids: vec![id.clone(), unknown.clone()],
                ..claim("lan", 0)
            })
            .await
            .unwrap_err(),
        moderation
            .report_comment(pb::ReportCommentRequest {
                reporter: "reader-5".into(),
                comment_id: unknown.clone(),
                reason: "spam".into(),
            })
            .await
            .unwrap_err(),
        moderation
            .get_comment_history(pb::GetCommentHistoryRequest {
                comment_id: unknown.clone(),
            })
            .await
            .unwrap_err(),
    ];
    for status in not_found {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(
            status.get_details_resource_info().unwrap().resource_name,
            unknown
        );
    }
    // Claiming by ids is all or none: the known one was not claimed.
    let listed = moderation.list_flagged(list(0)).await.unwrap().into_inner();
    assert!(listed.items[0].claim.is_none());
}

#[tokio::test]
async fn a_redis_outage_answers_unavailable_within_the_deadline() {
    let mut redis = PrivateRedis::start();
    let mut config = test_config();
    config.redis.url = moderation::store::redis::RedisUrl::new(redis.url());
    config.server.request_timeout = Duration::from_millis(500);
    let app = TestApp::spawn(config).await;
    let mut moderation = ModerationServiceClient::new(app.channel().await);
    moderation
        .list_flagged(list(0))
        .await
        .expect("lists while Redis is up");
    redis.stop();
    let started = std::time::Instant::now();
    let status = moderation.list_flagged(list(0)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.get_details_retry_info().is_some());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let status = moderation
        .decide_comment(decide(
            &uuid::Uuid::now_v7().to_string(),
            1,
            "lan",
            pb::ModeratorDecision::Approve,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

// The command line runs as a child process and is waited for: the server needs threads of its own.
on_both_backends!(moderators_work_the_queue_from_the_command_line);
async fn moderators_work_the_queue_from_the_command_line(backend: Backend) {
    let (app, _) = review_app(backend).await;
    let first = hold(&app, "cli-1", |r| {
        r.body = "Mua sim số đẹp liên hệ 0868.686.868".into()
    })
    .await;
    let second = hold(&app, "cli-2", |_| {}).await;
    let server = format!("http://{}", app.address);
    let as_lan = [
        ("MODERATION_SERVER", server.as_str()),
        ("MODERATION_MODERATOR", "lan"),
    ];
    let as_minh = [
        ("MODERATION_SERVER", server.as_str()),
        ("MODERATION_MODERATOR", "minh"),
    ];

    let table = stdout(&cli(&["review", "list"], &as_lan));
    assert!(table.contains(&first) && table.contains(&second), "{table}");
    assert!(table.contains("SPAM_LIKELY"), "{table}");

    let claimed = stdout(&cli(&["review", "claim", "--count", "1"], &as_lan));
    assert!(
        claimed.contains(&first) && !claimed.contains(&second),
        "{claimed}"
    );
    assert!(claimed.contains("lan ("), "the claim is shown: {claimed}");

    // Minh cannot take Lan's comment; the error says who holds it.
    let refused = cli(&["review", "approve", &first], &as_minh);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("CLAIMED_BY_OTHER") && why.contains("moderator=lan"),
        "{why}"
    );

    let approved = stdout(&cli(
        &["review", "approve", &first, "--note", "ok"],
        &as_lan,
    ));
    assert!(approved.contains("accepted"), "{approved}");
    let rejected = stdout(&cli(
        &[
            "review",
            "reject",
            &second,
            "--version",
            "1",
            "--label",
            "spam",
        ],
        &as_minh,
    ));
    assert!(rejected.contains("rejected"), "{rejected}");
    assert_eq!(stream(&app, "accepted").len(), 1);
    assert_eq!(stream(&app, "rejected").len(), 1);

    let history = stdout(&cli(&["review", "history", &first], &as_lan));
    for action in ["submitted", "claimed", "approved"] {
        assert!(history.contains(action), "{history}");
    }
    assert_eq!(
        stdout(&cli(&["review", "list"], &as_lan)),
        "nothing waiting\n"
    );

    let bad = cli(&["review", "list", "--reason", "BORING"], &as_lan);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("reason: must be one of"));
}

on_both_backends!(exported_decisions_parse_as_corpus_records_and_train_a_model);
async fn exported_decisions_parse_as_corpus_records_and_train_a_model(backend: Backend) {
    let (app, mut moderation) = review_app(backend).await;
    let spam = hold(&app, "fb-spam", |r| {
        r.body = "Cho vay tiền góp ngày lãi thấp gọi 0987 654 321".into()
    })
    .await;
    let fine = hold(&app, "fb-fine", |r| {
        r.body = "Cảm ơn bài viết, rất hữu ích".into()
    })
    .await;
    let abuse = hold(&app, "fb-abuse", |r| r.body = "Mày ngu như bò".into()).await;
    for (id, decision, label) in [
        (&spam, pb::ModeratorDecision::Reject, pb::RejectLabel::Spam),
        (
            &fine,
            pb::ModeratorDecision::Approve,
            pb::RejectLabel::Unspecified,
        ),
        (
            &abuse,
            pb::ModeratorDecision::Reject,
            pb::RejectLabel::Abuse,
        ),
    ] {
        let mut request = decide(id, 1, "lan", decision);
        request.label = label.into();
        moderation.decide_comment(request).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let feedback = dir.path().join("feedback.jsonl");
    // The embedded store is read while the service runs.
    let path = app.config.store.path.to_string_lossy().into_owned();
    let env: Vec<(&str, &str)> = match backend {
        Backend::Redis => vec![
            ("MODERATION_REDIS__URL", app.config.redis.url.expose()),
            ("MODERATION_REDIS__PREFIX", app.config.redis.prefix.as_str()),
        ],
        Backend::Embedded => vec![
            ("MODERATION_STORE__BACKEND", "embedded"),
            ("MODERATION_STORE__PATH", path.as_str()),
        ],
    };
    let out = cli(
        &[
            "export-feedback",
            "--since",
            "1h",
            "--out",
            feedback.to_str().unwrap(),
        ],
        &env,
    );
    stdout(&out);
    let records = moderation::classifier::corpus::read(&feedback).expect("corpus records");
    let labels: Vec<(&str, Option<bool>, Option<bool>)> = records
        .iter()
        .map(|r| (r.text.as_str(), r.spam, r.toxic))
        .collect();
    assert_eq!(
        labels,
        [
            (
                "Cho vay tiền góp ngày lãi thấp gọi 0987 654 321",
                Some(true),
                None
            ),
            ("Cảm ơn bài viết, rất hữu ích", Some(false), Some(false)),
            ("Mày ngu như bò", Some(false), Some(true)),
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r.source.as_deref() == Some("moderation"))
    );
    assert_eq!(
        records[0].context.as_deref(),
        Some("Giá xăng tăng từ chiều nay")
    );
    assert_eq!(records[0].author.as_deref(), Some("Nguyễn Văn An"));

    // Nothing decided in the future.
    let later = cli(
        &[
            "export-feedback",
            "--since",
            "2100-01-01",
            "--out",
            dir.path().join("none.jsonl").to_str().unwrap(),
        ],
        &env,
    );
    stdout(&later);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("none.jsonl")).unwrap(),
        ""
    );

    let corpus = dir.path().join("corpus.jsonl");
    std::fs::write(&corpus, common::small_corpus()).unwrap();
    let lexicon = dir.path().join("lexicon.txt");
    std::fs::write(&lexicon, "ngu\n").unwrap();
    let model = dir.path().join("retrained.model");
    let trained = cli(
        &[
            "train",
            "--data",
            corpus.to_str().unwrap(),
            feedback.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
            "--lexicon",
            lexicon.to_str().unwrap(),
            "--hash-bits",
            "14",
            "--min-rows",
            "1",
            "--folds",
            "2",
        ],
        &[],
    );
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let model = moderation::classifier::Model::load(&model).unwrap();
    assert!(
        model
            .info()
            .trained_on
            .iter()
            .any(|t| t == "feedback.jsonl (3 records)"),
        "{:?}",
        model.info().trained_on
    );
}

#[tokio::test]
async fn comments_arriving_in_the_same_millisecond_page_without_loss() {
    use moderation::comment::{CommentId, Limits, NewComment, RawSubmission};
    use moderation::decide::{Outcome, Reason};
    use moderation::review::Query;
    use moderation::review::ReviewStore;
    use moderation::store::redis::RedisStore;
    use moderation::store::{Receipt, Store, Submission};

    let config = test_config();
    let store = RedisStore::new(config.redis.clone(), Duration::from_secs(2)).unwrap();
    let at = jiff::Timestamp::now().as_millisecond();
    let mut stored = HashSet::new();
    for k in 0..120 {
        let raw = RawSubmission {
            article_id: "cung-luc".into(),
            author_name: "Bạn đọc".into(),
            author_email: "ban.doc@example.vn".into(),
            body: format!("Bình luận {k}"),
            client_ip: "198.51.100.1".into(),
            idempotency_key: format!("same-ms-{k}"),
            ..RawSubmission::default()
        };
        let comment = NewComment::parse(&raw, &Limits::default()).unwrap();
        let receipt = Receipt {
            comment_id: CommentId::new(),
            outcome: Outcome::PendingReview,
            spam: 0.5,
            toxic: 0.1,
            reasons: vec![Reason {
                code: "SPAM_LIKELY".into(),
                message: String::new(),
            }],
            model_version: "test".into(),
        };
        store
            .save(Submission {
                comment: &comment,
                reader: &moderation::readers::ReaderKey::new(&moderation::secret::Secret::new(
                    "test",
                ))
                .id(comment.author_email.as_str()),
                receipt: &receipt,
                fingerprint: &comment.fingerprint(),
                created_at_ms: at,
                explanation: &[],
                tallies: &[],
                shared: None,
            })
            .await
            .unwrap();
        stored.insert(receipt.comment_id.to_string());
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let query = Query::parse(None, None, None, None, 50, &token).unwrap();
        let (items, next) = store.flagged(&query, at + 1).await.unwrap();
        seen.extend(items.iter().map(|i| i.comment.id.to_string()));
        match next {
            Some(cursor) => token = cursor.token(),
            None => break,
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 120, "each once");
    assert_eq!(unique, stored);

    common::delete_prefix(config.redis.url.expose(), &config.redis.prefix);
}
