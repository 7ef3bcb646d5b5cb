//! What readers and campaigns cost a submission in process (they cost it no storage round
//! trip): the reader's id (a keyed hash of the address) and their standing among 10,000
//! readers with one, and the campaign check of a 40-word comment against a window of 100,000
//! distinct texts (fingerprint, lookup and record), and of one more copy of a campaign already
//! in the window. Run with `cargo bench --bench readers`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use moderation::campaigns::{CampaignConfig, Detector};
use moderation::comment::CommentId;
use moderation::readers::{Directory, ReaderKey, Status};
use moderation::secret::Secret;

/// A 40-word comment of the kind readers write.
const BODY: &str = "Giá xăng tăng liên tục thế này thì người lao động khổ quá, mong nhà nước có \
                    biện pháp bình ổn giá. Chi phí vận chuyển cũng tăng theo, hàng hóa đắt lên \
                    từng ngày, ai có kinh nghiệm tiết kiệm thì chia sẻ với";

/// A distinct 40-word text: words drawn from a vocabulary of 3,000.
fn distinct(rng: &mut fastrand::Rng) -> String {
    let words: Vec<String> = (0..40).map(|_| format!("tu{}", rng.u32(..3000))).collect();
    words.join(" ")
}

fn readers(c: &mut Criterion) {
    let key = ReaderKey::new(&Secret::new("bench key"));
    let mut directory = Directory::default();
    for k in 0..10_000 {
        let status = Status::parse("premoderated because bench").unwrap();
        directory.insert(key.id(&format!("r{k}@example.vn")), status, "bench", 0);
    }
    c.bench_function("readers: id and standing (10,000 standings)", |b| {
        b.iter(|| {
            let id = key.id(black_box("ban.doc.4242@example.com"));
            black_box((directory.refusal(&id, 1), directory.effect(&id, 1)))
        })
    });
}

fn campaigns(c: &mut Criterion) {
    let detector = Detector::new(&CampaignConfig::default());
    let key = ReaderKey::new(&Secret::new("bench key"));
    let mut rng = fastrand::Rng::with_seed(1);
    for k in 0..100_000 {
        let reader = key.id(&format!("r{}@example.vn", k % 5000));
        let text = distinct(&mut rng);
        detector.check(&text, &reader, &format!("k{k}"), CommentId::new(), 3, k);
    }
    let texts: Vec<String> = (0..1024).map(|_| distinct(&mut rng)).collect();
    let reader = key.id("ban.doc@example.com");
    let mut m = 0usize;
    c.bench_function("campaigns: normalise a 40-word comment", |b| {
        b.iter(|| {
            m += 1;
            black_box(moderation::campaigns::index::normalise(
                &texts[m % texts.len()],
            ))
        })
    });
    c.bench_function("campaigns: normalise the Vietnamese comment", |b| {
        b.iter(|| black_box(moderation::campaigns::index::normalise(BODY)))
    });
    c.bench_function("campaigns: fingerprint a 40-word comment", |b| {
        b.iter(|| {
            m += 1;
            black_box(moderation::campaigns::index::fingerprint(
                &texts[m % texts.len()],
                8,
            ))
        })
    });
    // Each check is of a text the window has not seen (drawn outside the measured time).
    let mut n = 0usize;
    c.bench_function(
        "campaigns: check a 40-word comment (100,000 in the window)",
        |b| {
            b.iter_batched(
                || {
                    n += 1;
                    (distinct(&mut rng), n)
                },
                |(t, n)| {
                    let at = 100_000 + n as i64;
                    black_box(detector.check(&t, &reader, &n.to_string(), CommentId::new(), 3, at))
                },
                BatchSize::SmallInput,
            )
        },
    );
    // The same with the caches cold, as under load, where the server's other work evicts the
    // window between two submissions: before each check, a sweep over a buffer larger than the
    // last-level cache (64 MiB).
    let mut sweep = vec![0u8; 64 << 20];
    c.bench_function(
        "campaigns: check a 40-word comment, caches cold (100,000 in the window)",
        |b| {
            b.iter_batched(
                || {
                    n += 1;
                    sweep
                        .iter_mut()
                        .step_by(64)
                        .for_each(|x| *x = x.wrapping_add(1));
                    (distinct(&mut rng), n)
                },
                |(t, n)| {
                    let at = 100_000 + n as i64;
                    black_box(detector.check(&t, &reader, &n.to_string(), CommentId::new(), 3, at))
                },
                BatchSize::PerIteration,
            )
        },
    );
    black_box(&sweep);
    // A campaign under way: every check is one more copy of a text the window holds 1,000 of.
    for k in 0..1000 {
        let reader = key.id(&format!("campaign{k}@example.vn"));
        detector.check(
            BODY,
            &reader,
            &format!("c{k}"),
            CommentId::new(),
            3,
            200_000,
        );
    }
    c.bench_function(
        "campaigns: one more copy of a campaign (1,000 copies in the window)",
        |b| {
            b.iter(|| {
                n += 1;
                let reader = key.id(&format!("more{n}@example.vn"));
                let at = 200_000 + n as i64;
                black_box(detector.check(BODY, &reader, &n.to_string(), CommentId::new(), 3, at))
            })
        },
    );
}

criterion_group!(benches, readers, campaigns);
criterion_main!(benches);
