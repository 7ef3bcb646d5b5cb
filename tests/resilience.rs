//! What a failing network, a failing Redis and a stopping server do to the service, on real
//! Redis servers of the tests' own and over real TCP: a connection that goes silent is
//! replaced, a Redis refusing writes turns health NOT_SERVING, SIGTERM drains first, the
//! transport bounds what a client can hold open, the portal's feed is watched, trimming follows
//! Redis' clock, and `redis.durability = "fsync"` never answers before Redis confirms.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{PrivateRedis, TestApp, submission, test_config};
use moderation::proto::v1 as pb;
use moderation::store::redis::RedisUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

/// A TCP proxy to Redis that can go silent on the connections it already has, as a NAT or
/// firewall that lost their state does: bytes sent on them vanish, nothing is answered, the
/// sockets stay open. Connections made afterwards work.
struct Blackhole {
    port: u16,
    /// Connections numbered below this are silent.
    silent_below: Arc<AtomicU64>,
    opened: Arc<AtomicU64>,
}

impl Blackhole {
    async fn start(target: SocketAddr) -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent_below = Arc::new(AtomicU64::new(0));
        let opened = Arc::new(AtomicU64::new(0));
        let (silent, count) = (silent_below.clone(), opened.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let number = count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, number, silent.clone()));
                tokio::spawn(pump(sr, cw, number, silent.clone()));
            }
        });
        Blackhole {
            port,
            silent_below,
            opened,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every connection open now goes silent.
    fn silence_open_connections(&self) {
        self.silent_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    number: u64,
    silent_below: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        if number < silent_below.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

// Several threads: the proxy runs on the test's runtime while the test's clean-up blocks one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_goes_silent_is_replaced_within_seconds() {
    let redis = PrivateRedis::start();
    let proxy = Blackhole::start(format!("127.0.0.1:{}", redis.port).parse().unwrap()).await;
    let mut config = test_config();
    config.redis.url = RedisUrl::new(proxy.url());
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut client = app.client.clone();
    client.submit_comment(submission("silent-0")).await.unwrap();

    proxy.silence_open_connections();
    let cut = Instant::now();
    let mut recovered = None;
    for k in 1..=40 {
        match client
            .submit_comment(submission(&format!("silent-{k}")))
            .await
        {
            Ok(_) => {
                recovered = Some(cut.elapsed());
                break;
            }
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = recovered.expect("the service stores comments again");
    println!("recovered {recovered:?} after the connection went silent");
    assert!(
        proxy.opened.load(Ordering::SeqCst) > proxy.silent_below.load(Ordering::SeqCst),
        "a new connection was made"
    );
}

#[tokio::test]
async fn a_redis_that_refuses_writes_turns_health_not_serving_and_back() {
    let redis = PrivateRedis::start();
    let mut config = test_config();
    config.redis.url = RedisUrl::new(redis.url());
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut admin = redis.connection();
    // Out of memory with noeviction: PING still answers, every write is refused.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut admin)
        .unwrap();
    let status = app
        .client
        .clone()
        .submit_comment(submission("oom-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    app.wait_for_health(NOT_SERVING).await;
    let pong: String = redis::cmd("PING").query(&mut admin).unwrap();
    assert_eq!(pong, "PONG", "a PING alone would have said all is well");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query(&mut admin)
        .unwrap();
    app.wait_for_health(SERVING).await;
    app.client
        .clone()
        .submit_comment(submission("oom-2"))
        .await
        .expect("stored again");
}

#[tokio::test]
async fn on_shutdown_health_turns_not_serving_while_requests_are_still_answered() {
    let mut config = test_config();
    config.server.drain = Duration::from_secs(2);
    let mut app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let started = Instant::now();
    app.shut_down();
    app.wait_for_health(NOT_SERVING).await;
    app.client
        .clone()
        .submit_comment(submission("drain-1"))
        .await
        .expect("still answered during the drain");
    let fresh = app.channel().await;
    pb::comment_service_client::CommentServiceClient::new(fresh)
        .submit_comment(submission("drain-2"))
        .await
        .expect("new connections too");
    let task = app.task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the server stops after the drain")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
}

/// An HTTP/2 connection of the test's own to the server.
async fn h2_client(app: &TestApp) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = TcpStream::connect(app.address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.ready().await.unwrap()
}

fn grpc_request(app: &TestApp, path: &str) -> http::Request<()> {
    http::Request::post(format!("http://{}{path}", app.address))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// The grpc-status of an answer, from its headers (trailers-only) or its trailers.
async fn grpc_status(response: http::Response<h2::RecvStream>) -> Option<String> {
    let status = |h: &http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(s) = status(response.headers()) {
        return Some(s);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        if chunk.is_err() {
            break;
        }
    }
    body.trailers()
        .await
        .ok()
        .flatten()
        .as_ref()
        .and_then(status)
}

#[tokio::test]
async fn a_request_body_that_never_ends_is_answered_by_the_deadline() {
    let app = TestApp::spawn(test_config()).await;
    app.wait_for_health(SERVING).await;
    let mut client = h2_client(&app).await;
    let request = grpc_request(&app, "/moderation.v1.CommentService/SubmitComment");
    let (response, mut body) = client.send_request(request, false).unwrap();
    // A message announced as 100 bytes, of which one arrives; the stream never ends.
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 100, 0x0a]), false)
        .unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(15), response)
        .await
        .expect("answered, not held open");
    let code = match answered {
        Ok(r) => grpc_status(r).await,
        Err(_) => Some("reset".into()),
    };
    assert_ne!(code.as_deref(), Some("0"), "{code:?}");
    assert!(code.is_some());
    drop(body);
}

#[tokio::test]
async fn a_connection_gets_bounded_streams_and_headers() {
    let mut config = test_config();
    config.server.max_concurrent_streams = 7;
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let mut client = h2_client(&app).await;
    // The server's SETTINGS arrive with the first exchange.
    let request = grpc_request(&app, "/grpc.health.v1.Health/Check");
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let _ = response.await.unwrap();
    assert_eq!(client.current_max_send_streams(), 7);

    let mut big = grpc_request(&app, "/moderation.v1.CommentService/SubmitComment");
    big.headers_mut()
        .insert("x-padding", "a".repeat(32 * 1024).parse().unwrap());
    let mut client = client.ready().await.unwrap();
    let refused = match client.send_request(big, true) {
        Err(_) => true,
        Ok((response, _)) => match response.await {
            Err(_) => true,
            Ok(r) => {
                r.status() != http::StatusCode::OK || grpc_status(r).await.as_deref() != Some("0")
            }
        },
    };
    assert!(refused, "a 32 KiB header list is refused");
}

#[tokio::test]
async fn a_connection_that_stops_answering_pings_is_closed() {
    let mut config = test_config();
    config.server.keepalive_interval = Duration::from_millis(500);
    config.server.keepalive_timeout = Duration::from_millis(500);
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    // The HTTP/2 preface and an empty SETTINGS frame, then silence: no PING is ever answered.
    let mut tcp = TcpStream::connect(app.address).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closed the silent connection");
}

/// A metric's value from the Prometheus text at `address`.
async fn metric(address: SocketAddr, series: &str) -> Option<f64> {
    let mut tcp = TcpStream::connect(address).await.ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.ok()?;
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn comments_the_portal_reads_and_never_acknowledges_show_in_the_metrics() {
    let app = TestApp::spawn(test_config()).await;
    app.wait_for_health(SERVING).await;
    for k in 0..3 {
        app.client
            .clone()
            .submit_comment(submission(&format!("pel-{k}")))
            .await
            .unwrap();
    }
    let mut redis = app.redis();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("portal")
        .arg("web-1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(app.key("accepted"))
        .arg(">")
        .query(&mut redis)
        .unwrap();
    let series = "moderation_queue_depth{queue=\"accepted_pending\"}";
    let mut pending = None;
    for _ in 0..50 {
        pending = metric(app.metrics_address, series).await;
        if pending == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, Some(2.0), "two read, not acknowledged");
    let unread = metric(
        app.metrics_address,
        "moderation_queue_depth{queue=\"accepted_unread\"}",
    )
    .await;
    assert_eq!(unread, Some(1.0));
    assert!(
        metric(
            app.metrics_address,
            "moderation_feed_oldest_pending_seconds"
        )
        .await
        .is_some()
    );
    assert_eq!(
        metric(app.metrics_address, "moderation_feed_trimmed_unread").await,
        Some(0.0)
    );
}

#[tokio::test]
async fn an_instance_whose_clock_runs_ahead_trims_nothing_it_should_not() {
    use moderation::decide::Outcome;
    use moderation::store::redis::RedisStore;
    let config = test_config();
    let store = RedisStore::new(config.redis.clone(), Duration::from_secs(1)).unwrap();
    let save = |key: String, at_ms: i64| {
        let store = store.clone();
        async move {
            common::save_directly(&store, &key, Outcome::Accepted, &[], at_ms).await;
        }
    };
    let now = jiff::Timestamp::now().as_millisecond();
    // More than one stream node's worth (100 entries), so approximate trimming could act.
    for k in 0..250 {
        save(format!("clock-{k}"), now).await;
    }
    // This instance's clock is 30 days ahead; the accepted stream keeps 7.
    save("clock-ahead".into(), now + 30 * 24 * 3600 * 1000).await;
    let mut redis = redis::Client::open(config.redis.url.expose())
        .unwrap()
        .get_connection()
        .unwrap();
    let length: u64 = redis::cmd("XLEN")
        .arg(format!("{}accepted", config.redis.prefix))
        .query(&mut redis)
        .unwrap();
    common::delete_prefix(config.redis.url.expose(), &config.redis.prefix);
    assert_eq!(length, 251, "nothing trimmed");
}

#[tokio::test]
async fn with_fsync_durability_nothing_is_accepted_unless_redis_confirms_it() {
    use moderation::store::redis::Durability;
    // The tests' Redis keeps no append-only file (and this machine's is 7.0, without WAITAOF):
    // it cannot confirm, so every submission is UNAVAILABLE, its retry with the same key too.
    let mut config = test_config();
    config.redis.durability = Durability::Fsync;
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    for _ in 0..2 {
        let status = app
            .client
            .clone()
            .submit_comment(submission("fsync-1"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    drop(app);
    let Some(server) = common::valkey_server() else {
        println!(
            "no valkey-server found: only the refusal was checked (scripts/test installs one)"
        );
        return;
    };
    // A server that can confirm (Valkey, found by scripts/test), with its append-only file on:
    // the answer comes once the write is fsynced.
    let valkey =
        PrivateRedis::start_with(&server, &["--appendonly", "yes", "--appendfsync", "always"]);
    let mut config = test_config();
    config.redis.url = RedisUrl::new(valkey.url());
    config.redis.durability = Durability::Fsync;
    let app = TestApp::spawn(config).await;
    app.wait_for_health(SERVING).await;
    let answer = app
        .client
        .clone()
        .submit_comment(submission("fsync-ok"))
        .await
        .expect("confirmed and answered")
        .into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::Accepted);
}

#[tokio::test]
async fn what_redis_keeps_on_disk_is_known() {
    use moderation::store::redis::RedisStore;
    let redis = PrivateRedis::start();
    let mut config = test_config();
    config.redis.url = RedisUrl::new(redis.url());
    let store = RedisStore::new(config.redis.clone(), Duration::from_secs(1)).unwrap();
    let (sentence, nothing) = store.persistence().await.expect("CONFIG GET answers");
    assert!(nothing, "{sentence}");
    assert!(sentence.contains("nothing on disk"), "{sentence}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query(&mut redis.connection())
        .unwrap();
    let (sentence, nothing) = store.persistence().await.unwrap();
    assert!(!nothing);
    assert!(sentence.contains("every second"), "{sentence}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_error_nobody_reads_never_stalls_a_request() {
    use std::process::{Command, Stdio};
    // The server logs a line per request to a pipe this test never reads: a pipe holds 64 KiB,
    // about 200 of these lines, so a writer that waited would stall every request after that.
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_moderation"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .env("MODERATION_STORE__BACKEND", "embedded")
        .env("MODERATION_STORE__PATH", dir.path().join("moderation.db"))
        .env("MODERATION_METRICS__LISTEN", "127.0.0.1:0")
        .env("MODERATION_HTTP__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let mut server = common::ServerProcess(child);
    // Held open and never read.
    let _unread = server.0.stderr.take();
    let client = pb::comment_service_client::CommentServiceClient::new(
        common::connect_when_listening(port).await,
    );
    let workers: Vec<_> = (0..10)
        .map(|w| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for n in 0..150 {
                    let request = submission(&format!("unread-{w}-{n}"));
                    let answer = tokio::time::timeout(
                        Duration::from_secs(5),
                        client.submit_comment(request),
                    )
                    .await;
                    assert!(
                        matches!(answer, Ok(Ok(_))),
                        "request {n} of worker {w}: {answer:?}"
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_refuses_the_password_is_said_once_with_its_cause() {
    use std::process::{Command, Stdio};
    let port = common::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_moderation"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--redis-url", "redis://:not-the-password@127.0.0.1:6379"])
        .env("RUST_LOG", "info")
        .env("MODERATION_REDIS__PREFIX", "{t-password}:")
        .env("MODERATION_METRICS__LISTEN", "127.0.0.1:0")
        .env("MODERATION_HTTP__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let mut server = common::ServerProcess(child);
    let mut client = pb::comment_service_client::CommentServiceClient::new(
        common::connect_when_listening(port).await,
    );
    // Requests fail meanwhile (each is counted, none is logged as a warning).
    for n in 0..5 {
        let refused = client.submit_comment(submission(&format!("pw-{n}"))).await;
        assert_eq!(refused.unwrap_err().code(), tonic::Code::Unavailable);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = server.0.kill();
    let _ = server.0.wait();
    let mut output = Vec::new();
    std::io::Read::read_to_end(&mut server.0.stderr.take().unwrap(), &mut output).unwrap();
    let log = String::from_utf8_lossy(&output);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(
        warnings.len(),
        1,
        "one line for the state, none per request:\n{log}"
    );
    assert!(warnings[0].contains("Redis cannot be used"), "{log}");
    assert!(
        warnings[0].to_lowercase().contains("password"),
        "the cause: {log}"
    );
    assert!(!log.contains('\u{1b}'), "no colours in a pipe: {log}");
}

/// Whether `replica` reports its link to the primary up (it has caught up) within 5 s.
async fn replica_linked(replica: &PrivateRedis) -> bool {
    for _ in 0..100 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.connection())
            .unwrap_or_default();
        if info.contains("master_link_status:up") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_replica_required_an_accepted_comment_is_on_the_replica() {
    let primary = PrivateRedis::start();
    let mut replica = PrivateRedis::start_with(
        "redis-server",
        &["--replicaof", "127.0.0.1", &primary.port.to_string()],
    );
    assert!(replica_linked(&replica).await, "the replica syncs");
    let mut config = test_config();
    config.redis.url = RedisUrl::new(primary.url());
    config.redis.min_replicas_acked = 1;
    let app = TestApp::spawn(config.clone()).await;
    app.wait_for_health(SERVING).await;
    let answer = app
        .client
        .clone()
        .submit_comment(submission("replicated-1"))
        .await
        .expect("confirmed by the replica")
        .into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::Accepted);
    let on_replica: bool = redis::cmd("EXISTS")
        .arg(format!(
            "{}comment:{}",
            config.redis.prefix, answer.comment_id
        ))
        .query(&mut replica.connection())
        .unwrap();
    assert!(
        on_replica,
        "the accepted comment is on the replica when answered"
    );

    // Without the replica nothing is answered ACCEPTED; the retry, once it is back, is.
    replica.stop();
    let refused = app
        .client
        .clone()
        .submit_comment(submission("replicated-2"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("retry"), "{refused:?}");
    replica.restart();
    assert!(replica_linked(&replica).await, "the replica syncs again");
    let retry = app
        .client
        .clone()
        .submit_comment(submission("replicated-2"))
        .await
        .expect("the retry is confirmed")
        .into_inner();
    assert!(
        retry.replayed,
        "the first attempt was stored; its answer is given now"
    );
}
