//! The Akismet-compatible API and Coral's external moderation phase over real HTTP, on both
//! backends, with requests shaped as those systems' published documentation gives them.

mod common;

use common::{Backend, TestApp};
use hmac::{KeyInit, Mac};
use moderation::auth::{KeySettings, Role};
use moderation::proto::v1 as pb;
use moderation::secret::Secret;

const SERVING: i32 = 1;

fn base(app: &TestApp) -> String {
    format!("http://{}", app.console_address)
}

/// A comment-check as WordPress's Akismet plugin sends it.
fn wordpress(content: &str, author: &str) -> Vec<(&'static str, String)> {
    vec![
        ("blog", "https://tin.example.vn".into()),
        ("user_ip", "203.0.113.9".into()),
        ("user_agent", "Mozilla/5.0 (X11; Linux x86_64)".into()),
        ("referrer", "https://tin.example.vn/thoi-su/gia-xang".into()),
        (
            "permalink",
            "https://tin.example.vn/thoi-su/gia-xang".into(),
        ),
        ("comment_type", "comment".into()),
        ("comment_author", author.into()),
        ("comment_author_email", "doc.gia@example.com".into()),
        ("comment_author_url", "".into()),
        ("comment_content", content.into()),
        ("comment_post_ID", "42".into()),
        ("blog_lang", "vi".into()),
        ("blog_charset", "UTF-8".into()),
        ("comment_date_gmt", "2026-12-01 10:00:00".into()),
    ]
}

