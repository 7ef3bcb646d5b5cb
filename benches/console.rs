//! The console under a long queue: 100,000 held comments are submitted through the real
//! pipeline (scored, explained, stored), the real server runs in this process, and
//!
//! - a client on loopback asks for the queue page (50 cards, rendered on the server with their
//!   marked spans) 200 times: the first page, a page deep in the queue, one article's page;
//! - a real headless Chromium (chromedriver) signs in and decides 30 comments with the
//!   keyboard; the page's script measures each keypress to the next card focused after the
//!   server answered (the undo window off, so every decision is a full round trip).
//!
//! `cargo bench --bench console` (CONSOLE_QUEUE=100000, CONSOLE_BACKENDS=embedded,redis).
//! With CONSOLE_SCREENSHOTS=docs it also saves the queue and operators' pages as PNG files
//! there (README shows them).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use moderation::comment::RawSubmission;
use moderation::config::{Backend, Config};
use moderation::server::App;

/// Comments written for this benchmark (not from any corpus): a mix a news desk holds.
const BODIES: &[&str] = &[
    "Gọi ngay 0912 345 678 để nhận ưu đãi vay tiền không cần thế chấp, duyệt trong 5 phút!",
    "Bài viết phân tích rất kỹ, nhưng số liệu năm 2025 hình như chưa đúng, mong tòa soạn kiểm tra lại.",
    "Kiếm 5 triệu mỗi ngày tại nhà, xem hướng dẫn tại bit.ly/kiem-tien-nhanh",
    "Đồ ngu, viết bài kiểu này mà cũng đòi làm báo",
    "Giá xăng tăng thế này thì người lao động khổ quá, mong nhà nước sớm có biện pháp.",
    "Shop quần áo giá rẻ, inbox zalo 0987.654.321 hoặc vào shopee.vn/shop-gia-re",
    "Tôi không đồng ý với tác giả, nhưng cảm ơn vì đã nêu vấn đề.",
    "Thằng tác giả này bị điên à, cút khỏi đây",
    "Nhận làm bằng đại học, bằng lái xe, liên hệ @lambang247",
    "Đường này kẹt xe cả năm rồi, khi nào mới xong dự án vậy?",
    "Great article, but the English translation of the minister's quote is wrong.",
    "MUA NGAY!!! GIẢM GIÁ 90% CHỈ HÔM NAY!!!",
];

const TITLES: &[&str] = &[
    "Giá xăng tăng từ chiều nay",
    "Hà Nội mở thêm tuyến metro",
    "Đội tuyển vào bán kết",
    "Lãi suất ngân hàng giảm",
];

fn config_on(backend: Backend, dir: &std::path::Path) -> Config {
    let mut config = common::test_config();
    config.store.backend = backend;
    config.store.path = dir.join("moderation.db");
    config.decision.accept_below = Some(0.0);
    config.decision.reject_at = Some(1.0);
    config.http.undo_window = Duration::ZERO;
    config
}

fn submission(k: usize) -> RawSubmission {
    let mut request = common::submission(&format!("console-bench-{k}"));
    request.body = BODIES[k % BODIES.len()].to_owned();
    request.article_id = format!("bai-{}", k % 1000);
    request.article_title = Some(TITLES[k % TITLES.len()].to_owned());
    request.author_name = format!("Độc giả {}", k % 5000);
    request.author_email = format!("doc.gia.{}@example.com", k % 5000);
    request.client_ip = format!("203.0.113.{}", k % 250);
    RawSubmission::from(request)
}

/// Submits `n` comments through the pipeline, 64 at a time; returns how long it took.
async fn seed(app: &App, n: usize) -> Duration {
    let started = Instant::now();
    let pipeline = app.pipeline().clone();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..n {
        if tasks.len() == 64 {
            tasks.join_next().await.unwrap().unwrap();
        }
        let pipeline = pipeline.clone();
        tasks.spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            pipeline
                .submit(&submission(k), deadline)
                .await
                .expect("stored");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or_default(),
        ms.len()
    )
}

/// Times `count` loads of `path` with the session `cookie`; every answer must be a full page.
async fn time_page(http: &reqwest::Client, url: &str, cookie: &str, count: usize) -> Vec<f64> {
    let mut ms = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let page = common::console_page(http, url, cookie).await;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(
            page.matches("<article class=\"card").count() >= 1,
            "a page of cards"
        );
    }
    ms
}

