//! Three instances of the service on one Redis deployment reached through Sentinel, and on a
//! Redis Cluster: they admit one quota between them, a CAPTCHA answer passes once whichever
//! instance sees it, and a settings update made on one is in force on the others. The
//! deployments are the tests' own, on free loopback ports (see `common::deploy`).

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, submission, test_config};
use moderation::captcha::Mode;
use moderation::config::Config;
use moderation::proto::v1 as pb;
use moderation::rate_limit::{Buckets, Quota, RateLimitSettings};
use moderation::secret::Secret;
use moderation::store::redis::RedisSettings;
use pb::admin_service_client::AdminServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

/// Every instance's configuration on `redis`: image CAPTCHAs, and an address may send a burst
/// of 5 and then one a minute.
fn config_on(redis: impl Fn(&str) -> RedisSettings) -> Config {
    let mut config = test_config();
    config.redis = redis(&config.redis.prefix);
    // Updates reach the other instances by the deployment's pub/sub, not by re-reading.
    config.runtime.refresh = Duration::from_secs(600);
    config.captcha.mode = Mode::Image;
    config.captcha.secret = Some(Secret::new("shared secret"));
    config.rate_limit = RateLimitSettings {
        enabled: true,
        buckets: Buckets {
            ip: Some(Quota {
                rate: 1,
                per: Duration::from_secs(60),
                burst: 5,
                shadow: false,
            }),
            ..Buckets::default()
        },
        ..RateLimitSettings::default()
    };
    config
}

/// `submission(key)` from `ip`, answering the image challenge `id` with `answer`.
fn answered(key: &str, ip: &str, id: &str, answer: &str) -> pb::SubmitCommentRequest {
    let mut request = submission(key);
    request.client_ip = ip.into();
    request.captcha = Some(pb::CaptchaAnswer {
        answer: Some(pb::captcha_answer::Answer::Image(pb::ImageCaptchaAnswer {
            challenge_id: id.into(),
            answer: answer.into(),
        })),
    });
    request
}

async fn challenge(app: &TestApp, answer: &str) -> String {
    let images = app.captchas.images().expect("image CAPTCHAs are on");
    images.store(answer, Vec::new()).await.unwrap().id
}

