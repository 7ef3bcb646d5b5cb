//! Load run: `SubmitComment` end to end (real server process, real Redis, the committed model)
//! at 50 concurrent streams, beside a bare tonic echo of the same messages measured the same
//! way, so the ratio is reported. Run with `cargo bench --bench load` (Redis on
//! 127.0.0.1:6379; `LOAD_SECONDS` sets the measured time, default 10).
//!
//! The echo server is this same binary started again with `LOAD_ROLE=echo`: it answers every
//! `SubmitComment` with a fixed response and does nothing else.
//!
//! After each backend's closed-loop run, the same server takes an open-loop run at each of
//! [`OPEN_LOOP_RATES`] (a fixed arrival rate, as real traffic comes; `LOAD_OPEN_SECONDS` sets
//! its measured time, default 5).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moderation::proto::v1 as pb;
use pb::comment_service_client::CommentServiceClient;
use tonic::transport::Channel;

const STREAMS: usize = 50;

/// Comments in the style of a news site's readers (written for this benchmark), mostly
/// ordinary, some spam.
const BODIES: &[&str] = &[
    "Giá tăng liên tục thế này thì người lao động khổ quá, mong nhà nước có biện pháp bình ổn.",
    "Bài viết rất hay, cảm ơn tác giả đã phân tích kỹ lưỡng vấn đề này.",
    "Đội tuyển chơi quá hay, tự hào Việt Nam! Mong các cầu thủ giữ sức khỏe cho trận sau.",
    "Tôi nghĩ cần kiểm tra lại quy trình cấp phép, không thể để tình trạng này kéo dài mãi.",
    "Thời tiết dạo này thất thường quá, mọi người nhớ giữ ấm và đi lại cẩn thận nhé.",
    "Trường học nên giảm tải bài tập về nhà để các cháu có thời gian nghỉ ngơi và vui chơi.",
    "Mong chính quyền sớm giải quyết dứt điểm chuyện ngập úng ở khu phố tôi mỗi khi mưa lớn.",
    "Nhà cái uy tín nạp 100k tặng 200k, liên hệ zalo 0912.345.678 để nhận khuyến mãi.",
    "Vay tiền nhanh không thế chấp, duyệt trong 5 phút, gọi ngay 0987.654.321.",
    "Thông tin hữu ích, tôi sẽ chia sẻ cho gia đình và bạn bè cùng biết để phòng tránh.",
];

