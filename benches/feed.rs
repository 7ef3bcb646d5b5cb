//! Feed delivery: 100,000 accepted comments stored (50 submissions at a time), then read by one
//! consumer in batches of 200 and acknowledged, on each backend, through the feed port; then
//! the same over gRPC: another 100,000 stored, the server (`target/release/moderation`) started
//! on them, and one `FeedService.Subscribe` stream read to the end while its cursors are
//! acknowledged 200 at a time. Prints events per second for storing and for delivering.
//!
//! `cargo bench --bench feed` (Redis on 127.0.0.1:6379 for the Redis run; FEED_EVENTS changes
//! the count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moderation::comment::{CommentId, Limits, NewComment, RawSubmission};
use moderation::decide::Outcome;
use moderation::feed::{FeedStore, Name};
use moderation::store::redis::{RedisSettings, RedisStore, RedisUrl};
use moderation::store::sqlite::SqliteStore;
use moderation::store::{Receipt, Store, Submission};

fn comment(k: usize) -> NewComment {
    let raw = RawSubmission {
        article_id: format!("bai-{}", k % 100),
        author_name: "Nguyễn Văn An".into(),
        author_email: "an.nguyen@example.com".into(),
        body: format!("Bình luận số {k}: giá xăng tăng thế này thì khổ quá."),
        client_ip: "203.0.113.7".into(),
        idempotency_key: format!("feed-bench-{k}"),
        ..RawSubmission::default()
    };
    NewComment::parse(&raw, &Limits::default()).unwrap()
}

