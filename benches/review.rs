//! Listing the review queue when it is long: 100,000 held comments are stored through the
//! real write path (`RedisStore::save`, the submission script), the real server is started in
//! this process, and a tonic client over TCP asks for pages of 50: the first page, a page deep
//! in the queue (from a page token), one article's comments, one reason's comments. Also
//! reports Redis memory per held comment and how long seeding took. Redis on 127.0.0.1:6379.
//!
//! `cargo bench --bench review` (REVIEW_QUEUE=100000 by default).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use moderation::classifier::{DEFAULT_MODEL, Model};
use moderation::comment::{CommentId, Limits, NewComment, RawSubmission};
use moderation::config::Config;
use moderation::decide::{Outcome, Reason};
use moderation::proto::v1 as pb;
use moderation::review::Explained;
use moderation::server::App;
use moderation::store::redis::RedisStore;
use moderation::store::{Receipt, Store, Submission};
use pb::moderation_service_client::ModerationServiceClient;

const ARTICLES: usize = 1000;

fn used_memory(connection: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(connection).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Stores `n` held comments, 64 at a time, spread over the articles; one in five held as toxic.
async fn seed(store: Arc<RedisStore>, n: usize) {
    let limits = Limits::default();
    let started_ms = jiff::Timestamp::now().as_millisecond() - n as i64;
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..n {
        if tasks.len() == 64 {
            tasks.join_next().await.unwrap().unwrap();
        }
        let store = store.clone();
        tasks.spawn(async move {
            let raw = RawSubmission {
                article_id: format!("bai-{}", k % ARTICLES),
                article_title: Some(format!("Tin số {}", k % ARTICLES)),
                author_name: format!("Bạn đọc {}", k % 5000),
                author_email: format!("ban.doc.{}@example.vn", k % 5000),
                body: format!(
                    "Bình luận số {k}: liên hệ zalo 09{:08} để được tư vấn miễn phí nhé mọi người",
                    k
                ),
                client_ip: format!("198.51.100.{}", k % 250),
                user_agent: "Mozilla/5.0".into(),
                idempotency_key: format!("seed-{k}"),
                ..RawSubmission::default()
            };
            let comment = NewComment::parse(&raw, &limits).unwrap();
            let toxic = k % 5 == 0;
            let reason = if toxic { "TOXIC_LIKELY" } else { "SPAM_LIKELY" };
            let receipt = Receipt {
                comment_id: CommentId::new(),
                outcome: Outcome::PendingReview,
                spam: 0.6,
                toxic: if toxic { 0.8 } else { 0.1 },
                reasons: vec![Reason {
                    code: reason.into(),
                    message: "spam score 0.60: phone number, word \"zalo\"".into(),
                }],
                model_version: "vi-en-20261127".into(),
            };
            let explanation = [
                ("spam", "phone number", 1.4),
                ("spam", "word \"zalo\"", 0.9),
                ("spam", "word \"miễn phí\"", 0.4),
            ]
            .map(|(head, feature, weight)| Explained {
                head: head.into(),
                feature: feature.into(),
                weight,
            });
            store
                .save(Submission {
                    comment: &comment,
                    reader: &moderation::readers::ReaderKey::new(&moderation::secret::Secret::new(
                        "test",
                    ))
                    .id(comment.author_email.as_str()),
                    receipt: &receipt,
                    fingerprint: &comment.fingerprint(),
                    created_at_ms: started_ms + k as i64,
                    explanation: &explanation,
                    tallies: &[],
                    shared: None,
                })
                .await
                .unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

fn review(c: &mut Criterion) {
    let n: usize = std::env::var("REVIEW_QUEUE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The store and the server spawn their background tasks on it.
    let _inside = runtime.enter();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.metrics.enabled = false;
    config.redis.prefix = format!("{{bench-review-{}}}:", std::process::id());
    let redis = redis::Client::open(config.redis.url.expose()).unwrap();
    let mut sync = redis
        .get_connection()
        .expect("Redis answers on 127.0.0.1:6379");

    let store = Arc::new(RedisStore::new(config.redis.clone(), Duration::from_secs(5)).unwrap());
    let before = used_memory(&mut sync);
    let started = Instant::now();
    runtime.block_on(seed(store, n));
    let seeded = started.elapsed();
    let after = used_memory(&mut sync);
    println!(
        "seeded {n} held comments in {:.1} s ({:.0}/s); Redis memory {:.0} bytes per held comment",
        seeded.as_secs_f64(),
        n as f64 / seeded.as_secs_f64(),
        (after.saturating_sub(before)) as f64 / n as f64
    );

    let model = Arc::new(
        Model::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL)).unwrap(),
    );
    let app = App::build_with_model(config.clone(), model).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, server) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(app.run(listener, async {
            let _ = stopped.await;
        }));
        (address, server)
    });
    let mut client = runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        ModerationServiceClient::new(channel)
    });
    let mut list = |request: pb::ListFlaggedRequest| {
        let page = runtime
            .block_on(client.list_flagged(request))
            .unwrap()
            .into_inner();
        assert!(!page.items.is_empty());
        page
    };
    let page = |size: u32| pb::ListFlaggedRequest {
        page_size: size,
        ..Default::default()
    };

    // A page token from the middle of the queue.
    let mut deep = page(200);
    for _ in 0..(n / 2 / 200).min(250) {
        deep.page_token = list(deep.clone()).next_page_token;
    }
    deep.page_size = 50;

    let mut group = c.benchmark_group(format!("ListFlagged from a queue of {n}"));
    group.bench_function("first page of 50", |b| b.iter(|| list(page(50))));
    group.bench_function("page of 50 from the middle (page token)", |b| {
        b.iter(|| list(deep.clone()))
    });
    group.bench_function("page of 50 of one article (100 waiting)", |b| {
        b.iter(|| {
            list(pb::ListFlaggedRequest {
                article_id: Some("bai-7".into()),
                page_size: 50,
                ..Default::default()
            })
        })
    });
    group.bench_function("page of 50 held as TOXIC_LIKELY", |b| {
        b.iter(|| {
            list(pb::ListFlaggedRequest {
                reason: Some("TOXIC_LIKELY".into()),
                page_size: 50,
                ..Default::default()
            })
        })
    });
    group.finish();

    let _ = stop.send(());
    let _ = runtime.block_on(server);
    // Leave Redis as it was found.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", config.redis.prefix))
        .query(&mut sync)
        .unwrap();
    for chunk in keys.chunks(10_000) {
        let _: () = redis::cmd("UNLINK").arg(chunk).query(&mut sync).unwrap();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = review
}
criterion_main!(benches);