fn main() {
    if std::env::var("LOAD_ROLE").as_deref() == Ok("echo") {
        return run_echo_server();
    }
    // `cargo bench` passes `--bench`; nothing else is expected.
    let seconds: u64 = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let measured = Duration::from_secs(seconds);

    let echo_port = free_port();
    let echo = Server::start(
        Command::new(std::env::current_exe().unwrap())
            .env("LOAD_ROLE", "echo")
            .env("LOAD_PORT", echo_port.to_string()),
        echo_port,
    );
    let echo_result = run_load(&echo, measured, "echo");
    drop(echo);

    // LOAD_BINARY runs another build (an earlier commit's, to compare) under the same load.
    let binary = std::env::var("LOAD_BINARY")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned() + "/target/release/moderation");
    // LOAD_BACKENDS=redis (or embedded) runs one backend only.
    let backends = std::env::var("LOAD_BACKENDS").unwrap_or_else(|_| "redis,embedded".into());
    let mut results = vec![("tonic echo", echo_result)];
    let mut open: Vec<(String, LoadResult)> = Vec::new();
    let open_measured = Duration::from_secs(
        std::env::var("LOAD_OPEN_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let runs = [
        ("redis", "redis", false),
        ("redis", "redis + limits", true),
        ("embedded", "embedded", false),
        ("embedded", "embedded + limits", true),
    ];
    for (backend, name, rate_limited) in runs {
        if !backends.split(',').any(|b| b == backend) {
            continue;
        }
        let port = free_port();
        let prefix = format!("{{bench-{}-{port}}}:", std::process::id());
        // The embedded store in a file of its own (synchronous = FULL, group commit).
        let dir = std::env::temp_dir().join(format!("moderation-bench-{port}"));
        let mut command = Command::new(&binary);
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("MODERATION_STORE__BACKEND", backend)
            .env("MODERATION_STORE__PATH", dir.join("moderation.db"))
            .env("MODERATION_REDIS__PREFIX", &prefix)
            .env("RUST_LOG", "warn");
        // LOAD_SERVER_ENV="K=V,K=V" sets more of the server's environment (a setting only this
        // build knows, in an A/B run).
        for pair in std::env::var("LOAD_SERVER_ENV")
            .unwrap_or_default()
            .split(',')
        {
            if let Some((key, value)) = pair.split_once('=') {
                command.env(key, value);
            }
        }
        if rate_limited {
            // All four buckets, with quotas no run reaches: every request is admitted, so
            // the cost measured is the whole step.
            command
                .env("MODERATION_RATE_LIMIT__ENABLED", "true")
                .env("MODERATION_RATE_LIMIT__EMAIL_HASH_KEY", "load run");
            for bucket in ["IP", "EMAIL", "ARTICLE", "GLOBAL"] {
                let var =
                    |field: &str| format!("MODERATION_RATE_LIMIT__BUCKETS__{bucket}__{field}");
                command
                    .env(var("RATE"), "100000000")
                    .env(var("PER"), "1s")
                    .env(var("BURST"), "100000000");
            }
        }
        let service = Server::start(&mut command, port);
        results.push((name, run_load(&service, measured, name)));
        if !rate_limited {
            for rate in OPEN_LOOP_RATES {
                let what = format!("{backend} {rate}/s");
                open.push((
                    what.clone(),
                    run_open_loop(&service, rate, open_measured, &what),
                ));
            }
        }
        drop(service);
        clean_up(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
    }

    println!(
        "\n{STREAMS} concurrent streams on one HTTP/2 connection, {seconds} s measured after 2 s warm-up"
    );
    println!(
        "{:<16} {:>9} {:>8} {:>8} {:>8} {:>7} {:>9} {:>11} {:>13}",
        "server",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "errors",
        "peak RSS",
        "CPU µs/req",
        "Redis µs/req"
    );
    for (name, r) in &results {
        println!(
            "{:<16} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>6} MB {:>11.1} {:>13.1}",
            name,
            r.per_second,
            r.percentile(0.50),
            r.percentile(0.90),
            r.percentile(0.99),
            r.errors,
            r.peak_rss_kib / 1024,
            r.cpu_us_per_request,
            r.redis_us_per_request
        );
    }
    let echo = results[0].1.per_second;
    let ratios: Vec<String> = results[1..]
        .iter()
        .map(|(name, r)| format!("{name} {:.2}", r.per_second / echo))
        .collect();
    println!("throughput / echo: {}", ratios.join(", "));
    if !open.is_empty() {
        println!(
            "\nopen loop: requests sent at a fixed rate whatever the answers (latency from the moment each was due), {} s measured after 1 s",
            open_measured.as_secs()
        );
        println!(
            "{:<16} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>11}",
            "backend, rate",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "errors",
            "CPU µs/req"
        );
        for (name, r) in &open {
            println!(
                "{:<16} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>11.1}",
                name,
                r.per_second,
                r.percentile(0.50),
                r.percentile(0.90),
                r.percentile(0.99),
                r.percentile(1.0),
                r.errors,
                r.cpu_us_per_request
            );
        }
    }
    if !binary_is_fresh(&binary) {
        println!("(note: {binary} is older than the sources; run `cargo build --release` first)");
    }
}

/// Throughput, latencies and server cost of one run.
struct LoadResult {
    per_second: f64,
    latencies_ms: Vec<f64>,
    errors: usize,
    peak_rss_kib: u64,
    /// Server CPU time (user + system) over the measured time, per request.
    cpu_us_per_request: f64,
    /// The local Redis' CPU time over the measured time, per request (Redis shares the
    /// machine's cores with the server and the load generator).
    redis_us_per_request: f64,
}

impl LoadResult {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return f64::NAN;
        }
        let k = ((self.latencies_ms.len() - 1) as f64 * p).round() as usize;
        self.latencies_ms[k]
    }
}

/// The load generator's runtime: one worker thread, so it takes as little of the machine as it
/// can.
fn generator() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// One HTTP/2 connection to `server`.
async fn connect(server: &Server) -> Channel {
    Channel::from_shared(format!("http://{}", server.address()))
        .unwrap()
        .connect()
        .await
        .expect("the server accepts connections")
}