async fn fill(store: Arc<dyn Store>, events: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for k in (w..events).step_by(50) {
                let c = comment(k);
                let r = Receipt {
                    comment_id: CommentId::new(),
                    outcome: Outcome::Accepted,
                    spam: 0.01,
                    toxic: 0.01,
                    reasons: Vec::new(),
                    model_version: "bench".into(),
                };
                store
                    .save(Submission {
                        comment: &c,
                        reader: &moderation::readers::ReaderKey::new(
                            &moderation::secret::Secret::new("test"),
                        )
                        .id(c.author_email.as_str()),
                        receipt: &r,
                        fingerprint: &c.fingerprint(),
                        created_at_ms: 1_764_252_147_958,
                        explanation: &[],
                        tallies: &[],
                        shared: None,
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

async fn drain(feed: Arc<dyn FeedStore>, events: usize) -> (usize, Duration) {
    let (group, consumer) = (
        Name::parse("group", "bench").unwrap(),
        Name::parse("consumer", "web-1").unwrap(),
    );
    let started = Instant::now();
    let mut delivered = 0;
    while delivered < events {
        let batch = feed
            .read(&group, &consumer, 200, Duration::from_secs(600))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        delivered += batch.len();
        let cursors: Vec<String> = batch.into_iter().map(|e| e.cursor).collect();
        feed.ack(&group, &cursors).await.unwrap();
    }
    (delivered, started.elapsed())
}

/// The release server on `backend` (a Redis prefix or an embedded file), until dropped.
struct Server(std::process::Child, u16);

impl Server {
    fn start(backend: &str, prefix: &str, path: &std::path::Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = env!("CARGO_MANIFEST_DIR").to_owned() + "/target/release/moderation";
        let child = std::process::Command::new(binary)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("MODERATION_STORE__BACKEND", backend)
            .env("MODERATION_STORE__PATH", path)
            .env("MODERATION_REDIS__PREFIX", prefix)
            .env("MODERATION_METRICS__LISTEN", "127.0.0.1:0")
            .env("MODERATION_HTTP__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the server starts (cargo build --release first)");
        Server(child, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `events` events from one subscription, acknowledging every 200; returns how long.
async fn drain_over_grpc(port: u16, events: usize) -> Duration {
    use moderation::proto::v1 as pb;
    use tokio_stream::StreamExt;
    let mut channel = None;
    for _ in 0..200 {
        if let Ok(c) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut feed = pb::feed_service_client::FeedServiceClient::new(channel.expect("it listens"));
    let started = Instant::now();
    let mut stream = feed
        .subscribe(pb::SubscribeRequest {
            group: "bench".into(),
            consumer: "web-1".into(),
            visibility_seconds: 600,
        })
        .await
        .unwrap()
        .into_inner();
    let mut delivered = 0;
    let mut cursors = Vec::with_capacity(200);
    let mut acks = Vec::new();
    while delivered < events {
        let event = stream.next().await.expect("the stream goes on").unwrap();
        delivered += 1;
        cursors.push(event.cursor);
        if cursors.len() == 200 || delivered == events {
            let mut feed = feed.clone();
            let request = pb::AckRequest {
                group: "bench".into(),
                cursors: std::mem::take(&mut cursors),
            };
            acks.push(tokio::spawn(
                async move { feed.ack(request).await.unwrap() },
            ));
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    started.elapsed()
}

fn main() {
    let events: usize = std::env::var("FEED_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let prefix = format!("{{bench-feed-{}}}:", std::process::id());
        let redis = Arc::new(
            RedisStore::new(
                RedisSettings {
                    url: RedisUrl::new("redis://127.0.0.1:6379"),
                    prefix: prefix.clone(),
                    ..RedisSettings::default()
                },
                Duration::from_secs(5),
            )
            .unwrap(),
        );
        let dir =
            std::env::temp_dir().join(format!("moderation-feed-bench-{}", std::process::id()));
        let sqlite = SqliteStore::open(&dir.join("moderation.db")).unwrap();
        type Ports = (&'static str, Arc<dyn Store>, Arc<dyn FeedStore>);
        let backends: Vec<Ports> = vec![
            ("redis", redis.clone(), redis.clone()),
            (
                "embedded",
                Arc::new(sqlite.clone()),
                Arc::new(sqlite.clone()),
            ),
        ];
        println!("{events} accepted comments, read in batches of 200 and acknowledged");
        println!(
            "{:<10} {:>14} {:>18} {:>24}",
            "backend", "stored/s", "delivered+acked/s", "over gRPC, delivered+acked/s"
        );
        for (name, store, feed) in backends {
            let stored = fill(store, events).await;
            let (delivered, took) = drain(feed, events).await;
            assert_eq!(delivered, events, "{name}: every event delivered");
            // The same again, into a prefix or file of its own, served by the server process.
            let grpc_prefix = format!("{{bench-feed-grpc-{}}}:", std::process::id());
            let grpc_path = dir.join("grpc.db");
            let grpc_store: Arc<dyn Store> = if name == "redis" {
                Arc::new(
                    RedisStore::new(
                        RedisSettings {
                            url: RedisUrl::new("redis://127.0.0.1:6379"),
                            prefix: grpc_prefix.clone(),
                            ..RedisSettings::default()
                        },
                        Duration::from_secs(5),
                    )
                    .unwrap(),
                )
            } else {
                Arc::new(SqliteStore::open(&grpc_path).unwrap())
            };
            fill(grpc_store.clone(), events).await;
            // The embedded file is released for the server to open.
            drop(grpc_store);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let server = Server::start(name, &grpc_prefix, &grpc_path);
            let over_grpc = drain_over_grpc(server.1, events).await;
            drop(server);
            delete(&grpc_prefix);
            println!(
                "{:<10} {:>14.0} {:>18.0} {:>24.0}",
                name,
                events as f64 / stored.as_secs_f64(),
                delivered as f64 / took.as_secs_f64(),
                events as f64 / over_grpc.as_secs_f64()
            );
        }
        // Clean up: the Redis keys under the prefix, the embedded files.
        delete(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// Deletes the Redis keys under `prefix`.
fn delete(prefix: &str) {
    if let Ok(mut c) =
        redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection())
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut c)
            .unwrap_or_default();
        for chunk in keys.chunks(1000) {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut c);
        }
    }
}