async fn run(backend: Backend, n: usize, screenshots: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let config = config_on(backend, dir.path());
    let app = App::build_with_model(config.clone(), common::model()).unwrap();
    let seeded = seed(&app, n).await;
    println!("{backend:?}: {n} held comments submitted through the pipeline in {seeded:.1?}");
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", console.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        app.with_console_listener(console)
            .with_metrics_listener(metrics)
            .run(grpc, async {
                let _ = stopped.await;
            }),
    );
    let http = common::console_http();
    let cookie = common::console_cookie(&http, &base, "lan").await;
    let first = format!("{base}/queue");
    time_page(&http, &first, &cookie, 10).await;
    println!(
        "  queue page, first 50: {}",
        summary(time_page(&http, &first, &cookie, 200).await)
    );
    // A page deep in the queue: follow the next-page links 20 times.
    let mut deep = first.clone();
    for _ in 0..20 {
        let page = common::console_page(&http, &deep, &cookie).await;
        let href = page.split("class=\"next\" href=\"").nth(1).unwrap();
        deep = format!(
            "{base}{}",
            href.split('"').next().unwrap().replace("&amp;", "&")
        );
    }
    println!(
        "  queue page 21 (after 1,000): {}",
        summary(time_page(&http, &deep, &cookie, 200).await)
    );
    let article = format!("{base}/queue?article=bai-7");
    println!(
        "  one article's page: {}",
        summary(time_page(&http, &article, &cookie, 200).await)
    );

    let browser = Browser::start().await;
    browser.sign_in(&base, "lan").await;
    browser
        .wait_until(
            "the queue",
            "return !!document.querySelector('.card.focused')",
        )
        .await;
    if let Some(to) = screenshots {
        std::fs::write(
            format!("{to}/console-queue.png"),
            browser.client.screenshot().await.unwrap(),
        )
        .unwrap();
    }
    let mut round_trips = Vec::new();
    for k in 1..=30 {
        browser.press("a").await;
        browser
            .wait_until(
                "decided",
                &format!("return window.moderation.decided === {k} && window.moderation.lastRoundTrip !== null"),
            )
            .await;
        let ms = browser.eval("return window.moderation.lastRoundTrip").await;
        round_trips.push(ms.as_f64().unwrap());
    }
    println!(
        "  decision round trip in Chromium (keypress to next card): {}",
        summary(round_trips)
    );
    if let Some(to) = screenshots {
        browser.client.goto(&format!("{base}/ops")).await.unwrap();
        for (id, value) in [("accept_below", "0.35"), ("reject_at", "0.9")] {
            let input = browser
                .client
                .find(fantoccini::Locator::Id(id))
                .await
                .unwrap();
            input.clear().await.unwrap();
            input.send_keys(value).await.unwrap();
        }
        browser
            .wait_until(
                "the what-if",
                "return (document.getElementById('thresholds').dataset.whatif || '').includes('reject_at=0.9')",
            )
            .await;
        std::fs::write(
            format!("{to}/console-ops.png"),
            browser.client.screenshot().await.unwrap(),
        )
        .unwrap();
        reader_screenshot(&browser, &base, to).await;
    }
    browser.close().await;
    let _ = stop.send(());
    let _ = server.await;
    if backend == Backend::Redis {
        common::delete_prefix(config.redis.url.expose(), &config.redis.prefix);
    }
}

/// The reader panel of the first waiting comment's reader, as `console-reader.png`.
async fn reader_screenshot(browser: &Browser, base: &str, to: &str) {
    browser.client.goto(&format!("{base}/queue")).await.unwrap();
    browser
        .wait_until("the queue", "return !!document.querySelector('.card')")
        .await;
    let card = browser
        .eval("return document.querySelector('.card').id.slice(2)")
        .await;
    let id = card.as_str().unwrap().to_owned();
    browser
        .client
        .goto(&format!("{base}/comments/{id}"))
        .await
        .unwrap();
    browser.click("a.reader").await;
    browser
        .wait_until(
            "the reader panel",
            "return !!document.getElementById('standing-form')",
        )
        .await;
    std::fs::write(
        format!("{to}/console-reader.png"),
        browser.client.screenshot().await.unwrap(),
    )
    .unwrap();
}

fn main() {
    let n: usize = std::env::var("CONSOLE_QUEUE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let backends = std::env::var("CONSOLE_BACKENDS").unwrap_or_else(|_| "embedded,redis".into());
    let screenshots = std::env::var("CONSOLE_SCREENSHOTS").ok();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (k, name) in backends.split(',').enumerate() {
        let backend = match name.trim() {
            "redis" => Backend::Redis,
            _ => Backend::Embedded,
        };
        // Screenshots once, from the first backend.
        let shots = if k == 0 { screenshots.as_deref() } else { None };
        runtime.block_on(run(backend, n, shots));
    }
}