/// A name for a run's idempotency keys, unique to this process.
fn run_name(what: &str) -> String {
    format!("{what}-{}", std::process::id())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// Keeps `STREAMS` calls in flight for 2 s of warm-up and `measured` of measurement.
fn run_load(server: &Server, measured: Duration, what: &str) -> LoadResult {
    generator().block_on(async move {
        let channel = connect(server).await;
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let run = run_name(what);
        let workers: Vec<_> = (0..STREAMS)
            .map(|w| {
                let mut client = CommentServiceClient::new(channel.clone());
                let (measuring, stop, run) = (measuring.clone(), stop.clone(), run.clone());
                let what = what.to_owned();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let request = request(&run, w, n);
                        n += 1;
                        let started = Instant::now();
                        let answer = client.submit_comment(request).await;
                        if let Err(status) = &answer
                            && errors == 0
                            && measuring.load(Ordering::Relaxed)
                        {
                            eprintln!("{what}: first error of stream {w}: {status:?}");
                        }
                        let ok = answer.is_ok();
                        if measuring.load(Ordering::Relaxed) {
                            latencies.push(started.elapsed().as_secs_f64() * 1e3);
                            errors += usize::from(!ok);
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let cpu_before = server.cpu_seconds();
        let redis_before = redis_cpu_seconds();
        tokio::time::sleep(measured).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let cpu = server.cpu_seconds() - cpu_before;
        let redis_cpu = redis_cpu_seconds() - redis_before;
        stop.store(true, Ordering::Relaxed);
        let mut latencies_ms = Vec::new();
        let mut errors = 0;
        for w in workers {
            let (l, e) = w.await.unwrap();
            latencies_ms.extend(l);
            errors += e;
        }
        latencies_ms.sort_by(f64::total_cmp);
        LoadResult {
            per_second: latencies_ms.len() as f64 / elapsed.as_secs_f64(),
            cpu_us_per_request: cpu * 1e6 / latencies_ms.len().max(1) as f64,
            redis_us_per_request: redis_cpu * 1e6 / latencies_ms.len().max(1) as f64,
            latencies_ms,
            errors,
            peak_rss_kib: server.peak_rss_kib(),
        }
    })
}

/// CPU time (user + system) the local Redis has used, in seconds (0 when none answers).
fn redis_cpu_seconds() -> f64 {
    let Ok(mut conn) =
        redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection())
    else {
        return 0.0;
    };
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query(&mut conn)
        .unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (name, value) = l.trim().split_once(':')?;
            matches!(name, "used_cpu_user" | "used_cpu_sys").then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// The arrival rates of the open-loop runs, requests per second.
const OPEN_LOOP_RATES: [u32; 2] = [2_000, 5_000];

/// Requests in flight beyond which the open loop counts a request as failed instead of
/// sending it (the server has fallen this far behind).
const OPEN_LOOP_MAX_IN_FLIGHT: usize = 10_000;

/// Sends `rate` requests per second on one HTTP/2 connection whatever the answers, for 1 s of
/// warm-up and `measured` of measurement; each latency counts from the moment the request was
/// due, so a stalled server is not hidden by sending less (coordinated omission).
fn run_open_loop(server: &Server, rate: u32, measured: Duration, what: &str) -> LoadResult {
    let run = run_name(&format!("open-{what}"));
    generator().block_on(async move {
        let client = CommentServiceClient::new(connect(server).await);
        let warm_up = u64::from(rate);
        let total = warm_up + u64::from(rate) * measured.as_secs();
        let interval = Duration::from_secs(1) / rate;
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (sender, mut answers) = tokio::sync::mpsc::unbounded_channel::<(bool, f64, bool)>();
        let start = tokio::time::Instant::now();
        let mut cpu_before = 0.0;
        let mut overloaded = 0;
        for n in 0..total {
            let due = start + interval * u32::try_from(n).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due).await;
            let measuring = n >= warm_up;
            if n == warm_up {
                cpu_before = server.cpu_seconds();
            }
            if in_flight.load(Ordering::Relaxed) >= OPEN_LOOP_MAX_IN_FLIGHT {
                overloaded += usize::from(measuring);
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (mut client, sender, in_flight) =
                (client.clone(), sender.clone(), in_flight.clone());
            let n = usize::try_from(n).unwrap_or(0);
            let request = request(&run, n % STREAMS, n);
            tokio::spawn(async move {
                let ok = client.submit_comment(request).await.is_ok();
                let latency_ms = due.elapsed().as_secs_f64() * 1e3;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = sender.send((measuring, latency_ms, ok));
            });
        }
        drop(sender);
        let mut latencies_ms = Vec::new();
        let mut errors = overloaded;
        while let Some((measuring, latency_ms, ok)) = answers.recv().await {
            if measuring {
                latencies_ms.push(latency_ms);
                errors += usize::from(!ok);
            }
        }
        let elapsed = start.elapsed().saturating_sub(Duration::from_secs(1));
        let cpu = server.cpu_seconds() - cpu_before;
        latencies_ms.sort_by(f64::total_cmp);
        LoadResult {
            per_second: latencies_ms.len() as f64 / elapsed.as_secs_f64(),
            cpu_us_per_request: cpu * 1e6 / latencies_ms.len().max(1) as f64,
            redis_us_per_request: 0.0,
            latencies_ms,
            errors,
            peak_rss_kib: server.peak_rss_kib(),
        }
    })
}

/// Syllables the load's words are made of: two make a word, so the load has 3,600 words and
/// its comments are distinct texts, as real ones are (shared sentences would be near copies,
/// which the campaign check holds).
const SYLLABLES: &[&str] = &[
    "an", "ba", "bi", "ca", "chi", "cu", "da", "do", "du", "gia", "ha", "hoa", "hu", "khi", "la",
    "lo", "lu", "ma", "me", "mu", "na", "nga", "nhi", "no", "pha", "qua", "ra", "sa", "se", "ta",
    "the", "thu", "to", "tra", "tu", "va", "ve", "vi", "xa", "xe", "xi", "yen", "bang", "cong",
    "dong", "giang", "hang", "khang", "long", "mang", "nam", "phong", "quang", "sang", "tam",
    "thanh", "trung", "vang", "xuan", "yeu",
];

fn request(run: &str, worker: usize, n: usize) -> pb::SubmitCommentRequest {
    // A reader among 5,000, and a text of their own: a sentence of the mix (a fifth of them
    // spam) with 20 words of its own.
    let mut rng = fastrand::Rng::with_seed((worker as u64) << 32 | n as u64);
    let mut word = || {
        let s = |rng: &mut fastrand::Rng| SYLLABLES[rng.usize(..SYLLABLES.len())];
        format!("{}{}", s(&mut rng), s(&mut rng))
    };
    let own: Vec<String> = (0..20).map(|_| word()).collect();
    let reader = (worker * 7919 + n) % 5000;
    let sentence = BODIES[(worker + n) % BODIES.len()];
    let first_words: Vec<&str> = sentence.split(' ').take(6).collect();
    pb::SubmitCommentRequest {
        article_id: format!("bai-{}", n % 97),
        article_title: Some("Tin thời sự".into()),
        author_name: "Trần Thị Bình".into(),
        author_email: format!("ban.doc.{reader}@example.com"),
        body: format!("{} {}", first_words.join(" "), own.join(" ")),
        client_ip: format!("203.0.113.{}", worker + 1),
        user_agent: "Mozilla/5.0 (load run)".into(),
        idempotency_key: format!("{run}-{worker}-{n}"),
        ..pb::SubmitCommentRequest::default()
    }
}

/// A server process under test.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(command: &mut Command, port: u16) -> Server {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let server = Server { child, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(server.address()).is_ok() {
                // Give the service time to see Redis before it is measured.
                std::thread::sleep(Duration::from_millis(700));
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not listen on port {port}");
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// CPU time (user + system) the process has used, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; the clock
        // tick is 100 Hz on Linux.
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Peak resident memory (VmHWM) of the process, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes the run's keys from Redis.
fn clean_up(prefix: &str) {
    let Ok(mut conn) =
        redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection())
    else {
        return;
    };
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query(&mut conn)
            .unwrap_or((0, Vec::new()));
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("UNLINK").arg(keys).query(&mut conn);
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

fn binary_is_fresh(binary: &str) -> bool {
    let modified = |p: &str| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(binary),
        modified(concat!(env!("CARGO_MANIFEST_DIR"), "/src/pipeline.rs")),
    ) {
        (Some(b), Some(s)) => b >= s,
        _ => true,
    }
}

/// The echo server: `CommentService` answering every submission with a fixed response.
fn run_echo_server() {
    struct Echo;
    #[tonic::async_trait]
    impl pb::comment_service_server::CommentService for Echo {
        async fn issue_captcha(
            &self,
            _request: tonic::Request<pb::IssueCaptchaRequest>,
        ) -> Result<tonic::Response<pb::IssueCaptchaResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("echo"))
        }

        async fn submit_comment(
            &self,
            request: tonic::Request<pb::SubmitCommentRequest>,
        ) -> Result<tonic::Response<pb::SubmitCommentResponse>, tonic::Status> {
            let r = request.into_inner();
            Ok(tonic::Response::new(pb::SubmitCommentResponse {
                comment_id: r.idempotency_key,
                outcome: pb::Outcome::Accepted.into(),
                model_version: "echo".into(),
                ..pb::SubmitCommentResponse::default()
            }))
        }

        async fn get_comment(
            &self,
            _request: tonic::Request<pb::GetCommentRequest>,
        ) -> Result<tonic::Response<pb::GetCommentResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("echo"))
        }
    }
    let port: u16 = std::env::var("LOAD_PORT").unwrap().parse().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            tonic::transport::Server::builder()
                .add_service(pb::comment_service_server::CommentServiceServer::new(Echo))
                .serve(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .unwrap();
        });
}
