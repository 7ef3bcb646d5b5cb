//! Cost of CAPTCHAs: drawing an image challenge, issuing one (drawing and storing it in Redis),
//! verifying an answer (one Redis round trip), and solving a proof of work natively (to
//! estimate a browser's solve time). Redis on 127.0.0.1:6379. Run with
//! `cargo bench --bench captcha`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use moderation::captcha::image::{ImageCaptcha, render};
use moderation::captcha::pow::{self, ProofOfWork};
use moderation::secret::Secret;

fn captcha(c: &mut Criterion) {
    c.bench_function("captcha: draw a 6-character image (PNG)", |b| {
        b.iter(|| black_box(render(6)).unwrap())
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("{{bench-captcha-{}}}:", std::process::id());
    let secret = Secret::new("benchmark");
    let connection = moderation::store::redis::Connection::new(
        "redis://127.0.0.1:6379",
        Duration::from_millis(500),
        Duration::from_secs(1),
    )
    .expect("a valid Redis URL");
    let challenges: std::sync::Arc<dyn moderation::captcha::store::ChallengeStore> =
        std::sync::Arc::new(moderation::store::redis::RedisChallenges::new(
            connection, &prefix,
        ));
    let images = ImageCaptcha::new(
        challenges.clone(),
        &secret,
        Duration::from_secs(60),
        6,
        u32::MAX,
        Duration::from_secs(60),
    );
    c.bench_function("captcha: issue an image challenge (draw and store)", |b| {
        b.iter(|| runtime.block_on(images.issue()).unwrap())
    });
    // A right answer is claimed by the submission's own storage call (measured in
    // `cargo bench --bench load`); what remains here is the in-process check before it.
    let challenge = runtime
        .block_on(images.store("ACDEFG", Vec::new()))
        .unwrap();
    c.bench_function(
        "captcha: check an image answer in process (signature, answer hash)",
        |b| {
            b.iter(|| {
                images
                    .claim(black_box(&challenge.id), "acdefg", "10.0.0.1")
                    .unwrap()
            })
        },
    );

    let work = ProofOfWork::new(&secret, Duration::from_secs(60), [20_000, 500_000]);
    c.bench_function(
        "captcha: solve a proof of work, max_number 20000 (native)",
        |b| b.iter(|| black_box(pow::solve(&work.issue(pow::Purpose::Standalone))).unwrap()),
    );
    c.bench_function(
        "captcha: one SHA-256 attempt of a proof of work (native)",
        |b| {
            let mut k = 0u64;
            b.iter(|| {
                k += 1;
                black_box(pow::hash("0123456789abcdef01234567?expires=1764252147", k))
            })
        },
    );

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

criterion_group!(benches, captcha);
criterion_main!(benches);
