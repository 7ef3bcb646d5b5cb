//! What the service tests share: the real server started on port 0 against real Redis, with a
//! key prefix of its own per test (so tests run in parallel), a generated gRPC client over real
//! TCP, and a private Redis server for the tests that stop or pause Redis.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use moderation::classifier::{DEFAULT_MODEL, Model};
use moderation::config::Config;
use moderation::proto::v1 as pb;
use moderation::server::App;
use pb::comment_service_client::CommentServiceClient;
use redis::Commands;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// The Redis the tests use (`TEST_REDIS_URL`, default the local one).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The committed default model, loaded once for all tests of a binary.
pub fn model() -> Arc<Model> {
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL);
            Arc::new(Model::load(&path).expect("the default model loads"))
        })
        .clone()
}

/// A configuration for a test: port 0, a fresh key prefix, the local Redis.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace = Duration::from_secs(5);
    config.server.drain = Duration::ZERO;
    config.store.backend = moderation::config::Backend::Redis;
    config.redis.url = moderation::store::redis::RedisUrl::new(redis_url());
    config.redis.prefix = format!("{{t-{}}}:", uuid::Uuid::now_v7().simple());
    config.metrics.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    // Most tests send every comment under one address: a reader whose rejections would
    // pre-moderate them after the third (asynchronously) would change what later comments
    // get. The tests of that rule turn it on.
    config.readers.auto_premoderate = moderation::readers::AutoPremoderation::parse("off").unwrap();
    // For the same reason, campaign detection would hold the same text sent again under that
    // address as a repeat. The campaign tests turn it on.
    config.campaigns.copies = 0;
    config
}

/// The storage backends every behaviour that is not about one of them runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The shared Redis, under a prefix of the test's own.
    Redis,
    /// The embedded SQLite store, in a file in a directory of the test's own (removed when
    /// its [`TestApp`] is dropped).
    Embedded,
}

/// [`test_config`] on `backend`.
pub fn test_config_on(backend: Backend) -> Config {
    let mut config = test_config();
    if backend == Backend::Embedded {
        let dir = tempfile::Builder::new()
            .prefix("moderation-test-")
            .tempdir()
            .unwrap()
            .keep();
        config.store.backend = moderation::config::Backend::Embedded;
        config.store.path = dir.join("moderation.db");
    }
    config
}

/// Runs the body (an async fn taking a [`Backend`]) once per backend, as two tests named
/// after it (`<name>::redis`, `<name>::embedded`).
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn redis() {
                super::$name($crate::common::Backend::Redis).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn embedded() {
                super::$name($crate::common::Backend::Embedded).await;
            }
        }
    };
}

/// A running server.
pub struct TestApp {
    /// Where it listens.
    pub address: SocketAddr,
    /// Where its metrics are served.
    pub metrics_address: SocketAddr,
    /// Where its console is served.
    pub console_address: SocketAddr,
    /// Its configuration.
    pub config: Config,
    /// A client connected to it.
    pub client: CommentServiceClient<Channel>,
    /// Its CAPTCHAs (to issue image challenges whose answer the test knows).
    pub captchas: Arc<moderation::captcha::Captchas>,
    shutdown: Option<oneshot::Sender<()>>,
    /// The server task; resolves when it has stopped.
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts the server with `config`.
    pub async fn spawn(config: Config) -> TestApp {
        let app = App::build_with_model(config.clone(), model()).expect("the app builds");
        let captchas = app.captchas().clone();
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = tokio::net::TcpListener::bind(config.metrics.listen)
            .await
            .unwrap();
        let metrics_address = metrics.local_addr().unwrap();
        let console = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .unwrap();
        let console_address = console.local_addr().unwrap();
        let app = app
            .with_metrics_listener(metrics)
            .with_console_listener(console);
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run(listener, async {
            let _ = rx.await;
        }));
        // Over TLS the tests make their own channels; this one is never used.
        let client = if config.server.tls.is_some() {
            CommentServiceClient::new(
                Channel::from_shared(format!("http://{address}"))
                    .unwrap()
                    .connect_lazy(),
            )
        } else {
            CommentServiceClient::new(channel(address).await)
        };
        TestApp {
            address,
            metrics_address,
            console_address,
            config,
            client,
            captchas,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A new connection to the server.
    pub async fn channel(&self) -> Channel {
        channel(self.address).await
    }

    /// Asks the server to stop.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// A Redis key under this test's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.config.redis.prefix)
    }

