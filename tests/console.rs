//! The console in a real headless Chromium over WebDriver, against the real server on both
//! backends: moderators sign in with their keys, see the spans that held a comment marked,
//! claim and decide with the keyboard, see each other's work live; a stale decision is refused
//! and nothing is lost; CSRF and cross-origin requests are refused; a reader's markup is inert;
//! the operators' what-if gives what the decision function gives on the same comments.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{Backend, TestApp};
use fantoccini::Locator;
use moderation::auth::{KeySettings, Role};
use moderation::config::Config;
use moderation::proto::v1 as pb;
use pb::comment_service_client::CommentServiceClient;
use pb::moderation_service_client::ModerationServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const SERVING: i32 = 1;

/// The keys of the test's callers, in clear.
struct Keys {
    portal: String,
    lan: String,
    minh: String,
    hoa: String,
}

/// `config` with keys on: a portal, two moderators (lan, minh) and an operator (hoa).
fn with_keys(config: &mut Config) -> Keys {
    config.auth.enabled = true;
    let mut key = |name: &str, role: Role| {
        let clear = moderation::auth::new_key().unwrap();
        config.auth.keys.push(KeySettings {
            name: name.into(),
            roles: vec![role],
            sha256: moderation::auth::hash(&clear),
        });
        clear
    };
    Keys {
        portal: key("portal-web", Role::Portal),
        lan: key("lan", Role::Moderator),
        minh: key("minh", Role::Moderator),
        hoa: key("hoa", Role::Ops),
    }
}

type Keyed = InterceptedService<
    Channel,
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
>;

fn keyed(channel: Channel, key: &str) -> Keyed {
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    InterceptedService::new(
        channel,
        Box::new(move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", header.clone());
            Ok(r)
        }),
    )
}

async fn portal(app: &TestApp, keys: &Keys) -> CommentServiceClient<Keyed> {
    CommentServiceClient::new(keyed(app.channel().await, &keys.portal))
}

/// Submits `body` as a new comment; returns the answer.
async fn submit(
    client: &mut CommentServiceClient<Keyed>,
    key: &str,
    body: &str,
) -> pb::SubmitCommentResponse {
    let mut request = common::submission(key);
    request.body = body.into();
    client.submit_comment(request).await.unwrap().into_inner()
}