async fn three_instances_share_quotas_captchas_and_settings(config: Config) {
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(TestApp::spawn(config.clone()).await);
    }

    // A challenge issued by one instance passes once: the two others race for it.
    let id = challenge(&apps[0], "KM42PQ").await;
    let racing: Vec<_> = apps[1..]
        .iter()
        .enumerate()
        .map(|(n, app)| {
            let mut client = app.client.clone();
            let request = answered(&format!("race-{n}"), "203.0.113.7", &id, "KM42PQ");
            tokio::spawn(async move { client.submit_comment(request).await })
        })
        .collect();
    let mut reasons = Vec::new();
    for call in racing {
        match call.await.unwrap() {
            Ok(_) => reasons.push("PASSED".to_owned()),
            Err(status) => reasons.push(status.get_details_error_info().unwrap().reason),
        }
    }
    reasons.sort();
    assert_eq!(reasons, ["CAPTCHA_USED", "PASSED"]);

    // One address's quota, spent round robin over the three: the burst of 5, not 15.
    let mut admitted = 0;
    let mut refused = 0;
    for n in 0..9 {
        let app = &apps[n % 3];
        let id = challenge(app, "QUOTA7").await;
        let request = answered(&format!("quota-{n}"), "198.51.100.20", &id, "QUOTA7");
        match app.client.clone().submit_comment(request).await {
            Ok(_) => admitted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((admitted, refused), (5, 4));

    // A settings update made on one instance is in force on the others.
    let updated = common::update_settings(&apps[2], &[("decision.reject_at", "0.97")])
        .await
        .unwrap();
    for app in &apps[..2] {
        let mut admin = AdminServiceClient::new(app.channel().await);
        let started = Instant::now();
        loop {
            let stats = admin.get_stats(pb::GetStatsRequest {}).await.unwrap();
            if stats.into_inner().settings_version == updated.version {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "version {} never came into force",
                updated.version
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_through_sentinel() {
    let deployment = common::deploy::SentinelSet::start(1);
    let config = config_on(|prefix| deployment.settings(prefix));
    three_instances_share_quotas_captchas_and_settings(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_a_cluster() {
    let deployment = common::deploy::ClusterSet::start();
    let config = config_on(|prefix| deployment.settings(prefix));
    three_instances_share_quotas_captchas_and_settings(config).await;
}

/// A certificate authority, and a certificate it signed for `localhost`, as PEM files in `dir`:
/// `ca.pem`, `node.pem`, `node.key`.
fn private_pki(dir: &std::path::Path) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&params, &ca_key);
    let node_key = rcgen::KeyPair::generate().unwrap();
    let node = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&node_key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("node.pem"), node.pem()).unwrap();
    std::fs::write(dir.join("node.key"), node_key.serialize_pem()).unwrap();
}

/// Waits until the service's health is `status` (SERVING 1, NOT_SERVING 2), 15 s at most.
async fn health_becomes(app: &TestApp, status: i32) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        let now = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map(|a| a.into_inner().status);
        if now.is_ok_and(|now| now == status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health never became {status}");
}

/// With `refused`, the service cannot reach the deployment (a submission is UNAVAILABLE);
/// with `trusted` it can (SERVING, and a submission is stored and read back).
async fn refused_then_stored(refused: Config, trusted: Config, key: &str) {
    let app = TestApp::spawn(refused).await;
    let status = app
        .client
        .clone()
        .submit_comment(submission(&format!("{key}-refused")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    drop(app);

    let app = TestApp::spawn(trusted).await;
    health_becomes(&app, 1).await;
    let stored = app
        .client
        .clone()
        .submit_comment(submission(key))
        .await
        .expect("stored")
        .into_inner();
    let read = common::stored(&app, &stored.comment_id).await;
    assert_eq!(read.id, stored.comment_id);
    assert_eq!(read.author_name, submission(key).author_name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_tls_with_a_private_ca_is_trusted_only_with_redis_tls_ca() {
    let pki = tempfile::tempdir().unwrap();
    private_pki(pki.path());
    let port = common::free_port();
    let mut args = vec!["--port".to_owned(), "0".to_owned()];
    args.extend(common::deploy::tls_args(pki.path(), port));
    args.extend(["--save".to_owned(), String::new()]);
    let _node = common::deploy::Node::start(port, &args);
    let mut config = test_config();
    config.redis.url =
        moderation::store::redis::RedisUrl::new(format!("rediss://localhost:{port}"));
    // Without the CA the node's certificate is not trusted.
    let mut trusted = config.clone();
    trusted.redis.tls_ca = Some(pki.path().join("ca.pem"));
    refused_then_stored(config, trusted, "tls-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_and_data_nodes_asking_for_passwords_are_given_theirs() {
    let deployment = common::deploy::SentinelSet::start_with_passwords(
        1,
        Some("data-password"),
        Some("sentinel-password"),
    );
    let mut config = test_config();
    config.redis = deployment.settings(&config.redis.prefix);
    // The data nodes' password comes with the URL (its address is not used).
    config.redis.url =
        moderation::store::redis::RedisUrl::new("redis://:data-password@127.0.0.1:1");
    // The sentinels refuse a wrong password of their own: no primary is found.
    config.redis.sentinel_password = Some(Secret::new("wrong"));
    let mut trusted = config.clone();
    trusted.redis.sentinel_password = Some(Secret::new("sentinel-password"));
    refused_then_stored(config, trusted, "auth-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_over_tls_are_asked_with_the_private_ca() {
    let pki = tempfile::tempdir().unwrap();
    private_pki(pki.path());
    let deployment = common::deploy::SentinelSet::start_with_tls(1, pki.path());
    let mut config = test_config();
    config.redis = deployment.settings(&config.redis.prefix);
    config.redis.sentinels = deployment
        .tls_ports
        .iter()
        .map(|port| format!("localhost:{port}"))
        .collect();
    config.redis.sentinel_tls = true;
    // Without the CA no sentinel is trusted.
    let mut trusted = config.clone();
    trusted.redis.tls_ca = Some(pki.path().join("ca.pem"));
    refused_then_stored(config, trusted, "sentinel-tls-1").await;
}