    /// A synchronous connection to this test's Redis.
    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(self.config.redis.url.expose())
            .unwrap()
            .get_connection()
            .expect("the test Redis answers")
    }

    /// Waits until the health service reports `status` for the overall server.
    pub async fn wait_for_health(&self, status: i32) {
        use tonic_health::pb::health_client::HealthClient;
        let mut health = HealthClient::new(self.channel().await);
        for _ in 0..100 {
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if answer.is_ok_and(|a| a.into_inner().status == status) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("health never became {status}");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shut_down();
        // Leave the shared Redis as it was found, and no embedded store behind.
        delete_prefix(self.config.redis.url.expose(), &self.config.redis.prefix);
        if self.config.store.backend == moderation::config::Backend::Embedded
            && let Some(dir) = self.config.store.path.parent()
            && dir.starts_with(std::env::temp_dir())
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A channel to `address` over TCP.
pub async fn channel(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("the server accepts connections")
}

/// Entries of a stream, oldest first, as field maps, on either backend (the embedded store is
/// read through a connection of the test's own, as any SQLite reader may).
pub fn stream(app: &TestApp, name: &str) -> Vec<HashMap<String, String>> {
    if app.config.store.backend == moderation::config::Backend::Embedded {
        return embedded_stream(&app.config.store.path, name);
    }
    let reply: redis::streams::StreamRangeReply = app
        .redis()
        .xrange_all(app.key(name))
        .expect("XRANGE answers");
    reply
        .ids
        .into_iter()
        .map(|entry| {
            entry
                .map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                .collect()
        })
        .collect()
}

/// Entries of one of the embedded store's streams, oldest first.
fn embedded_stream(path: &std::path::Path, name: &str) -> Vec<HashMap<String, String>> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the embedded store opens for reading");
    let mut select = db
        .prepare("SELECT fields FROM streams WHERE stream = ?1 ORDER BY seq")
        .unwrap();
    let rows = select.query_map([name], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|fields| {
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&fields.unwrap()).expect("stream fields are a JSON object");
        fields
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect()
    })
    .collect()
}

/// The stored comment `id`, read with `GetComment` through the app's client (it must exist).
pub async fn stored(app: &TestApp, id: &str) -> pb::Comment {
    app.client
        .clone()
        .get_comment(pb::GetCommentRequest {
            comment_id: id.to_owned(),
        })
        .await
        .expect("GetComment answers")
        .into_inner()
        .comment
        .expect("the comment is there")
}

/// A valid submission; `key` is its idempotency key.
pub fn submission(key: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        article_id: "thoi-su-2026-11-27".into(),
        article_title: Some("Giá xăng tăng từ chiều nay".into()),
        author_name: "Nguyễn Văn An".into(),
        author_email: "an.nguyen@example.com".into(),
        body: "Giá tăng liên tục thế này thì người lao động khổ quá, mong nhà nước có biện pháp."
            .into(),
        client_ip: "203.0.113.7".into(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64)".into(),
        idempotency_key: key.into(),
        ..pb::SubmitCommentRequest::default()
    }
}

/// [`submission`] by another reader (`email`), with another text.
pub fn submission_from(email: &str, key: &str, body: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        author_email: email.into(),
        body: body.into(),
        ..submission(key)
    }
}

/// Submits `request` through the app's client; it must be taken (stored or replayed).
pub async fn submit(app: &TestApp, request: pb::SubmitCommentRequest) -> pb::SubmitCommentResponse {
    app.client
        .clone()
        .submit_comment(request)
        .await
        .expect("the comment is taken")
        .into_inner()
}

