//! CAPTCHAs against real Redis and the real server: image challenges (right, wrong, expired,
//! reused by two concurrent submissions, unknown, guessing throttled), proof of work (right,
//! wrong, replayed, expired, tampered), each hosted provider's answers from a local server that
//! speaks its siteverify protocol, and the bot checks that need no CAPTCHA.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestApp, submission, test_config_on};
use moderation::captcha::provider::ProviderSettings;
use moderation::captcha::{Mode, pow};
use moderation::config::Config;
use moderation::proto::v1 as pb;
use moderation::secret::Secret;
use redis::Commands;
use tonic::Code;
use tonic_types::StatusExt;

fn captcha_config(backend: Backend, mode: Mode) -> Config {
    let mut config = test_config_on(backend);
    config.captcha.mode = mode;
    config.captcha.secret = Some(Secret::new("test secret"));
    config.captcha.pow_max_number = 5_000;
    config
}

fn with_image(key: &str, challenge_id: &str, answer: &str) -> pb::SubmitCommentRequest {
    let mut request = submission(key);
    request.captcha = Some(pb::CaptchaAnswer {
        answer: Some(pb::captcha_answer::Answer::Image(pb::ImageCaptchaAnswer {
            challenge_id: challenge_id.into(),
            answer: answer.into(),
        })),
    });
    request
}

fn with_pow(key: &str, token: &str, solution: u64) -> pb::SubmitCommentRequest {
    let mut request = submission(key);
    request.captcha = Some(pb::CaptchaAnswer {
        answer: Some(pb::captcha_answer::Answer::ProofOfWork(
            pb::ProofOfWorkAnswer {
                challenge: token.into(),
                solution,
            },
        )),
    });
    request
}

fn with_token(key: &str, token: &str) -> pb::SubmitCommentRequest {
    let mut request = submission(key);
    request.captcha = Some(pb::CaptchaAnswer {
        answer: Some(pb::captcha_answer::Answer::Provider(
            pb::ProviderCaptchaAnswer {
                token: token.into(),
            },
        )),
    });
    request
}

/// The ErrorInfo reason of a FAILED_PRECONDITION refusal.
fn refusal(status: &tonic::Status) -> String {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    status.get_details_error_info().expect("ErrorInfo").reason
}

fn accepted_count(app: &TestApp) -> usize {
    common::stream(app, "accepted").len()
}