struct Answer {
    status: u16,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn akismet(app: &TestApp, call: &str, form: &[(&str, String)]) -> Answer {
    let answer = reqwest::Client::new()
        .post(format!("{}/1.1/{call}", base(app)))
        .header("user-agent", "WordPress/6.7 | Akismet/5.3")
        .form(form)
        .send()
        .await
        .unwrap();
    Answer {
        status: answer.status().as_u16(),
        headers: answer.headers().clone(),
        body: answer.text().await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn akismet_keys_are_our_portal_keys() {
    let mut config = common::test_config_on(Backend::Embedded);
    config.auth.enabled = true;
    let mut keys = Vec::new();
    for (name, role) in [("portal-web", Role::Portal), ("lan", Role::Moderator)] {
        let key = moderation::auth::new_key().unwrap();
        config.auth.keys.push(KeySettings {
            name: name.into(),
            roles: vec![role],
            sha256: moderation::auth::hash(&key),
        });
        keys.push(key);
    }
    let app = TestApp::spawn(config).await;
    let verify = |key: &str| {
        vec![
            ("key", key.to_owned()),
            ("blog", "https://tin.example.vn".to_owned()),
        ]
    };
    let valid = akismet(&app, "verify-key", &verify(&keys[0])).await;
    assert_eq!((valid.status, valid.body.as_str()), (200, "valid"));
    for key in [keys[1].as_str(), "not-a-key"] {
        let invalid = akismet(&app, "verify-key", &verify(key)).await;
        assert_eq!(invalid.body, "invalid");
        assert!(!invalid.header("x-akismet-debug-help").is_empty());
    }
    // A check with a key that is not the portal's is refused the same way.
    let mut form = wordpress("Bài viết hay", "Lan");
    form.push(("api_key", keys[1].clone()));
    assert_eq!(akismet(&app, "comment-check", &form).await.body, "invalid");
    form.pop();
    form.push(("api_key", keys[0].clone()));
    assert_eq!(akismet(&app, "comment-check", &form).await.body, "false");
}

on_both_backends!(akismet_checks_comments_and_retries_get_the_first_answer);
async fn akismet_checks_comments_and_retries_get_the_first_answer(backend: Backend) {
    let mut config = common::test_config_on(backend);
    config.lists.blocked_words = vec!["nhà cái".into()];
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let ham = akismet(
        &app,
        "comment-check",
        &wordpress(
            "Giá xăng tăng thế này thì người lao động khổ quá.",
            "Nguyễn An",
        ),
    )
    .await;
    assert_eq!((ham.status, ham.body.as_str()), (200, "false"));
    assert_eq!(ham.header("x-moderation-outcome"), "accepted");
    let id = ham.header("x-moderation-comment-id").to_owned();
    let stored = common::stored(&app, &id).await;
    assert_eq!(stored.article_id, "https://tin.example.vn/thoi-su/gia-xang");
    assert_eq!(stored.author_name, "Nguyễn An");

    let spam_form = wordpress("Vào nhà cái uy tín nhận thưởng", "Khuyến Mãi");
    let spam = akismet(&app, "comment-check", &spam_form).await;
    assert_eq!(spam.body, "true");
    assert_eq!(spam.header("x-akismet-pro-tip"), "discard");
    assert_eq!(spam.header("x-moderation-reasons"), "BLOCKED_WORD");
    // The CMS retries the same check: the first answer, the same comment.
    let again = akismet(&app, "comment-check", &spam_form).await;
    assert_eq!(again.body, "true");
    assert_eq!(
        again.header("x-moderation-comment-id"),
        spam.header("x-moderation-comment-id")
    );

    // What Akismet requires, and what this service requires, are said precisely.
    let mut no_ip = wordpress("Bình thường", "An");
    no_ip.retain(|(k, _)| *k != "user_ip");
    let missing = akismet(&app, "comment-check", &no_ip).await;
    assert_eq!(missing.body, "Missing required field.");
    assert_eq!(
        missing.header("x-akismet-debug-help"),
        "Missing required field: user_ip."
    );
    let empty = akismet(&app, "comment-check", &wordpress("", "An")).await;
    assert_eq!((empty.status, empty.body.as_str()), (400, "invalid"));
    assert!(
        empty.header("x-akismet-debug-help").starts_with("body:"),
        "{}",
        empty.header("x-akismet-debug-help")
    );
    // A pingback has no author or e-mail address: stand-ins are used.
    let mut anonymous = wordpress("Một bài liên quan", "");
    anonymous.retain(|(k, _)| *k != "comment_author_email");
    let anonymous = akismet(&app, "comment-check", &anonymous).await;
    assert_eq!(anonymous.body, "false");
    let stored = common::stored(&app, anonymous.header("x-moderation-comment-id")).await;
    assert_eq!(stored.author_name, "anonymous");
}

on_both_backends!(akismet_feedback_decides_the_checked_comment);
async fn akismet_feedback_decides_the_checked_comment(backend: Backend) {
    let app = TestApp::spawn(common::holding_config_on(backend)).await;
    app.wait_for_health(SERVING).await;
    let spam = wordpress("Vay tiền nhanh, gọi ngay", "Tín Dụng");
    let ham = wordpress("Một ý kiến bình thường", "Bình");
    for form in [&spam, &ham] {
        let checked = akismet(&app, "comment-check", form).await;
        assert_eq!(checked.header("x-moderation-outcome"), "pending_review");
    }
    let spam_id = akismet(&app, "comment-check", &spam)
        .await
        .header("x-moderation-comment-id")
        .to_owned();
    let ham_id = akismet(&app, "comment-check", &ham)
        .await
        .header("x-moderation-comment-id")
        .to_owned();
    let told = akismet(&app, "submit-spam", &spam).await;
    assert_eq!(told.body, "Thanks for making the web a better place.");
    assert_eq!(
        told.header("x-moderation-feedback"),
        "the comment is now rejected"
    );
    let told = akismet(&app, "submit-ham", &ham).await;
    assert_eq!(
        told.header("x-moderation-feedback"),
        "the comment is now accepted"
    );
    assert_eq!(
        common::stored(&app, &spam_id).await.state(),
        pb::CommentState::Rejected
    );
    assert_eq!(
        common::stored(&app, &ham_id).await.state(),
        pb::CommentState::Accepted
    );
    // Spam that had been published is taken down; feedback on a comment never checked does
    // nothing (and says so).
    let told = akismet(&app, "submit-spam", &ham).await;
    assert_eq!(
        told.header("x-moderation-feedback"),
        "the comment is now rejected"
    );
    assert_eq!(
        common::stored(&app, &ham_id).await.state(),
        pb::CommentState::Rejected
    );
    let unseen = akismet(&app, "submit-spam", &wordpress("Chưa từng gửi", "X")).await;
    assert_eq!(unseen.body, "Thanks for making the web a better place.");
    assert_eq!(
        unseen.header("x-moderation-feedback"),
        "no comment-check of this comment is stored"
    );
}

const CORAL_SECRET: &str = "coral-phase-signing-secret";

/// A request as Coral's documentation shows it, for `body` by a commenter with `role`.
fn coral_request(body: &str, role: &str, parent: Option<&str>) -> String {
    serde_json::json!({
        "action": "NEW",
        "comment": { "body": body, "parentID": parent },
        "author": { "id": "baf4e943-3594-4fcc-b2ba-3e8de7a76352", "role": role },
        "story": { "id": "245b3856-b0a0-4d2f-a6bb-58c71f18d6a6", "url": "http://localhost:1313/posts/a-story-url/" },
        "site": { "id": "a4bede88-2d2c-4424-bc18-4322a9e285a6" },
        "tenantID": "19ba5794-7eeb-4d46-a81b-c00c61672501",
        "tenantDomain": "localhost",
    })
    .to_string()
}

async fn coral(app: &TestApp, body: &str, secret: &str) -> (u16, serde_json::Value) {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!(
        "sha256={}",
        moderation::hex::hex(&mac.finalize().into_bytes())
    );
    let answer = reqwest::Client::new()
        .post(format!("{}/coral/moderate", base(app)))
        .header("content-type", "application/json")
        .header("x-coral-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

on_both_backends!(coral_phase_answers_in_corals_shape);
async fn coral_phase_answers_in_corals_shape(backend: Backend) {
    let mut config = common::test_config_on(backend);
    config.coral.signing_secret = Some(Secret::new(CORAL_SECRET));
    config.lists.blocked_words = vec!["lô đề".into()];
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let fine = coral_request(
        "<p>Bài viết <b>rất hay</b> &amp; bổ ích</p>",
        "COMMENTER",
        None,
    );
    let (status, answer) = coral(&app, &fine, CORAL_SECRET).await;
    assert_eq!(
        (status, answer.clone()),
        (200, serde_json::json!({})),
        "published: no change"
    );
    let spam = coral_request("Soi cầu lô đề chuẩn, vào nhóm ngay", "COMMENTER", None);
    let (status, answer) = coral(&app, &spam, CORAL_SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        serde_json::json!({
            "status": "REJECTED",
            "actions": [{ "actionType": "FLAG", "reason": "COMMENT_DETECTED_SPAM" }]
        })
    );
    // Staff are not moderated; a wrong signature is refused and stores nothing.
    let staff = coral_request("Thông báo của tòa soạn", "STAFF", None);
    assert_eq!(coral(&app, &staff, CORAL_SECRET).await.0, 204);
    assert_eq!(coral(&app, &spam, "another-secret").await.0, 401);
    let (status, _) = coral(&app, "{\"action\": 1}", CORAL_SECRET).await;
    assert_eq!(status, 400);
}

on_both_backends!(coral_held_comments_are_withheld_with_their_flags);
async fn coral_held_comments_are_withheld_with_their_flags(backend: Backend) {
    let mut config = common::holding_config_on(backend);
    config.coral.signing_secret = Some(Secret::new(CORAL_SECRET));
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let (status, answer) = coral(
        &app,
        &coral_request("Ý kiến cần xem lại", "COMMENTER", None),
        CORAL_SECRET,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "SYSTEM_WITHHELD");
    assert_eq!(answer["actions"][0]["reason"], "COMMENT_DETECTED_SPAM");
    // Without a signing secret configured, nothing is accepted.
    let open = TestApp::spawn(common::test_config_on(backend)).await;
    let (status, answer) = coral(&open, &coral_request("x", "COMMENTER", None), CORAL_SECRET).await;
    assert_eq!(status, 503);
    assert!(answer["error"].as_str().unwrap().contains("signing_secret"));
}
