//! Campaigns over the real gRPC API, on both backends: the third reader posting a near copy
//! is held with DUPLICATE_CAMPAIGN and the earlier copies come back to the queue; a reader
//! repeating their own text is held as a repeat; a retry is no repeat; short praise repeated
//! by many readers is left alone; ops turn it off at runtime.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestApp, submission_from as from, submit, test_config_on};
use moderation::proto::v1 as pb;
use pb::moderation_service_client::ModerationServiceClient;

const TEXT: &str =
    "Mọi người nên xem kênh này, họ phân tích giá vàng và chứng khoán rất chuẩn, lãi đều mỗi ngày";

/// A config whose classifier holds nothing: what is held here is held for being a copy.
fn lenient(backend: Backend) -> moderation::config::Config {
    let mut config = test_config_on(backend);
    config.campaigns.copies = 3;
    config.decision.accept_below = Some(0.999);
    config.decision.reject_at = Some(1.0);
    config.decision.review_toxic_at = Some(1.0);
    config
}

on_both_backends!(the_third_reader_with_a_near_copy_makes_a_campaign);
async fn the_third_reader_with_a_near_copy_makes_a_campaign(backend: Backend) {
    let app = TestApp::spawn(lenient(backend)).await;
    let one = submit(&app, from("mot@example.vn", "c-1", TEXT)).await;
    let two = submit(
        &app,
        from(
            "hai@example.vn",
            "c-2",
            &format!("{} !!", TEXT.to_uppercase()),
        ),
    )
    .await;
    assert_eq!(
        (one.outcome(), two.outcome()),
        (pb::Outcome::Accepted, pb::Outcome::Accepted)
    );
    let edited = TEXT
        .replace("rất chuẩn", "cực chuẩn")
        .replace("giá vàng", "gia vang");
    let three = submit(&app, from("ba@example.vn", "c-3", &edited)).await;
    assert_eq!(
        three.outcome(),
        pb::Outcome::PendingReview,
        "{:?}",
        three.reasons
    );
    assert_eq!(three.reasons[0].code, "DUPLICATE_CAMPAIGN");
    assert!(
        three.reasons[0].message.contains("3 readers"),
        "{:?}",
        three.reasons
    );

    // The earlier copies are flagged (published still, back in the queue), once each.
    let mut moderation = ModerationServiceClient::new(app.channel().await);
    let mut flagged = Vec::new();
    for _ in 0..50 {
        flagged = flagged_items(&mut moderation).await;
        if flagged.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<&str> = flagged
        .iter()
        .map(|i| i.comment.as_ref().unwrap().id.as_str())
        .collect();
    for id in [&one.comment_id, &two.comment_id, &three.comment_id] {
        assert!(ids.contains(&id.as_str()), "{id} not in {ids:?}");
    }
    let earlier = flagged
        .iter()
        .find(|i| i.comment.as_ref().unwrap().id == one.comment_id)
        .unwrap();
    assert!(
        earlier.comment.as_ref().unwrap().published,
        "still published until rejected"
    );
    assert!(
        earlier.reports[0].contains("DUPLICATE_CAMPAIGN"),
        "{:?}",
        earlier.reports
    );

    // A fourth copy is a campaign copy too; the earlier ones are not flagged again.
    let four = submit(&app, from("bon@example.vn", "c-4", TEXT)).await;
    assert_eq!(four.reasons[0].code, "DUPLICATE_CAMPAIGN");
    assert_eq!(earlier.report_count, 1);
    let again = flagged_items(&mut moderation).await;
    let first = again
        .iter()
        .find(|i| i.comment.as_ref().unwrap().id == one.comment_id)
        .unwrap();
    assert_eq!(
        first.report_count, 1,
        "flagged once, not again by the fourth copy"
    );
}

on_both_backends!(repeats_retries_and_short_praise);
async fn repeats_retries_and_short_praise(backend: Backend) {
    let app = TestApp::spawn(lenient(backend)).await;
    let first = submit(&app, from("mot@example.vn", "r-1", TEXT)).await;
    assert_eq!(first.outcome(), pb::Outcome::Accepted);
    let retry = submit(&app, from("mot@example.vn", "r-1", TEXT)).await;
    assert!(
        retry.replayed && retry.outcome() == pb::Outcome::Accepted,
        "a retry is no repeat"
    );
    let again = submit(&app, from("mot@example.vn", "r-2", TEXT)).await;
    assert_eq!(again.outcome(), pb::Outcome::PendingReview);
    assert_eq!(again.reasons[0].code, "DUPLICATE_REPEAT");
    for k in 0..5 {
        let praise = submit(
            &app,
            from(
                &format!("ban{k}@example.vn"),
                &format!("p-{k}"),
                "Bài viết hay quá, cảm ơn!",
            ),
        )
        .await;
        assert_eq!(
            praise.outcome(),
            pb::Outcome::Accepted,
            "short praise is never a campaign"
        );
    }
}

on_both_backends!(ops_turn_campaign_detection_off_at_runtime);
async fn ops_turn_campaign_detection_off_at_runtime(backend: Backend) {
    let app = TestApp::spawn(lenient(backend)).await;
    let bad = common::update_settings(&app, &[("campaigns.copies", "1")])
        .await
        .unwrap_err();
    assert_eq!(common::violated_fields(&bad), ["campaigns.copies"]);
    common::update_settings(&app, &[("campaigns.copies", "0")])
        .await
        .unwrap();
    for k in 0..4 {
        let copy = submit(
            &app,
            from(&format!("ban{k}@example.vn"), &format!("o-{k}"), TEXT),
        )
        .await;
        assert_eq!(copy.outcome(), pb::Outcome::Accepted, "{k}");
    }
}

/// Several instances on one Redis: a copy stored by one counts in the others' windows.
#[tokio::test(flavor = "multi_thread")]
async fn instances_on_one_redis_see_each_others_copies() {
    let config = lenient(Backend::Redis);
    let first = TestApp::spawn(config.clone()).await;
    let second = TestApp::spawn(config.clone()).await;
    // Both instances listen on the channel before anything is published.
    let channel = format!("{}campaigns", config.redis.prefix);
    for _ in 0..100 {
        let (_, listening): (String, u32) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query::<Vec<(String, u32)>>(&mut first.redis())
            .unwrap()
            .remove(0);
        if listening >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let one = submit(&first, from("mot@example.vn", "m-1", TEXT)).await;
    assert_eq!(one.outcome(), pb::Outcome::Accepted);
    // The note travels on the channel while the answer comes back; give it the time a busy
    // machine may take to deliver it (it takes well under a millisecond here).
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The second instance learns it as it is stored; until then its copies count alone.
    let mut held = None;
    for k in 0..20 {
        let copy = submit(
            &second,
            from(&format!("ban{k}@example.vn"), &format!("m-2-{k}"), TEXT),
        )
        .await;
        if copy.outcome() == pb::Outcome::PendingReview {
            held = Some((k, copy));
            break;
        }
    }
    let (k, copy) = held.expect("a campaign on the second instance");
    assert_eq!(copy.reasons[0].code, "DUPLICATE_CAMPAIGN");
    assert_eq!(
        k, 1,
        "the first instance's copy counted: the second local copy made three readers"
    );
}

/// The commands clients send to a Redis (not those its scripts run), as `MONITOR` reports
/// them, until the returned flag is set.
fn monitor(url: &str) -> (Arc<Mutex<Vec<String>>>, Arc<AtomicBool>) {
    use std::io::{BufRead, Write};
    let address = url.trim_start_matches("redis://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(b"MONITOR\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (into, until) = (seen.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stream);
        let mut line = String::new();
        while !until.load(Ordering::SeqCst) {
            line.clear();
            if lines.read_line(&mut line).is_err() {
                continue;
            }
            // `+<time> [<db> <client>] "<command>" ...`; a script's commands say `lua`.
            let Some((client, command)) = line.split_once("] \"") else {
                continue;
            };
            if !client.ends_with(" lua") {
                let name = command.split('"').next().unwrap_or_default().to_lowercase();
                into.lock().unwrap().push(name);
            }
        }
    });
    (seen, stop)
}

/// With a standing set, campaigns on and a reader's history kept, a submission still costs
/// one storage round trip: the script; the standing and the near copies are looked up in
/// memory.
#[tokio::test(flavor = "multi_thread")]
async fn readers_and_campaigns_cost_a_submission_no_round_trip() {
    let redis = common::PrivateRedis::start();
    let mut config = lenient(Backend::Redis);
    config.redis.url = moderation::store::redis::RedisUrl::new(redis.url());
    let app = TestApp::spawn(config).await;
    app.wait_for_health(1).await;
    let mut readers = pb::reader_service_client::ReaderServiceClient::new(app.channel().await);
    readers
        .set_reader_standing(pb::SetReaderStandingRequest {
            email: "tin.cay@example.vn".into(),
            standing: pb::ReaderStanding::Trusted.into(),
            moderator: "minh".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // One first submission loads the script into this fresh Redis (a refused EVALSHA, then
    // SCRIPT LOAD).
    submit(&app, from("dau.tien@example.vn", "rt-first", TEXT)).await;
    let (sent, stop) = monitor(&redis.url());
    tokio::time::sleep(Duration::from_millis(200)).await;
    const N: usize = 40;
    for k in 0..N {
        // Distinct texts: a campaign's earlier copies would be flagged (more scripts, off the
        // submission's path).
        let mut rng = fastrand::Rng::with_seed(k as u64);
        let body: Vec<String> = (0..14).map(|_| format!("tu{}", rng.u32(..))).collect();
        let email = match k % 2 {
            0 => "tin.cay@example.vn".to_owned(),
            _ => format!("ban{k}@example.vn"),
        };
        submit(&app, from(&email, &format!("rt-{k}"), &body.join(" "))).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let sent = sent.lock().unwrap().clone();
    let scripts = sent.iter().filter(|c| *c == "evalsha").count();
    assert_eq!(scripts, N, "one script per submission: {sent:?}");
    // Everything else the service sent meanwhile is its background work (health probes,
    // settings polls), far fewer than one per submission.
    let others = sent.len() - scripts;
    assert!(
        others < N / 4,
        "{others} other commands for {N} submissions: {sent:?}"
    );
}

/// The first 50 flagged comments.
async fn flagged_items(
    moderation: &mut ModerationServiceClient<tonic::transport::Channel>,
) -> Vec<pb::FlaggedItem> {
    let request = pb::ListFlaggedRequest {
        page_size: 50,
        ..Default::default()
    };
    let response = moderation.list_flagged(request).await.unwrap();
    response.into_inner().items
}