#[tokio::test]
async fn issue_captcha_returns_a_readable_png_stored_only_as_a_keyed_hash() {
    let app = TestApp::spawn(captcha_config(Backend::Redis, Mode::Image)).await;
    let response = app
        .client
        .clone()
        .issue_captcha(pb::IssueCaptchaRequest {
            article_id: "a-1".into(),
            kind: pb::CaptchaKind::Unspecified.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.kind(), pb::CaptchaKind::Image);
    let Some(pb::issue_captcha_response::Challenge::Image(image)) = response.challenge else {
        panic!("an image challenge");
    };
    assert_eq!(&image.png[1..4], b"PNG");
    assert_eq!((image.width, image.height), (240, 90));
    let expires = response.expires_at.unwrap().seconds;
    let now = jiff::Timestamp::now().as_second();
    assert!(
        (now + 280..=now + 301).contains(&expires),
        "five minutes: {}",
        expires - now
    );
    // Redis holds a hash of the answer with the challenge's time to live, nothing readable.
    let nonce = image.challenge_id.split('.').nth(1).unwrap();
    let stored: HashMap<String, String> = app
        .redis()
        .hgetall(app.key(&format!("captcha:{nonce}")))
        .unwrap();
    assert_eq!(stored["answer"].len(), 64);
    let ttl: i64 = app
        .redis()
        .pttl(app.key(&format!("captcha:{nonce}")))
        .unwrap();
    assert!(ttl > 290_000 && ttl <= 300_000, "{ttl}");
    // No challenge is needed where the mode is off.
    let mut config = captcha_config(Backend::Redis, Mode::Off);
    config
        .captcha
        .articles
        .insert("guarded".into(), Mode::Image);
    let app = TestApp::spawn(config).await;
    let none = app
        .client
        .clone()
        .issue_captcha(pb::IssueCaptchaRequest {
            article_id: "open".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.kind(), pb::CaptchaKind::None);
}

on_both_backends!(a_right_image_answer_is_accepted_in_any_case_and_a_wrong_one_refused);
async fn a_right_image_answer_is_accepted_in_any_case_and_a_wrong_one_refused(backend: Backend) {
    let app = TestApp::spawn(captcha_config(backend, Mode::Image)).await;
    let images = app.captchas.images().unwrap();
    let mut client = app.client.clone();

    let challenge = images.store("K7WXRA", Vec::new()).await.unwrap();
    client
        .submit_comment(with_image("img-1", &challenge.id, " k7wxra "))
        .await
        .expect("the right answer, in lower case and with spaces, passes");

    let challenge = images.store("K7WXRA", Vec::new()).await.unwrap();
    let status = client
        .submit_comment(with_image("img-2", &challenge.id, "K7WXRB"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_WRONG");
    // A wrong answer spends the challenge: the right one afterwards is too late.
    let status = client
        .submit_comment(with_image("img-3", &challenge.id, "K7WXRA"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_USED");

    let status = client
        .submit_comment(submission("img-4"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_MISSING");
    let status = client
        .submit_comment(with_image(
            "img-5",
            "1a.00112233445566778899aabbccddeeff.bad",
            "X",
        ))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_UNKNOWN");
    // Where the image is required, a proof of work is the wrong kind (the alternative is off).
    let status = client
        .submit_comment(with_pow("img-6", "not:a:token:here", 1))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_WRONG_KIND");
    assert_eq!(
        accepted_count(&app),
        1,
        "nothing is stored for a refused submission"
    );
}

on_both_backends!(a_wrong_answer_spends_the_challenge_even_for_a_retry_of_the_same_submission);
async fn a_wrong_answer_spends_the_challenge_even_for_a_retry_of_the_same_submission(
    backend: Backend,
) {
    let app = TestApp::spawn(captcha_config(backend, Mode::Image)).await;
    let images = app.captchas.images().unwrap();
    let mut client = app.client.clone();
    let challenge = images.store("K7WXRA", Vec::new()).await.unwrap();
    let status = client
        .submit_comment(with_image("retry-1", &challenge.id, "WRONG7"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_WRONG");
    // The portal retries with the same idempotency key and, now, the right answer.
    let status = client
        .submit_comment(with_image("retry-1", &challenge.id, "K7WXRA"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_USED");
    assert_eq!(accepted_count(&app), 0);
}

on_both_backends!(wrong_answers_count_by_the_addresss_network_as_rate_limits_do);
async fn wrong_answers_count_by_the_addresss_network_as_rate_limits_do(backend: Backend) {
    let mut config = captcha_config(backend, Mode::Image);
    config.captcha.wrong_answers_per_ip = 2;
    let app = TestApp::spawn(config).await;
    let images = app.captchas.images().unwrap();
    let mut client = app.client.clone();
    // Three addresses of one IPv6 /64: one subscriber guessing.
    for (k, ip) in ["2001:db8:7:7::1", "2001:db8:7:7::2"]
        .into_iter()
        .enumerate()
    {
        let challenge = images.store("K7WXRA", Vec::new()).await.unwrap();
        let mut guess = with_image(&format!("net-{k}"), &challenge.id, "WRONG7");
        guess.client_ip = ip.into();
        assert_eq!(
            refusal(&client.submit_comment(guess).await.unwrap_err()),
            "CAPTCHA_WRONG"
        );
    }
    let challenge = images.store("K7WXRA", Vec::new()).await.unwrap();
    let mut third = with_image("net-3", &challenge.id, "K7WXRA");
    third.client_ip = "2001:db8:7:7:ffff::3".into();
    let throttled = client.submit_comment(third).await.unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    assert_eq!(
        throttled.get_details_error_info().unwrap().reason,
        "CAPTCHA_THROTTLED"
    );
    // The next /64 is someone else.
    let mut other = with_image("net-4", &challenge.id, "K7WXRA");
    other.client_ip = "2001:db8:7:8::3".into();
    client
        .submit_comment(other)
        .await
        .expect("another network answers");
}

on_both_backends!(an_expired_image_challenge_is_refused_as_expired);
async fn an_expired_image_challenge_is_refused_as_expired(backend: Backend) {
    let mut config = captcha_config(backend, Mode::Image);
    config.captcha.ttl = Duration::from_millis(300);
    let app = TestApp::spawn(config).await;
    let challenge = app
        .captchas
        .images()
        .unwrap()
        .store("A3C4D6", Vec::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let status = app
        .client
        .clone()
        .submit_comment(with_image("exp-1", &challenge.id, "A3C4D6"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_EXPIRED");
}

on_both_backends!(two_concurrent_submissions_with_one_answer_let_exactly_one_through);
async fn two_concurrent_submissions_with_one_answer_let_exactly_one_through(backend: Backend) {
    let app = TestApp::spawn(captcha_config(backend, Mode::Image)).await;
    let challenge = app
        .captchas
        .images()
        .unwrap()
        .store("XY79TU", Vec::new())
        .await
        .unwrap();
    let calls: Vec<_> = (0..2)
        .map(|n| {
            let mut client = app.client.clone();
            let request = with_image(&format!("race-{n}"), &challenge.id, "XY79TU");
            tokio::spawn(async move { client.submit_comment(request).await })
        })
        .collect();
    let mut passed = 0;
    let mut used = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => passed += 1,
            Err(status) => {
                assert_eq!(refusal(&status), "CAPTCHA_USED");
                used += 1;
            }
        }
    }
    assert_eq!((passed, used), (1, 1));
    // A retry of the submission that passed is answered as before (idempotent), not "used".
    assert_eq!(accepted_count(&app), 1);
}

on_both_backends!(guessing_image_answers_from_one_address_is_throttled);
async fn guessing_image_answers_from_one_address_is_throttled(backend: Backend) {
    let mut config = captcha_config(backend, Mode::Image);
    config.captcha.wrong_answers_per_ip = 2;
    let app = TestApp::spawn(config).await;
    let images = app.captchas.images().unwrap();
    let mut client = app.client.clone();
    for n in 0..2 {
        let challenge = images.store("HJKMNP", Vec::new()).await.unwrap();
        let status = client
            .submit_comment(with_image(&format!("guess-{n}"), &challenge.id, "WRONG1"))
            .await
            .unwrap_err();
        assert_eq!(refusal(&status), "CAPTCHA_WRONG");
    }
    let challenge = images.store("HJKMNP", Vec::new()).await.unwrap();
    let status = client
        .submit_comment(with_image("guess-3", &challenge.id, "HJKMNP"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "CAPTCHA_THROTTLED"
    );
    let wait = status
        .get_details_retry_info()
        .unwrap()
        .retry_delay
        .unwrap();
    assert!(
        wait > Duration::from_secs(500) && wait <= Duration::from_secs(600),
        "{wait:?}"
    );
    // Another address is not held back.
    let challenge = images.store("HJKMNP", Vec::new()).await.unwrap();
    let mut elsewhere = with_image("guess-4", &challenge.id, "HJKMNP");
    elsewhere.client_ip = "198.51.100.20".into();
    client
        .submit_comment(elsewhere)
        .await
        .expect("another address answers");
}

async fn issue_pow(app: &TestApp, kind: pb::CaptchaKind) -> pb::ProofOfWorkChallenge {
    let response = app
        .client
        .clone()
        .issue_captcha(pb::IssueCaptchaRequest {
            article_id: "a-1".into(),
            kind: kind.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.kind(), pb::CaptchaKind::ProofOfWork);
    match response.challenge {
        Some(pb::issue_captcha_response::Challenge::ProofOfWork(p)) => p,
        other => panic!("a proof-of-work challenge, got {other:?}"),
    }
}

fn solve(c: &pb::ProofOfWorkChallenge) -> u64 {
    pow::solve(&pow::PowChallenge {
        algorithm: c.algorithm.clone(),
        challenge: c.challenge.clone(),
        salt: c.salt.clone(),
        max_number: c.max_number,
        signature: c.signature.clone(),
        token: c.token.clone(),
        expires_at_ms: 0,
    })
    .expect("the challenge has a solution")
}

on_both_backends!(proof_of_work_right_wrong_replayed_expired_and_tampered);
async fn proof_of_work_right_wrong_replayed_expired_and_tampered(backend: Backend) {
    let app = TestApp::spawn(captcha_config(backend, Mode::ProofOfWork)).await;
    let mut client = app.client.clone();
    let challenge = issue_pow(&app, pb::CaptchaKind::Unspecified).await;
    assert_eq!(challenge.algorithm, "SHA-256");
    let n = solve(&challenge);
    client
        .submit_comment(with_pow("pow-1", &challenge.token, n))
        .await
        .expect("the solution passes");
    // The same solution for another submission is a replay.
    let status = client
        .submit_comment(with_pow("pow-2", &challenge.token, n))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_USED");

    let challenge = issue_pow(&app, pb::CaptchaKind::ProofOfWork).await;
    let n = solve(&challenge);
    let status = client
        .submit_comment(with_pow("pow-3", &challenge.token, n + 1))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_WRONG");

    // A tampered token (an easier target) breaks the signature.
    let mut parts: Vec<&str> = challenge.token.split(':').collect();
    let easy = pow::hash(parts[0], 1);
    parts[1] = &easy;
    let status = client
        .submit_comment(with_pow("pow-4", &parts.join(":"), 1))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_UNKNOWN");

    let mut config = captcha_config(backend, Mode::ProofOfWork);
    config.captcha.ttl = Duration::from_secs(1);
    let short = TestApp::spawn(config).await;
    let challenge = issue_pow(&short, pb::CaptchaKind::Unspecified).await;
    let n = solve(&challenge);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = short
        .client
        .clone()
        .submit_comment(with_pow("pow-5", &challenge.token, n))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_EXPIRED");
}

on_both_backends!(proof_of_work_stands_in_for_the_image_only_when_allowed_and_harder);
async fn proof_of_work_stands_in_for_the_image_only_when_allowed_and_harder(backend: Backend) {
    // Off by default: neither issued nor accepted where the image is required.
    let app = TestApp::spawn(captcha_config(backend, Mode::Image)).await;
    let status = app
        .client
        .clone()
        .issue_captcha(pb::IssueCaptchaRequest {
            article_id: "a-1".into(),
            kind: pb::CaptchaKind::ProofOfWork.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_WRONG_KIND");
    // Asking for a provider where the image is required is refused too.
    let status = app
        .client
        .clone()
        .issue_captcha(pb::IssueCaptchaRequest {
            article_id: "a-1".into(),
            kind: pb::CaptchaKind::Turnstile.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_WRONG_KIND");
    drop(app);

    let mut config = captcha_config(backend, Mode::Image);
    config.captcha.image_alternative = true;
    config.captcha.image_alternative_max_number = 50_000;
    // An article where proof of work is the CAPTCHA: its (easier) challenges must not stand in
    // for the image elsewhere.
    config
        .captcha
        .articles
        .insert("pow-article".into(), Mode::ProofOfWork);
    let app = TestApp::spawn(config).await;
    let challenge = issue_pow(&app, pb::CaptchaKind::ProofOfWork).await;
    assert_eq!(
        challenge.max_number, 50_000,
        "the alternative's work factor"
    );
    let n = solve(&challenge);
    app.client
        .clone()
        .submit_comment(with_pow("alt-1", &challenge.token, n))
        .await
        .expect("the alternative passes where the image is required");
    let easy = app
        .client
        .clone()
        .issue_captcha(pb::IssueCaptchaRequest {
            article_id: "pow-article".into(),
            kind: pb::CaptchaKind::Unspecified.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::issue_captcha_response::Challenge::ProofOfWork(easy)) = easy.challenge else {
        panic!("a proof of work for the proof-of-work article");
    };
    assert_eq!(easy.max_number, 5_000);
    let status = app
        .client
        .clone()
        .submit_comment(with_pow("alt-2", &easy.token, solve(&easy)))
        .await
        .unwrap_err();
    assert_eq!(refusal(&status), "CAPTCHA_UNKNOWN");
}

/// What the fake provider saw of one siteverify request.
#[derive(Clone, Debug, Default)]
struct Seen {
    form: HashMap<String, String>,
}

/// A local server speaking the siteverify protocol: the token says how to answer.
async fn fake_provider(seen: Arc<Mutex<Vec<Seen>>>) -> String {
    use axum::Form;
    use axum::routing::post;
    let used = Arc::new(Mutex::new(HashMap::<String, String>::new()));
    let app = axum::Router::new().route(
        "/siteverify",
        post(move |Form(form): Form<HashMap<String, String>>| {
            let seen = seen.clone();
            let used = used.clone();
            async move {
                seen.lock().unwrap().push(Seen { form: form.clone() });
                let token = form.get("response").cloned().unwrap_or_default();
                let ok = |host: &str, action: &str, score: f32| {
                    serde_json::json!({"success": true, "hostname": host, "action": action,
                        "score": score, "challenge_ts": "2026-11-27T00:00:00Z"})
                };
                let fail =
                    |code: &str| serde_json::json!({"success": false, "error-codes": [code]});
                let answer = match token.as_str() {
                    "good" => ok("tin.example.vn", "comment", 0.9),
                    "low" => ok("tin.example.vn", "comment", 0.1),
                    "elsewhere" => ok("evil.example", "comment", 0.9),
                    "login" => ok("tin.example.vn", "login", 0.9),
                    "bad" => fail("invalid-input-response"),
                    "dup" => fail("timeout-or-duplicate"),
                    "secret" => fail("invalid-input-secret"),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        ok("tin.example.vn", "comment", 0.9)
                    }
                    // Turnstile's idempotency: the first key to use a token owns it.
                    "once" => {
                        let key = form.get("idempotency_key").cloned().unwrap_or_default();
                        let mut used = used.lock().unwrap();
                        match used.get("once") {
                            Some(owner) if *owner != key => fail("timeout-or-duplicate"),
                            _ => {
                                used.insert("once".into(), key);
                                ok("tin.example.vn", "comment", 0.9)
                            }
                        }
                    }
                    _ => fail("invalid-input-response"),
                };
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/siteverify")
}

fn provider(url: &str) -> ProviderSettings {
    ProviderSettings {
        secret: Secret::new("provider secret"),
        site_key: "site-key-1".into(),
        verify_url: Some(url.into()),
        hostnames: vec!["tin.example.vn".into()],
        action: Some("comment".into()),
        min_score: 0.5,
    }
}

on_both_backends!(each_hosted_provider_answer_gets_its_verdict);
async fn each_hosted_provider_answer_gets_its_verdict(backend: Backend) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = fake_provider(seen.clone()).await;
    for mode in [
        Mode::Turnstile,
        Mode::Hcaptcha,
        Mode::RecaptchaV2,
        Mode::RecaptchaV3,
    ] {
        let mut config = test_config_on(backend);
        config.captcha.mode = mode;
        config.captcha.provider_timeout = Duration::from_millis(500);
        config.captcha.turnstile = Some(provider(&url));
        config.captcha.hcaptcha = Some(provider(&url));
        config.captcha.recaptcha = Some(provider(&url));
        let app = TestApp::spawn(config).await;
        let mut client = app.client.clone();
        let issued = client
            .issue_captcha(pb::IssueCaptchaRequest {
                article_id: "a".into(),
                kind: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(issued.kind(), pb::CaptchaKind::from(mode));
        let Some(pb::issue_captcha_response::Challenge::Provider(p)) = issued.challenge else {
            panic!("a provider challenge")
        };
        assert_eq!(p.site_key, "site-key-1");

        client
            .submit_comment(with_token(&format!("{mode:?}-good"), "good"))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:?}"));
        let expect = |token: &str, reason: &str| (token.to_owned(), reason.to_owned());
        let mut cases = vec![
            expect("bad", "CAPTCHA_WRONG"),
            expect("dup", "CAPTCHA_USED"),
            expect("elsewhere", "CAPTCHA_WRONG_HOSTNAME"),
        ];
        if matches!(mode, Mode::Turnstile | Mode::RecaptchaV3) {
            cases.push(expect("login", "CAPTCHA_WRONG_ACTION"));
        }
        if mode == Mode::RecaptchaV3 {
            cases.push(expect("low", "CAPTCHA_LOW_SCORE"));
        }
        for (token, reason) in cases {
            let status = client
                .submit_comment(with_token(&format!("{mode:?}-{token}"), &token))
                .await
                .unwrap_err();
            assert_eq!(refusal(&status), reason, "{mode:?} {token}");
        }
        // The provider misconfigured or too slow: not the reader's fault, retry later.
        for token in ["secret", "slow"] {
            let mut request = tonic::Request::new(with_token(&format!("{mode:?}-{token}"), token));
            request.set_timeout(Duration::from_secs(5));
            let status = client.submit_comment(request).await.unwrap_err();
            assert_eq!(
                status.code(),
                Code::Unavailable,
                "{mode:?} {token}: {status:?}"
            );
        }
        let status = client
            .submit_comment(with_token(&format!("{mode:?}-empty"), " "))
            .await
            .unwrap_err();
        assert_eq!(refusal(&status), "CAPTCHA_MISSING");
    }
    let seen = seen.lock().unwrap();
    let good: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.form["response"] == "good")
        .collect();
    assert_eq!(good.len(), 4);
    assert!(good.iter().all(|s| s.form["secret"] == "provider secret"));
    assert!(good.iter().all(|s| s.form["remoteip"] == "203.0.113.7"));
    assert!(
        good.iter().any(|s| s.form.contains_key("sitekey")),
        "hCaptcha gets the site key"
    );
    assert_eq!(
        good.iter()
            .filter(|s| s.form.contains_key("idempotency_key"))
            .count(),
        1,
        "only Turnstile takes an idempotency key"
    );
}

#[tokio::test]
async fn turnstile_idempotency_keys_let_a_retried_submission_reuse_its_token() {
    let url = fake_provider(Arc::new(Mutex::new(Vec::new()))).await;
    let mut settings = moderation::captcha::CaptchaSettings {
        mode: Mode::Turnstile,
        ..Default::default()
    };
    settings.turnstile = Some(provider(&url));
    let providers = moderation::captcha::provider::Providers::new(&settings);
    let wait = Duration::from_secs(1);
    let ip = "203.0.113.9";
    providers
        .verify(Mode::Turnstile, "once", ip, "submission-1", wait)
        .await
        .unwrap();
    providers
        .verify(Mode::Turnstile, "once", ip, "submission-1", wait)
        .await
        .expect("the same submission again: Turnstile answers from its memory");
    assert_eq!(
        providers
            .verify(Mode::Turnstile, "once", ip, "submission-2", wait)
            .await,
        Err(moderation::captcha::CaptchaError::Used)
    );
}

on_both_backends!(a_filled_honeypot_is_rejected_and_a_too_fast_form_held_with_their_reasons);
async fn a_filled_honeypot_is_rejected_and_a_too_fast_form_held_with_their_reasons(
    backend: Backend,
) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let mut client = app.client.clone();
    let mut bot = submission("bot-1");
    bot.honeypot = "http://spam.example".into();
    let answer = client.submit_comment(bot).await.unwrap().into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::Rejected);
    assert_eq!(answer.reasons[0].code, "BOT_HONEYPOT");

    let now = jiff::Timestamp::now();
    let mut quick = submission("bot-2");
    quick.form_rendered_at = Some(prost_types::Timestamp {
        seconds: now.as_second(),
        nanos: 0,
    });
    let answer = client.submit_comment(quick).await.unwrap().into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::PendingReview);
    assert_eq!(answer.reasons[0].code, "BOT_TOO_FAST");
    assert!(answer.reasons[0].message.contains("after it was shown"));

    let mut person = submission("bot-3");
    person.form_rendered_at = Some(prost_types::Timestamp {
        seconds: now.as_second() - 40,
        nanos: 0,
    });
    let answer = client.submit_comment(person).await.unwrap().into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::Accepted);
}
