//! Rate limits against real Redis: GCRA bursts, refusals and recovery; all-or-nothing charging;
//! the refusal the portal sees (RetryInfo, QuotaFailure); three server processes sharing one
//! Redis; the failure policy when the limiter's Redis stops; shadow mode.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Backend, PrivateRedis, TestApp, submission, test_config, test_config_on};
use moderation::comment::{Limits, NewComment, RawSubmission};
use moderation::proto::v1 as pb;
use moderation::rate_limit::cluster::ClusterLimiter;
use moderation::rate_limit::{
    Bucket, Buckets, FailurePolicy, Quota, RateLimitError, RateLimitSettings, RateLimiter, TwoTier,
    Verdict,
};
use moderation::secret::Secret;
use tonic::Code;
use tonic_types::StatusExt;

fn quota(rate: u32, per: Duration, burst: u32) -> Option<Quota> {
    Some(Quota {
        rate,
        per,
        burst,
        shadow: false,
    })
}

fn comment(ip: &str, email: &str) -> NewComment {
    NewComment::parse(
        &RawSubmission {
            article_id: "bai-1".into(),
            author_name: "An".into(),
            author_email: email.into(),
            body: "xin chào".into(),
            client_ip: ip.into(),
            idempotency_key: "k".into(),
            ..RawSubmission::default()
        },
        &Limits::default(),
    )
    .unwrap()
}

async fn connection(url: &str) -> moderation::store::redis::Connection {
    moderation::store::redis::Connection::new(
        url,
        Duration::from_millis(500),
        Duration::from_secs(1),
    )
    .unwrap()
}

fn prefix() -> String {
    format!("{{rl-{}}}:", uuid::Uuid::now_v7().simple())
}

fn limiter(
    settings: &RateLimitSettings,
    connection: moderation::store::redis::Connection,
) -> TwoTier {
    let counters = moderation::store::redis::RedisCounters::new(connection, &prefix());
    let cluster = ClusterLimiter::new(std::sync::Arc::new(counters), &settings.buckets);
    TwoTier::new(settings, cluster, governor::clock::DefaultClock::default())
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn a_burst_is_admitted_then_refused_then_admitted_again_at_the_configured_rate() {
    let buckets = Buckets {
        ip: quota(10, Duration::from_secs(1), 3),
        ..Buckets::default()
    };
    let counters = moderation::store::redis::RedisCounters::new(
        connection(&common::redis_url()).await,
        &prefix(),
    );
    let cluster = ClusterLimiter::new(std::sync::Arc::new(counters), &buckets);
    let charges = moderation::rate_limit::Keys::new(&RateLimitSettings {
        buckets: buckets.clone(),
        ..RateLimitSettings::default()
    })
    .charges(&comment("203.0.113.1", "a@example.com"));
    for n in 0..3 {
        let verdict = cluster.charge(&charges).await.unwrap();
        assert!(
            matches!(verdict, Verdict::Admitted { .. }),
            "request {n}: {verdict:?}"
        );
    }
    let Verdict::Refused {
        bucket,
        retry_after,
        ..
    } = cluster.charge(&charges).await.unwrap()
    else {
        panic!("the fourth request of a burst of three is refused");
    };
    assert_eq!(bucket, Bucket::Ip);
    // 10 per second: the next one is due 100 ms after the last admission.
    assert!(retry_after <= Duration::from_millis(100), "{retry_after:?}");
    assert!(retry_after > Duration::from_millis(50), "{retry_after:?}");
    tokio::time::sleep(retry_after + Duration::from_millis(5)).await;
    assert!(matches!(
        cluster.charge(&charges).await.unwrap(),
        Verdict::Admitted { .. }
    ));
    // And only one: the rate, not a new burst.
    assert!(matches!(
        cluster.charge(&charges).await.unwrap(),
        Verdict::Refused { .. }
    ));
}

#[tokio::test]
async fn a_request_refused_by_one_bucket_uses_no_quota_of_the_others() {
    let settings = RateLimitSettings {
        enabled: true,
        email_hash_key: Some(Secret::new("test")),
        local_headroom: 4.0,
        buckets: Buckets {
            ip: quota(1, Duration::from_secs(3600), 5),
            email: quota(1, Duration::from_secs(3600), 1),
            ..Buckets::default()
        },
        ..RateLimitSettings::default()
    };
    let limiter = limiter(&settings, connection(&common::redis_url()).await);
    let ip = "203.0.113.2";
    limiter
        .admit(&comment(ip, "flood@example.com"), far())
        .await
        .unwrap();
    for _ in 0..10 {
        let refused = limiter
            .admit(&comment(ip, "flood@example.com"), far())
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, RateLimitError::Limited { bucket, .. } if bucket == "email"),
            "{refused:?}"
        );
    }
    // The address's quota of five lost only the one admitted request: four others fit.
    for n in 0..4 {
        limiter
            .admit(&comment(ip, &format!("reader{n}@example.com")), far())
            .await
            .unwrap_or_else(|e| panic!("reader {n}: {e}"));
    }
    let refused = limiter
        .admit(&comment(ip, "reader9@example.com"), far())
        .await
        .unwrap_err();
    assert!(matches!(&refused, RateLimitError::Limited { bucket, .. } if bucket == "ip"));
}