/// Sets runtime settings (`key`, `value`) at their current version, as ops would.
pub async fn update_settings(
    app: &TestApp,
    changes: &[(&str, &str)],
) -> Result<pb::Settings, tonic::Status> {
    use pb::admin_service_client::AdminServiceClient;
    let mut admin = AdminServiceClient::new(app.channel().await);
    let version = admin
        .get_settings(pb::GetSettingsRequest {})
        .await?
        .into_inner()
        .version;
    let changes = changes
        .iter()
        .map(|(key, value)| pb::SettingChange {
            key: (*key).into(),
            value: (*value).into(),
            reset: false,
        })
        .collect();
    admin
        .update_settings(pb::UpdateSettingsRequest {
            version,
            changes,
            note: "test".into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The same submission as [`submission`], as the domain receives it.
pub fn raw_submission() -> moderation::comment::RawSubmission {
    moderation::comment::RawSubmission::from(submission("raw-1"))
}

/// Stores [`raw_submission`] under `key` straight through a backend's submissions port, as the
/// pipeline would have decided it (`outcome`, held for `reasons`), created at `at_ms`; returns
/// its id.
pub async fn save_directly(
    store: &dyn moderation::store::Store,
    key: &str,
    outcome: moderation::decide::Outcome,
    reasons: &[&str],
    at_ms: i64,
) -> moderation::comment::CommentId {
    use moderation::comment::{CommentId, Limits, NewComment, RawSubmission};
    let raw = RawSubmission {
        idempotency_key: key.into(),
        ..raw_submission()
    };
    let comment = NewComment::parse(&raw, &Limits::default()).unwrap();
    let receipt = moderation::store::Receipt {
        comment_id: CommentId::new(),
        outcome,
        spam: 0.5,
        toxic: 0.1,
        reasons: reasons
            .iter()
            .map(|code| moderation::decide::Reason {
                code: (*code).into(),
                message: format!("{code} in a test"),
            })
            .collect(),
        model_version: "test".into(),
    };
    store
        .save(moderation::store::Submission {
            comment: &comment,
            reader: &moderation::readers::ReaderKey::new(&moderation::secret::Secret::new("test"))
                .id(comment.author_email.as_str()),
            receipt: &receipt,
            fingerprint: &comment.fingerprint(),
            created_at_ms: at_ms,
            explanation: &[],
            tallies: &[],
            shared: None,
        })
        .await
        .expect("stored");
    receipt.comment_id
}

/// A configuration whose thresholds send every comment to review (spam between 0 and 1 is
/// "likely").
pub fn holding_config() -> Config {
    holding_config_on(Backend::Redis)
}

/// [`holding_config`] on `backend`.
pub fn holding_config_on(backend: Backend) -> Config {
    let mut config = test_config_on(backend);
    config.decision.accept_below = Some(0.0);
    config.decision.reject_at = Some(1.0);
    config
}

/// Submits `request`, which must be held for review; returns the comment's id.
pub async fn hold(app: &TestApp, request: pb::SubmitCommentRequest) -> String {
    let answer = app
        .client
        .clone()
        .submit_comment(request)
        .await
        .expect("the comment is taken")
        .into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::PendingReview);
    answer.comment_id
}

/// A Valkey server binary, if one is installed (`VALKEY_SERVER`, which scripts/test sets, or
/// `valkey-server` on the PATH): a Redis-compatible server newer than this machine's Redis 7.0,
/// for what needs Redis 7.2 (WAITAOF).
pub fn valkey_server() -> Option<String> {
    let candidate = std::env::var("VALKEY_SERVER").unwrap_or_else(|_| "valkey-server".into());
    Command::new(&candidate)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| candidate)
}

/// A Redis server of the test's own, on a free port, without persistence: for tests that stop,
/// restart or pause Redis without disturbing the others.
pub struct PrivateRedis {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
    binary: String,
    extra: Vec<String>,
}

impl PrivateRedis {
    /// Starts one and waits until it answers.
    pub fn start() -> PrivateRedis {
        Self::start_with("redis-server", &[])
    }

    /// Starts `binary` (a Redis-compatible server) with `extra` arguments.
    pub fn start_with(binary: &str, extra: &[&str]) -> PrivateRedis {
        let port = free_port();
        let mut redis = PrivateRedis {
            port,
            child: None,
            binary: binary.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        redis.restart();
        redis
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let dir = std::env::temp_dir().join(format!("moderation-redis-{}", self.port));
        let _ = std::fs::create_dir_all(&dir);
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", dir.to_str().unwrap()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the private redis-server did not start on port {}",
            self.port
        );
    }

    /// A connection to it.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `moderation serve` process, killed when dropped.
pub struct ServerProcess(pub Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A channel to a server process starting on `port` of loopback, once it listens (10 s at
/// most).
pub async fn connect_when_listening(port: u16) -> Channel {
    for _ in 0..200 {
        if let Ok(c) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server does not listen on port {port}");
}

/// Starts `moderation serve --config <config>` on a free port and waits until it is SERVING;
/// returns the process and a channel to it.
pub async fn spawn_server(config: &std::path::Path) -> (ServerProcess, Channel) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_moderation"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("MODERATION_HTTP__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server binary starts");
    let server = ServerProcess(child);
    let channel = connect_when_listening(port).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for _ in 0..200 {
        if health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok_and(|a| a.into_inner().status == 1)
        {
            return (server, channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never became SERVING");
}

/// Deletes every key under `prefix` in the Redis at `url`, as far as it answers (a test's
/// clean-up must not fail the test).
pub fn delete_prefix(url: &str, prefix: &str) {
    let Ok(mut conn) = redis::Client::open(url).and_then(|c| c.get_connection()) else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
    }
}

/// A small labeled corpus (JSON Lines), to train small models on quickly.
pub fn small_corpus() -> String {
    let mut lines = String::new();
    let rows: [(&str, bool, bool); 6] = [
        ("Bài viết hay, cảm ơn tác giả", false, false),
        ("Mong chính quyền sớm sửa con đường này", false, false),
        ("Đội tuyển đá quá hay tối qua", false, false),
        ("Vay tiền nhanh không thế chấp gọi 0912345678", true, false),
        ("Nhận làm bằng đại học giá rẻ inbox zalo", true, false),
        ("Đồ ngu, cút đi", false, true),
    ];
    for k in 0..4 {
        for (text, spam, toxic) in rows {
            let record = serde_json::json!({"text": format!("{text} {k}"), "spam": spam, "toxic": toxic, "lang": "vi"});
            lines.push_str(&format!("{record}\n"));
        }
    }
    lines
}

/// Trains a small model named `name` into `dir` with the `moderation train` command.
pub fn train_small_model(dir: &std::path::Path, name: &str) {
    let corpus = dir.join(format!("{name}.corpus.jsonl"));
    std::fs::write(&corpus, small_corpus()).unwrap();
    let lexicon = dir.join(format!("{name}.lexicon.txt"));
    std::fs::write(&lexicon, "ngu\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_moderation"))
        .args(["train", "--data", corpus.to_str().unwrap()])
        .args(["--out", dir.join(format!("{name}.model")).to_str().unwrap()])
        .args(["--lexicon", lexicon.to_str().unwrap()])
        .args(["--hash-bits", "14", "--min-rows", "1", "--folds", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the `moderation` binary with extra environment variables, and waits for it.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_moderation"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the binary runs")
}

/// A command's standard output; panics with its error output if it failed.
pub fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The fields a status's `BadRequest` names, in its order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}
pub mod browser;
pub mod deploy;

/// An HTTP client for the console that does not follow redirects (tests read them) and
/// gives up on an answer after 10 s (a request left hanging fails its test).
pub fn console_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The console page at `url`, read with the session `cookie`.
pub async fn console_page(http: &reqwest::Client, url: &str, cookie: &str) -> String {
    let answer = http.get(url).header("cookie", cookie).send().await.unwrap();
    answer.text().await.unwrap()
}

/// Signs in to the console at `base` with `credential` (a key, or a name with keys off);
/// returns the session cookie (`mod_session=…`).
pub async fn console_cookie(http: &reqwest::Client, base: &str, credential: &str) -> String {
    let signed = http
        .post(format!("{base}/signin"))
        .header("origin", base)
        .form(&[("credential", credential)])
        .send()
        .await
        .unwrap();
    let set = signed.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}
