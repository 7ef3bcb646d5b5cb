//! A Sentinel failover under load: the primary is killed (SIGKILL) while comments arrive at a
//! fixed rate, and with `redis.min_replicas_acked = 1` every comment answered as stored is on
//! the new primary, none is stored twice, and the service answers again once the sentinels have
//! promoted a replica. The deployment (a primary, two replicas so that one can still confirm
//! writes after the failover, three sentinels) is the test's own.
//!
//! It prints what it measured: the sentinels' failover time (from the kill until they name the
//! new primary) and the longest time no submission was answered as stored. Measured in
//! BENCHMARKS.md with `FAILOVER_RATE=1000 cargo test --release --test failover -- --nocapture`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::deploy::{SentinelSet, named_primary};
use common::{TestApp, submission_from, test_config};
use moderation::proto::v1 as pb;
use pb::comment_service_client::CommentServiceClient;
use tonic::Code;

/// What a submission came to, with when it was answered.
#[derive(Default)]
struct Tally {
    /// Idempotency key → the comment ids it was answered with.
    stored: HashMap<String, HashSet<String>>,
    /// When each stored answer came (since the start).
    answered_at: Vec<Duration>,
    /// UNAVAILABLE answers (each retried).
    unavailable: usize,
    /// Keys never answered as stored within their time.
    given_up: Vec<String>,
    /// Answers neither stored nor UNAVAILABLE.
    other: Vec<String>,
}

/// Sends `key` until it is answered as stored (retrying UNAVAILABLE every 100 ms, as a portal
/// retries with the same key), for at most 20 s.
async fn send(
    mut client: CommentServiceClient<tonic::transport::Channel>,
    key: String,
    started: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    let body = format!("Ý kiến {key} về giá điện tăng từ tháng sau, mong được giải thích rõ");
    let request = submission_from(&format!("{key}@example.com"), &key, &body);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut attempt = tonic::Request::new(request.clone());
        attempt.set_timeout(Duration::from_secs(3));
        match client.submit_comment(attempt).await {
            Ok(answer) => {
                let answer = answer.into_inner();
                let mut t = tally.lock().unwrap();
                t.stored.entry(key).or_default().insert(answer.comment_id);
                t.answered_at.push(started.elapsed());
                return;
            }
            Err(status) if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                tally.lock().unwrap().unavailable += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => {
                tally
                    .lock()
                    .unwrap()
                    .other
                    .push(format!("{key}: {status:?}"));
                return;
            }
        }
    }
    tally.lock().unwrap().given_up.push(key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_loses_no_stored_comment_with_one_replica_acknowledging() {
    let rate: u64 = std::env::var("FAILOVER_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(150);
    let mut deployment = SentinelSet::start(2);
    let first_primary = deployment.primary.port;
    let mut config = test_config();
    config.redis = deployment.settings(&config.redis.prefix);
    config.redis.min_replicas_acked = 1;
    config.server.request_timeout = Duration::from_secs(2);
    let app = TestApp::spawn(config.clone()).await;
    let client = app.client.clone();

    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let total = rate * 9;
    let kill_at = rate * 3;
    let mut killed_at = None;
    let mut promotion = None;
    for n in 0..total {
        tick.tick().await;
        if n == kill_at {
            deployment.primary.kill();
            killed_at = Some(started.elapsed());
            // The sentinels' failover time, as they tell it: until they name another primary.
            let sentinels = deployment.sentinel_ports();
            promotion = Some(std::thread::spawn(move || {
                while started.elapsed() < Duration::from_secs(60) {
                    if named_primary(&sentinels).is_some_and(|p| p != first_primary) {
                        return Some(started.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                None
            }));
        }
        let key = format!("failover-{n}");
        sent.push(tokio::spawn(send(
            client.clone(),
            key,
            started,
            tally.clone(),
        )));
    }
    let killed_at = killed_at.unwrap();
    let promoted_at = promotion.unwrap().join().unwrap();
    let promoted_at = promoted_at.expect("the sentinels promoted a replica within a minute");
    for task in sent {
        task.await.unwrap();
    }

    let t = tally.lock().unwrap();
    assert!(
        t.other.is_empty(),
        "answers neither stored nor UNAVAILABLE: {:?}",
        t.other
    );
    assert!(t.given_up.is_empty(), "never stored: {:?}", t.given_up);
    assert!(
        t.unavailable > 0,
        "the kill went unnoticed: the test killed nothing"
    );
    // No key answered with two comments.
    let twice: Vec<_> = t.stored.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "keys stored twice: {twice:?}");

    // Every stored comment is on the new primary, once.
    let new_primary = deployment.primary_port().unwrap();
    assert_ne!(new_primary, first_primary);
    let node = deployment
        .replicas
        .iter()
        .find(|r| r.port == new_primary)
        .expect("a replica was promoted");
    let mut redis = node.connection();
    let prefix = &config.redis.prefix;
    let mut lost = Vec::new();
    for ids in t.stored.values() {
        for id in ids {
            let there: bool = redis::cmd("EXISTS")
                .arg(format!("{prefix}comment:{id}"))
                .query(&mut redis)
                .unwrap();
            if !there {
                lost.push(id.clone());
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} stored comments lost: {lost:?}",
        lost.len()
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}comment:*"))
        .query(&mut redis)
        .unwrap();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for key in &keys {
        let idempotency: String = redis::cmd("HGET")
            .arg(key)
            .arg("idempotency_key")
            .query(&mut redis)
            .unwrap();
        *by_key.entry(idempotency).or_default() += 1;
    }
    let duplicated: Vec<_> = by_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "comments stored twice: {duplicated:?}"
    );
    assert_eq!(by_key.len() as u64, total, "one comment per key sent");

    // The longest time without a stored answer, around the kill.
    let mut at = t.answered_at.clone();
    at.sort();
    let gap = at
        .windows(2)
        .filter(|w| w[1] > killed_at)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    println!(
        "{total} comments at {rate}/s, primary killed at {:.1} s: the sentinels named the new primary {:.2} s later; no comment was answered as stored for {:.2} s; {} UNAVAILABLE answers retried; 0 lost, 0 duplicated ({} on the new primary)",
        killed_at.as_secs_f64(),
        (promoted_at - killed_at).as_secs_f64(),
        gap.as_secs_f64(),
        t.unavailable,
        keys.len()
    );
}
