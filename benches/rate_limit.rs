//! Cost of the rate-limit step with all four buckets on: the CPU part (bucket keys with the
//! keyed e-mail hash, the in-process flood gate) and the whole step with its one Redis round
//! trip (Redis on 127.0.0.1:6379). Run with `cargo bench --bench rate_limit`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use moderation::comment::{Limits, NewComment, RawSubmission};
use moderation::rate_limit::cluster::ClusterLimiter;
use moderation::rate_limit::local::FloodGate;
use moderation::rate_limit::{Buckets, Keys, Quota, RateLimitSettings, RateLimiter, TwoTier};
use moderation::secret::Secret;

fn comment(n: u32) -> NewComment {
    NewComment::parse(
        &RawSubmission {
            article_id: format!("bai-{}", n % 100),
            author_name: "Trần Thị Bình".into(),
            author_email: format!("reader{n}@example.com"),
            body: "Bài viết rất hay, cảm ơn tác giả.".into(),
            client_ip: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
            idempotency_key: format!("k{n}"),
            ..RawSubmission::default()
        },
        &Limits::default(),
    )
    .unwrap()
}

/// Quotas high enough that nothing is refused: the benchmark measures admissions.
fn settings() -> RateLimitSettings {
    let q = Some(Quota {
        rate: 1_000_000,
        per: Duration::from_secs(1),
        burst: 1_000_000,
        shadow: false,
    });
    RateLimitSettings {
        enabled: true,
        email_hash_key: Some(Secret::new("benchmark key")),
        allow_ips: vec!["192.0.2.0/24".into()],
        buckets: Buckets {
            ip: q,
            email: q,
            article: q,
            global: q,
        },
        ..RateLimitSettings::default()
    }
}

fn rate_limit(c: &mut Criterion) {
    let settings = settings();
    let comments: Vec<NewComment> = (0..4096).map(comment).collect();

    let keys = Keys::new(&settings);
    let gate = FloodGate::new(
        &settings.buckets,
        settings.local_headroom,
        governor::clock::DefaultClock::default(),
    );
    let mut n = 0;
    c.bench_function("rate limit: bucket keys and flood gate (CPU)", |b| {
        b.iter(|| {
            n = (n + 1) % comments.len();
            let charges = keys.charges(black_box(&comments[n]));
            black_box(gate.check(&charges)).unwrap();
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("{{bench-rl-{}}}:", std::process::id());
    let limiter = runtime.block_on(async {
        let connection = moderation::store::redis::Connection::new(
            "redis://127.0.0.1:6379",
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(1),
        )
        .expect("a valid Redis URL");
        let counters = moderation::store::redis::RedisCounters::new(connection, &prefix);
        let cluster = ClusterLimiter::new(std::sync::Arc::new(counters), &settings.buckets);
        TwoTier::new(&settings, cluster, governor::clock::DefaultClock::default())
    });
    let mut n = 0;
    c.bench_function("rate limit: whole step, one Redis round trip", |b| {
        b.iter(|| {
            n = (n + 1) % comments.len();
            let deadline = Instant::now() + Duration::from_secs(1);
            runtime
                .block_on(limiter.admit(black_box(&comments[n]), deadline))
                .unwrap();
        })
    });
    // Tidy up.
    if let Ok(mut conn) =
        redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection())
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(1000) {
            let _: redis::RedisResult<()> = redis::cmd("UNLINK").arg(chunk).query(&mut conn);
        }
    }
}

criterion_group!(benches, rate_limit);
criterion_main!(benches);