#[tokio::test]
async fn shadow_buckets_count_what_they_would_refuse_and_refuse_nothing() {
    let mut ip = quota(1, Duration::from_secs(3600), 1).unwrap();
    ip.shadow = true;
    let settings = RateLimitSettings {
        enabled: true,
        local_headroom: 100.0,
        buckets: Buckets {
            ip: Some(ip),
            ..Buckets::default()
        },
        ..RateLimitSettings::default()
    };
    let limiter = limiter(&settings, connection(&common::redis_url()).await);
    for _ in 0..4 {
        limiter
            .admit(&comment("203.0.113.3", "a@example.com"), far())
            .await
            .expect("shadow mode never refuses");
    }
    let counters = limiter.counters();
    assert_eq!(counters.shadow_refusals[1].load(Ordering::Relaxed), 3);
    assert_eq!(counters.cluster_refusals[1].load(Ordering::Relaxed), 0);
}

on_both_backends!(the_portal_sees_resource_exhausted_with_the_real_wait_and_the_bucket);
async fn the_portal_sees_resource_exhausted_with_the_real_wait_and_the_bucket(backend: Backend) {
    let mut config = test_config_on(backend);
    config.rate_limit = RateLimitSettings {
        enabled: true,
        buckets: Buckets {
            ip: quota(1, Duration::from_secs(2), 1),
            ..Buckets::default()
        },
        ..RateLimitSettings::default()
    };
    let app = TestApp::spawn(config).await;
    let mut client = app.client.clone();
    // Invalid requests are not charged.
    let mut invalid = submission("bad");
    invalid.body = String::new();
    for _ in 0..3 {
        assert_eq!(
            client
                .submit_comment(invalid.clone())
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
    }
    client
        .submit_comment(submission("rl-1"))
        .await
        .expect("the first comment is admitted");
    let status = client.submit_comment(submission("rl-2")).await.unwrap_err();
    let refused_at = Instant::now();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.get_error_details();
    let wait = details.retry_info().unwrap().retry_delay.unwrap();
    assert_eq!(details.quota_failure().unwrap().violations[0].subject, "ip");
    assert!(
        wait <= Duration::from_secs(2) && wait > Duration::from_millis(1500),
        "{wait:?}"
    );

    // The wait is the truth to within 10 %: still refused at 90 % of it, admitted at 110 %.
    tokio::time::sleep_until((refused_at + wait.mul_f64(0.9)).into()).await;
    let early = client.submit_comment(submission("rl-3")).await.unwrap_err();
    assert_eq!(early.code(), Code::ResourceExhausted);
    tokio::time::sleep_until((refused_at + wait.mul_f64(1.1)).into()).await;
    client
        .submit_comment(submission("rl-4"))
        .await
        .expect("admitted once the wait has passed");
}

#[tokio::test]
async fn when_the_limiters_redis_stops_fail_open_admits_and_fail_closed_refuses_within_the_deadline()
 {
    for policy in [FailurePolicy::FailOpen, FailurePolicy::FailClosed] {
        let mut limiter_redis = PrivateRedis::start();
        let mut config = test_config();
        config.rate_limit = RateLimitSettings {
            enabled: true,
            failure_policy: policy,
            redis_url: Some(moderation::store::redis::RedisUrl::new(limiter_redis.url())),
            buckets: Buckets {
                ip: quota(100, Duration::from_secs(1), 100),
                ..Buckets::default()
            },
            ..RateLimitSettings::default()
        };
        let app = TestApp::spawn(config).await;
        let mut client = app.client.clone();
        client.submit_comment(submission("p-1")).await.unwrap();
        wait_for_named_health(&app, moderation::server::RATE_LIMIT_HEALTH, 1).await;

        limiter_redis.stop();
        for n in 2..5 {
            let mut request = tonic::Request::new(submission(&format!("p-{n}")));
            // Five times the server's deadline: an answer within it shows no stall.
            request.set_timeout(Duration::from_secs(5));
            let answer = client.submit_comment(request).await;
            match policy {
                FailurePolicy::FailOpen => {
                    assert_eq!(
                        answer.unwrap().into_inner().outcome(),
                        pb::Outcome::Accepted
                    )
                }
                FailurePolicy::FailClosed => {
                    assert_eq!(answer.unwrap_err().code(), Code::Unavailable)
                }
            }
        }
        wait_for_named_health(&app, moderation::server::RATE_LIMIT_HEALTH, 2).await;

        // Once Redis is back, the next request after the back-off finds it and the cluster
        // tier decides again.
        limiter_redis.restart();
        let mut back = false;
        for n in 10..60 {
            let _ = client.submit_comment(submission(&format!("p-{n}"))).await;
            if named_health(&app, moderation::server::RATE_LIMIT_HEALTH).await == Some(1) {
                back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(back, "{policy:?}: the cluster tier never came back");
        client
            .submit_comment(submission("p-after"))
            .await
            .unwrap_or_else(|e| panic!("{policy:?}: {e:?}"));
    }
}

async fn named_health(app: &TestApp, service: &str) -> Option<i32> {
    use tonic_health::pb::health_client::HealthClient;
    HealthClient::new(app.channel().await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()
        .map(|a| a.into_inner().status)
}

async fn wait_for_named_health(app: &TestApp, service: &str, status: i32) {
    for _ in 0..100 {
        if named_health(app, service).await == Some(status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{service} health never became {status}");
}

#[tokio::test]
async fn three_server_processes_sharing_one_redis_admit_one_quota_between_them() {
    const RATE_PER_MINUTE: u32 = 60;
    const BURST: u32 = 5;
    let prefix = prefix();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("moderation.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
            [redis]
            url = "{}"
            prefix = "{prefix}"
            [metrics]
            enabled = false
            [rate_limit]
            enabled = true
            [rate_limit.buckets.ip]
            rate = {RATE_PER_MINUTE}
            per = "1m"
            burst = {BURST}
            "#,
            common::redis_url()
        ),
    )
    .unwrap();
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (server, channel) = common::spawn_server(&config_path).await;
        servers.push(server);
        clients.push(pb::comment_service_client::CommentServiceClient::new(
            channel,
        ));
    }

    // 100 requests over three seconds, round robin over the three instances.
    let started = Instant::now();
    let mut admitted = 0u32;
    let mut refused = 0u32;
    for n in 0..100 {
        tokio::time::sleep_until((started + Duration::from_millis(30 * n as u64)).into()).await;
        let client = &mut clients[n % 3];
        match client
            .submit_comment(submission(&format!("three-{n}")))
            .await
        {
            Ok(_) => admitted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused += 1;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // GCRA admits the burst, then one per second: what a single instance would admit.
    let refill = elapsed * f64::from(RATE_PER_MINUTE) / 60.0;
    let (low, high) = (
        BURST + refill.floor() as u32 - 1,
        BURST + refill.ceil() as u32,
    );
    assert!(
        (low..=high).contains(&admitted),
        "admitted {admitted} in {elapsed:.1} s; the quota allows {low} to {high}"
    );
    assert_eq!(admitted + refused, 100);
    eprintln!(
        "three instances admitted {admitted} of 100 in {elapsed:.2} s (quota: burst {BURST} + {RATE_PER_MINUTE}/min)"
    );
    common::delete_prefix(&common::redis_url(), &prefix);
    drop(servers);
}

on_both_backends!(a_retry_of_a_stored_submission_gets_its_first_answer_once_its_quota_is_spent);
async fn a_retry_of_a_stored_submission_gets_its_first_answer_once_its_quota_is_spent(
    backend: Backend,
) {
    // Headroom 1: the flood gate refuses before storage is asked; 4: the shared counters
    // would refuse, in the storage call, after its retry check.
    for headroom in [1.0, 4.0] {
        let mut config = test_config_on(backend);
        config.rate_limit = RateLimitSettings {
            enabled: true,
            local_headroom: headroom,
            buckets: Buckets {
                ip: quota(1, Duration::from_secs(3600), 1),
                ..Buckets::default()
            },
            ..RateLimitSettings::default()
        };
        let app = TestApp::spawn(config).await;
        let mut client = app.client.clone();
        let first = client
            .submit_comment(submission("q-1"))
            .await
            .expect("the first comment is admitted")
            .into_inner();
        let refused = client.submit_comment(submission("q-2")).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::ResourceExhausted,
            "headroom {headroom}"
        );
        let again = client
            .submit_comment(submission("q-1"))
            .await
            .unwrap_or_else(|e| panic!("headroom {headroom}: the retry is refused: {e:?}"))
            .into_inner();
        assert!(again.replayed, "headroom {headroom}");
        assert_eq!(again.comment_id, first.comment_id);
    }
}