async fn state_of(app: &TestApp, keys: &Keys, id: &str) -> pb::CommentState {
    let comment = portal(app, keys)
        .await
        .get_comment(pb::GetCommentRequest {
            comment_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .comment
        .unwrap();
    comment.state()
}

fn base(app: &TestApp) -> String {
    format!("http://{}", app.console_address)
}

async fn card_text(browser: &Browser, id: &str, css: &str) -> String {
    let script = format!(
        "const e = document.querySelector('#c-{id} {css}'); return e ? e.textContent : null"
    );
    browser
        .eval(&script)
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn gone(browser: &Browser, id: &str, what: &str) {
    browser
        .wait_until(
            what,
            &format!("return document.getElementById('c-{id}') === null"),
        )
        .await;
}

on_both_backends!(moderators_work_the_queue_with_the_keyboard_and_see_each_other_live);
async fn moderators_work_the_queue_with_the_keyboard_and_see_each_other_live(backend: Backend) {
    let mut config = common::holding_config_on(backend);
    config.http.undo_window = Duration::ZERO;
    let keys = with_keys(&mut config);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut client = portal(&app, &keys).await;
    let spam = submit(
        &mut client,
        "console-1",
        "Gọi 0912345678 hoặc xem bit.ly/khuyenmai để nhận quà miễn phí",
    )
    .await;
    let second = submit(
        &mut client,
        "console-2",
        "Bài viết rất hay, cảm ơn tác giả.",
    )
    .await;
    assert_eq!(spam.outcome(), pb::Outcome::PendingReview);
    let (one, two) = (spam.comment_id.clone(), second.comment_id.clone());

    let lan = Browser::start().await;
    let minh = Browser::start().await;
    lan.sign_in(&base(&app), &keys.lan).await;
    minh.sign_in(&base(&app), &keys.minh).await;
    for b in [&lan, &minh] {
        b.wait_until("the queue shows both", &format!(
            "return !!document.getElementById('c-{one}') && !!document.getElementById('c-{two}')"
        ))
        .await;
        b.wait_until(
            "the live view is open",
            "return document.body.dataset.live === 'open'",
        )
        .await;
    }
    // The spans that held it are marked in the text, and the reasons are in plain words.
    let marks = lan
        .eval(&format!(
            "return Array.from(document.querySelectorAll('#c-{one} mark')).map(m => [m.textContent, m.className, m.title])"
        ))
        .await;
    let marks: Vec<(String, String, String)> = serde_json::from_value(marks).unwrap();
    let marked = |text: &str| marks.iter().find(|m| m.0 == text);
    let phone = marked("0912345678").unwrap_or_else(|| panic!("{marks:?}"));
    assert!(phone.1.starts_with("m-"), "{phone:?}");
    assert!(marked("bit.ly/khuyenmai").is_some(), "{marks:?}");
    // Held as spam only: the toxic head's words are not marked.
    if spam.reasons.iter().all(|r| !r.code.starts_with("TOXIC")) {
        assert!(marks.iter().all(|m| m.1 != "m-toxic"), "{marks:?}");
    }
    // What the explanation named carries its share in the title.
    assert!(
        marks
            .iter()
            .any(|m| m.1 == "m-spam" && m.2.starts_with("spam: ")),
        "{marks:?}"
    );
    let reasons = card_text(&lan, &one, ".reasons").await;
    assert!(reasons.contains("Có thể là spam"), "{reasons}");
    assert!(
        lan.eval(&format!(
            "return document.getElementById('c-{one}').classList.contains('focused')"
        ))
        .await
        .as_bool()
        .unwrap(),
        "the oldest card has the focus"
    );

    // c claims it: the lease is shown here and, live, in the other moderator's queue.
    lan.press("c").await;
    for (b, who) in [(&lan, "lan's own view"), (&minh, "minh's live view")] {
        b.wait_until(who, &format!(
            "const e = document.querySelector('#c-{one} .lease'); return !!e && e.textContent.includes('lan')"
        ))
        .await;
    }
    // a approves it: it leaves both queues, the next card has the focus.
    lan.press("a").await;
    gone(&lan, &one, "the approved card leaves lan's queue").await;
    lan.wait_until(
        "the next card has the focus",
        &format!("return document.getElementById('c-{two}').classList.contains('focused')"),
    )
    .await;
    gone(&minh, &one, "the approved card leaves minh's queue live").await;
    let round_trip = lan.eval("return window.moderation.lastRoundTrip").await;
    println!("decision round trip (keypress to next card): {round_trip} ms");
    assert!(round_trip.as_f64().is_some());

    // It reached the portal's feed, decided by lan.
    assert_eq!(
        state_of(&app, &keys, &one).await,
        pb::CommentState::Accepted
    );
    let mut feed =
        pb::feed_service_client::FeedServiceClient::new(keyed(app.channel().await, &keys.portal));
    let mut stream = feed
        .subscribe(pb::SubscribeRequest {
            group: "site".into(),
            consumer: "web-1".into(),
            visibility_seconds: 30,
        })
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the feed delivers")
        .unwrap()
        .unwrap();
    assert_eq!(event.comment_id, one);
    assert_eq!(event.kind(), pb::FeedEventKind::Published);

    // Its page shows the whole history.
    lan.client
        .goto(&format!("{}/comments/{one}", base(&app)))
        .await
        .unwrap();
    let history = lan
        .client
        .find(Locator::Css("table.history"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(history.contains("submitted"), "{history}");
    assert!(
        history.contains("approved") && history.contains("lan"),
        "{history}"
    );
    lan.close().await;
    minh.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_decision_is_refused_with_a_clear_message_and_nothing_is_lost() {
    // Two instances on one Redis: what the second does, the first's live view does not see.
    let mut config = common::holding_config_on(Backend::Redis);
    config.http.undo_window = Duration::ZERO;
    let keys = with_keys(&mut config);
    let first = TestApp::spawn(config.clone()).await;
    let second = TestApp::spawn(config).await;
    first.wait_for_health(SERVING).await;
    second.wait_for_health(SERVING).await;
    let held = submit(
        &mut portal(&first, &keys).await,
        "stale-1",
        "Ý kiến cần xem lại",
    )
    .await;
    let id = held.comment_id;
    let lan = Browser::start().await;
    lan.sign_in(&base(&first), &keys.lan).await;
    lan.wait_until(
        "the card is shown",
        &format!("return !!document.getElementById('c-{id}')"),
    )
    .await;

    // On the other instance: minh publishes it, then a reader reports it back to the queue.
    let mut minh = ModerationServiceClient::new(keyed(second.channel().await, &keys.minh));
    let page = minh
        .list_flagged(pb::ListFlaggedRequest::default())
        .await
        .unwrap()
        .into_inner();
    let version = page.items[0].version;
    minh.decide_comment(pb::DecideCommentRequest {
        comment_id: id.clone(),
        version,
        decision: pb::ModeratorDecision::Approve as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    ModerationServiceClient::new(keyed(second.channel().await, &keys.portal))
        .report_comment(pb::ReportCommentRequest {
            comment_id: id.clone(),
            reason: "Quảng cáo".into(),
            reporter: "reader-9".into(),
        })
        .await
        .unwrap();

    // lan's decision is on the old version: refused, said clearly, the card kept.
    lan.press("a").await;
    lan.wait_until("the refusal is shown", &format!(
        "const m = document.querySelector('#c-{id} .message'); return !!m && m.textContent.length > 0"
    ))
    .await;
    let message = card_text(&lan, &id, ".message").await;
    assert!(message.contains("phiên bản"), "{message}");
    assert!(message.contains("chưa được ghi"), "{message}");
    assert_eq!(
        state_of(&first, &keys, &id).await,
        pb::CommentState::PendingReview
    );
    // After a reload it is decided on what it is now.
    lan.press(".").await;
    lan.wait_until(
        "reloaded",
        &format!(
            "const c = document.getElementById('c-{id}'); return !!c && c.dataset.version === '{}'",
            version + 2
        ),
    )
    .await;
    lan.press("r").await;
    lan.wait_until(
        "the reject dialog opens",
        "return document.getElementById('reject-dialog').open",
    )
    .await;
    lan.click("#reject-dialog button[value=confirm]").await;
    gone(&lan, &id, "the rejected card leaves").await;
    assert_eq!(
        state_of(&first, &keys, &id).await,
        pb::CommentState::Rejected
    );
    lan.close().await;
}

on_both_backends!(csrf_and_other_origins_are_refused_and_a_readers_markup_is_inert);
async fn csrf_and_other_origins_are_refused_and_a_readers_markup_is_inert(backend: Backend) {
    let mut config = common::holding_config_on(backend);
    config.http.undo_window = Duration::ZERO;
    let keys = with_keys(&mut config);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let body = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> thử xem";
    let held = submit(&mut portal(&app, &keys).await, "xss-1", body).await;
    let id = held.comment_id;
    let lan = Browser::start().await;
    lan.sign_in(&base(&app), &keys.lan).await;
    lan.wait_until(
        "the card is shown",
        &format!("return !!document.getElementById('c-{id}')"),
    )
    .await;
    // The reader's markup is shown as text and runs nothing.
    assert_eq!(card_text(&lan, &id, ".body").await, body);
    assert_eq!(lan.eval("return typeof window.pwned").await, "undefined");
    assert_eq!(
        lan.eval(&format!(
            "return document.querySelectorAll('#c-{id} img, #c-{id} script').length"
        ))
        .await,
        0
    );

    // A decision without the session's CSRF token, or with another, is refused.
    let call = |token: &str| {
        format!(
            "const done = arguments[0];
             fetch('/api/decide', {{ method: 'POST', headers: {{ 'content-type': 'application/json'{token} }},
               body: JSON.stringify({{ items: [{{ id: '{id}', version: 1 }}], verdict: 'approve' }}) }})
             .then(async r => done([r.status, await r.json()]));"
        )
    };
    for token in ["", ", 'x-csrf-token': 'forged'"] {
        let answer = lan
            .client
            .execute_async(&call(token), vec![])
            .await
            .unwrap();
        assert_eq!(answer[0], 403, "{answer}");
        assert_eq!(answer[1]["error"], "CSRF", "{answer}");
    }
    // With it but at a version that is not the comment's: refused as stale, nothing decided.
    let stale =
        call(", 'x-csrf-token': document.body.dataset.csrf").replace("version: 1", "version: 99");
    let answer = lan.client.execute_async(&stale, vec![]).await.unwrap();
    assert_eq!(answer[0], 200, "{answer}");
    assert_eq!(answer[1]["results"][0]["ok"], false, "{answer}");
    assert_eq!(
        answer[1]["results"][0]["error"], "STALE_VERSION",
        "{answer}"
    );

    // The session's own cookie and token, from another origin: refused.
    let cookie = lan
        .client
        .get_named_cookie("mod_session")
        .await
        .unwrap()
        .value()
        .to_owned();
    let csrf = lan.eval("return document.body.dataset.csrf").await;
    let refused = reqwest::Client::new()
        .post(format!("{}/api/decide", base(&app)))
        .header("cookie", format!("mod_session={cookie}"))
        .header("x-csrf-token", csrf.as_str().unwrap())
        .header("origin", "http://evil.example")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"items":[{{"id":"{id}","version":1}}],"verdict":"approve"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        state_of(&app, &keys, &id).await,
        pb::CommentState::PendingReview
    );
    lan.close().await;
}

on_both_backends!(sign_in_needs_a_console_key_and_sessions_end);
async fn sign_in_needs_a_console_key_and_sessions_end(backend: Backend) {
    let mut config = common::test_config_on(backend);
    let keys = with_keys(&mut config);
    let app = TestApp::spawn(config).await;
    let http = common::console_http();
    let url = |path: &str| format!("{}{path}", base(&app));
    let sign_in = |key: String, https: bool| {
        let mut request = http
            .post(url("/signin"))
            .header("origin", base(&app))
            .form(&[("credential", key)]);
        if https {
            request = request.header("x-forwarded-proto", "https");
        }
        request.send()
    };
    for (key, says) in [
        (keys.portal.clone(), "không có quyền"),
        ("not-a-key".to_owned(), "Khóa không đúng"),
    ] {
        let refused = sign_in(key, false).await.unwrap();
        assert_eq!(refused.status(), 401);
        assert!(refused.text().await.unwrap().contains(says));
    }
    let signed = sign_in(keys.lan.clone(), false).await.unwrap();
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()["location"], "/queue");
    let csp = signed.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let set = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let over_https = sign_in(keys.hoa.clone(), true).await.unwrap();
    let ops_cookie = over_https.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ops_cookie.contains("; Secure"), "{ops_cookie}");
    assert_eq!(over_https.headers()["location"], "/ops");

    let session = set.split(';').next().unwrap().to_owned();
    let get = |path: &str, cookie: &str| http.get(url(path)).header("cookie", cookie).send();
    assert_eq!(get("/queue", &session).await.unwrap().status(), 200);
    assert_eq!(
        get("/ops", &session).await.unwrap().status(),
        403,
        "a moderator is no operator"
    );
    let ops_session = ops_cookie.split(';').next().unwrap().to_owned();
    assert_eq!(get("/queue", &ops_session).await.unwrap().status(), 403);
    assert_eq!(get("/ops", &ops_session).await.unwrap().status(), 200);
    let signed_out = get("/queue", "").await.unwrap();
    assert_eq!(signed_out.status(), 303);
    assert_eq!(signed_out.headers()["location"], "/signin");
    let api = http
        .post(url("/api/claim"))
        .header("content-type", "application/json")
        .body(r#"{"ids":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);

    // Signing out needs the token, and ends the session.
    let page = get("/queue", &session).await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&page);
    let out = |token: String| {
        http.post(url("/signout"))
            .header("cookie", &session)
            .header("origin", base(&app))
            .form(&[("csrf", token)])
            .send()
    };
    assert_eq!(out("forged".into()).await.unwrap().status(), 403);
    assert_eq!(get("/queue", &session).await.unwrap().status(), 200);
    assert_eq!(out(csrf).await.unwrap().status(), 303);
    assert_eq!(get("/queue", &session).await.unwrap().status(), 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_keys_a_name_signs_in_on_this_machine() {
    let app = TestApp::spawn(common::test_config_on(Backend::Embedded)).await;
    let browser = Browser::start().await;
    browser.sign_in(&base(&app), "lan").await;
    browser
        .wait_until("the queue", "return location.pathname === '/queue'")
        .await;
    assert_eq!(browser.eval("return document.body.dataset.me").await, "lan");
    // English on request; Vietnamese is the default.
    let title = browser
        .eval("return document.querySelector('header strong').textContent")
        .await;
    assert_eq!(title, "Kiểm duyệt bình luận");
    browser
        .client
        .goto(&format!("{}/lang/en", base(&app)))
        .await
        .unwrap();
    let title = browser
        .eval("return document.querySelector('header strong').textContent")
        .await;
    assert_eq!(title, "Comment moderation");
    browser.close().await;
}

on_both_backends!(undo_takes_a_decision_back_and_several_are_decided_at_once);
async fn undo_takes_a_decision_back_and_several_are_decided_at_once(backend: Backend) {
    let mut config = common::holding_config_on(backend);
    config.http.undo_window = Duration::from_millis(1500);
    config.review.lease = Duration::from_secs(2);
    let keys = with_keys(&mut config);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut client = portal(&app, &keys).await;
    let mut ids = Vec::new();
    for k in 0..3 {
        ids.push(
            submit(
                &mut client,
                &format!("undo-{k}"),
                &format!("Bình luận số {k}"),
            )
            .await
            .comment_id,
        );
    }
    let lan = Browser::start().await;
    lan.sign_in(&base(&app), &keys.lan).await;
    lan.wait_until(
        "the cards",
        &format!("return !!document.getElementById('c-{}')", ids[2]),
    )
    .await;
    // c claims the open card; while it stays open the claim is renewed before it lapses.
    lan.press("c").await;
    lan.wait_until(
        "claimed",
        &format!(
            "return Number(document.getElementById('c-{}').dataset.until) > 0",
            ids[0]
        ),
    )
    .await;
    let until = |compared: &str| {
        format!(
            "return Number(document.getElementById('c-{}').dataset.until) {compared}",
            ids[0]
        )
    };
    let first = lan.eval(&until("")).await.as_f64().unwrap();
    lan.wait_until("renewed", &until(&format!("> {first}")))
        .await;
    // a, then u within the window: nothing is sent.
    lan.press("a").await;
    lan.wait_until(
        "the toast",
        "return !document.getElementById('toast').hidden",
    )
    .await;
    lan.press("u").await;
    lan.wait_until(
        "the card is back",
        &format!(
            "return !document.getElementById('c-{}').classList.contains('gone')",
            ids[0]
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        state_of(&app, &keys, &ids[0]).await,
        pb::CommentState::PendingReview
    );
    // x selects the first two; r rejects both as spam with a note, sent after the window.
    lan.press("x").await;
    lan.press("j").await;
    lan.press("x").await;
    lan.press("r").await;
    lan.wait_until(
        "the dialog",
        "return document.getElementById('reject-dialog').open",
    )
    .await;
    lan.type_in("#reject-note", "quảng cáo").await;
    lan.click("#reject-dialog button[value=confirm]").await;
    for id in &ids[..2] {
        gone(&lan, id, "the rejected cards are sent and leave").await;
        assert_eq!(state_of(&app, &keys, id).await, pb::CommentState::Rejected);
    }
    assert_eq!(
        state_of(&app, &keys, &ids[2]).await,
        pb::CommentState::PendingReview
    );
    lan.close().await;
}

on_both_backends!(the_operators_what_if_is_what_the_decision_function_gives);
async fn the_operators_what_if_is_what_the_decision_function_gives(backend: Backend) {
    let mut config = common::test_config_on(backend);
    let keys = with_keys(&mut config);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut client = portal(&app, &keys).await;
    let bodies = [
        "Bài viết rất hay, cảm ơn tác giả.",
        "Nhận làm bằng đại học giá rẻ, liên hệ 0987654321 zalo",
        "Đồ ngu, cút đi",
        "Mua ngay sản phẩm khuyến mãi tại shopee.vn/sale giảm 50%",
        "Tôi không đồng ý với quan điểm này, số liệu chưa thuyết phục.",
        "Chính phủ cần có biện pháp mạnh hơn với giá xăng.",
        "Vay tiền nhanh không cần thế chấp, gọi 0901234567",
        "Thằng này ngu như bò",
        "Cảm ơn báo đã đưa tin kịp thời.",
        "Kiếm tiền online 5 triệu mỗi ngày bit.ly/kiemtien",
    ];
    let mut answers = Vec::new();
    for (k, body) in bodies.iter().enumerate() {
        answers.push(submit(&mut client, &format!("whatif-{k}"), body).await);
    }
    let hoa = Browser::start().await;
    hoa.sign_in(&base(&app), &keys.hoa).await;
    hoa.wait_until("the ops page", "return location.pathname === '/ops'")
        .await;
    let number = |id: &str| format!("return Number(document.getElementById('{id}').textContent)");
    assert_eq!(hoa.eval(&number("total")).await, bodies.len());
    // What is in force gave what the comments got.
    for (outcome, cell) in [
        (pb::Outcome::Accepted, "now-accepted"),
        (pb::Outcome::PendingReview, "now-held"),
        (pb::Outcome::Rejected, "now-rejected"),
    ] {
        let got = answers.iter().filter(|a| a.outcome() == outcome).count();
        assert_eq!(hoa.eval(&number(cell)).await, got, "{cell}");
    }
    // Typed thresholds: the what-if equals the decision function on the same scores.
    let candidate = moderation::decide::Thresholds {
        accept_below: 0.2,
        reject_at: 0.6,
        review_toxic_at: 0.3,
    };
    for (id, value) in [
        ("accept_below", candidate.accept_below),
        ("reject_at", candidate.reject_at),
        ("review_toxic_at", candidate.review_toxic_at),
    ] {
        let input = hoa.client.find(Locator::Id(id)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(&value.to_string()).await.unwrap();
    }
    hoa.wait_until("the what-if answers", "return (document.getElementById('thresholds').dataset.whatif || '').includes('review_toxic_at=0.3')")
        .await;
    let mut expected = moderation::traffic::Split::default();
    for a in &answers {
        let scores = moderation::classifier::Scores {
            spam: a.spam_score,
            toxic: a.toxic_score,
        };
        let d = moderation::decide::decide_live(
            Some(scores),
            &candidate,
            &moderation::decide::BotRules::default(),
            moderation::decide::BotSignals::default(),
            None,
            false,
        );
        match d.outcome {
            moderation::decide::Outcome::Accepted => expected.accepted += 1,
            moderation::decide::Outcome::PendingReview => expected.held += 1,
            moderation::decide::Outcome::Rejected => expected.rejected += 1,
        }
    }
    assert_eq!(
        hoa.eval(&number("whatif-accepted")).await,
        expected.accepted
    );
    assert_eq!(hoa.eval(&number("whatif-held")).await, expected.held);
    assert_eq!(
        hoa.eval(&number("whatif-rejected")).await,
        expected.rejected
    );

    // Applied: one settings update, with its note, by hoa.
    hoa.type_in("#thresholds input[name=note]", "thử ngưỡng chặt hơn")
        .await;
    hoa.click("#apply").await;
    hoa.wait_until("saved", "return location.search.includes('msg=saved')")
        .await;
    let mut admin =
        pb::admin_service_client::AdminServiceClient::new(keyed(app.channel().await, &keys.hoa));
    let audit = admin
        .list_settings_audit(pb::ListSettingsAuditRequest { limit: 1 })
        .await
        .unwrap()
        .into_inner();
    let record = &audit.records[0];
    assert_eq!(record.by, "hoa");
    assert_eq!(record.note, "thử ngưỡng chặt hơn");
    let changed: Vec<(&str, &str)> = record
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.new_value.as_str()))
        .collect();
    assert!(
        changed.contains(&("decision.accept_below", "0.2")),
        "{changed:?}"
    );
    assert!(
        changed.contains(&("decision.review_toxic_at", "0.3")),
        "{changed:?}"
    );
    // The page now shows them in force.
    let value = hoa
        .eval("return document.getElementById('reject_at').value")
        .await;
    assert_eq!(value, "0.60");
    hoa.close().await;
}

on_both_backends!(operators_change_the_lists_from_their_page);
async fn operators_change_the_lists_from_their_page(backend: Backend) {
    let mut config = common::test_config_on(backend);
    let keys = with_keys(&mut config);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let http = common::console_http();
    let url = |path: &str| format!("{}{path}", base(&app));
    let cookie = common::console_cookie(&http, &base(&app), &keys.hoa).await;
    let page = common::console_page(&http, &url("/ops"), &cookie).await;
    let field = |name: &str| {
        page.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned()
    };
    let (csrf, version) = (field("csrf"), field("version"));
    let post = |path: &str, form: Vec<(&str, String)>| {
        http.post(url(path))
            .header("cookie", &cookie)
            .header("origin", base(&app))
            .form(&form)
            .send()
    };
    let saved = post(
        "/ops/lists",
        vec![
            ("csrf", csrf.clone()),
            ("version", version.clone()),
            ("blocked_words", "nhà cái\nlô đề".into()),
            ("note", "chặn cờ bạc".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(saved.status(), 303);
    assert!(
        saved.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ops?msg=saved")
    );
    let answer = submit(
        &mut portal(&app, &keys).await,
        "lists-1",
        "Vào nhà cái uy tín nhất",
    )
    .await;
    assert_eq!(answer.outcome(), pb::Outcome::Rejected);
    assert_eq!(answer.reasons[0].code, "BLOCKED_WORD");
    // The same form again, at the version it was read: someone changed them since.
    let stale = post(
        "/ops/lists",
        vec![
            ("csrf", csrf.clone()),
            ("version", version),
            ("blocked_words", "x".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(stale.status(), 409);
    assert!(stale.text().await.unwrap().contains("người khác đổi"));
    // No earlier model to roll back to: said, not failed.
    let rollback = post(
        "/ops/models/rollback",
        vec![("csrf", csrf), ("version", "0".into())],
    )
    .await
    .unwrap();
    assert_eq!(rollback.status(), 409);
    assert!(rollback.text().await.unwrap().contains("no earlier model"));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_down_the_console_and_akismet_say_so_within_the_deadline() {
    let mut redis = common::PrivateRedis::start();
    let mut config = common::holding_config_on(Backend::Redis);
    config.redis.url = moderation::store::redis::RedisUrl::new(redis.url());
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let held = common::hold(&app, common::submission("down-1")).await;
    let http = common::console_http();
    let cookie = common::console_cookie(&http, &base(&app), "lan").await;
    redis.stop();

    let page = common::console_page(&http, &format!("{}/queue", base(&app)), &cookie).await;
    assert!(
        page.contains("role=\"alert\""),
        "the queue says storage failed: {page}"
    );
    assert!(page.contains("storage"), "{page}");
    let decided: serde_json::Value = http
        .post(format!("{}/api/decide", base(&app)))
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf_of(&page))
        .json(&serde_json::json!({ "items": [{ "id": held, "version": 1 }], "verdict": "approve" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(decided["results"][0]["ok"], false, "{decided}");
    assert_eq!(decided["results"][0]["error"], "UNAVAILABLE", "{decided}");
    assert!(
        decided["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("chưa được ghi"),
        "{decided}"
    );
    // Each call above and below is answered, not left hanging: the client gives up after
    // 10 s (common::console_http), far past the service's 1 s deadline.
    let check = http
        .post(format!("{}/1.1/comment-check", base(&app)))
        .form(&[
            ("blog", "https://tin.example.vn"),
            ("user_ip", "203.0.113.9"),
            ("comment_author", "An"),
            ("comment_author_email", "an@example.com"),
            ("comment_content", "Bình luận khi kho dữ liệu hỏng"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 503);
    assert_eq!(check.text().await.unwrap(), "unavailable");
}

/// The CSRF token a console page carries.
fn csrf_of(page: &str) -> String {
    page.split("data-csrf=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

on_both_backends!(a_moderator_bans_a_reader_from_their_panel_and_all_they_wrote_goes);
async fn a_moderator_bans_a_reader_from_their_panel_and_all_they_wrote_goes(backend: Backend) {
    let config = common::test_config_on(backend);
    let mut config = config;
    let keys = with_keys(&mut config);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut client = portal(&app, &keys).await;
    let published = submit(&mut client, "panel-1", "Bài viết rất hay, cảm ơn tác giả.").await;
    assert_eq!(published.outcome(), pb::Outcome::Accepted);
    let held = submit(
        &mut client,
        "panel-2",
        "Gọi 0912345678 hoặc xem bit.ly/khuyenmai để nhận quà miễn phí",
    )
    .await;
    assert_ne!(held.outcome(), pb::Outcome::Accepted);

    let lan = Browser::start().await;
    lan.sign_in(&base(&app), &keys.lan).await;
    lan.client
        .goto(&format!("{}/comments/{}", base(&app), published.comment_id))
        .await
        .unwrap();
    lan.click("a.reader").await;
    lan.wait_until(
        "the reader's panel",
        "return !!document.getElementById('standing-form')",
    )
    .await;
    let standing = lan
        .eval("return document.getElementById('standing').textContent")
        .await;
    assert_eq!(standing, "Bình thường");
    let record = lan
        .eval("return document.getElementById('record').textContent")
        .await;
    assert!(
        record.as_str().unwrap().starts_with("1 đã đăng"),
        "{record}"
    );
    lan.eval("document.querySelector('select[name=standing]').value = 'banned'")
        .await;
    lan.type_in("input[name=reason]", "quảng cáo lừa đảo").await;
    lan.click("input[name=reject_all]").await;
    lan.click("#standing-form button[type=submit]").await;
    lan.wait_until(
        "the ban is done",
        "return !!document.querySelector('p.notice')",
    )
    .await;
    let standing = lan
        .eval("return document.getElementById('standing').textContent")
        .await;
    assert_eq!(standing, "Cấm bình luận");
    let notice = lan
        .eval("return document.querySelector('p.notice').textContent")
        .await;
    let notice = notice.as_str().unwrap().to_owned();
    let swept_held = usize::from(held.outcome() == pb::Outcome::PendingReview);
    assert!(
        notice.contains(&format!("{swept_held} bị từ chối")) && notice.contains("1 bị gỡ"),
        "{notice}"
    );
    lan.close().await;
    assert_eq!(
        state_of(&app, &keys, &published.comment_id).await,
        pb::CommentState::Rejected
    );
    let refused = client
        .submit_comment(pb::SubmitCommentRequest {
            idempotency_key: "panel-3".into(),
            ..common::submission("panel-3")
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}
