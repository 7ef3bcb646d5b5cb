//! The client examples in examples/ (Python with grpcio, Node with @grpc/grpc-js) run against
//! the real server: a submission, each kind of error detail decoded, the feed read and
//! acknowledged. scripts/test installs what they need (pip: grpcio, grpcio-tools,
//! grpcio-status; npm: examples/node's packages).

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestApp;
use moderation::rate_limit::Quota;

/// A server whose IP quota admits one comment a minute, so the examples meet a rate limit.
async fn server() -> TestApp {
    let mut config = common::test_config_on(common::Backend::Embedded);
    config.rate_limit.enabled = true;
    config.rate_limit.buckets.ip = Some(Quota {
        rate: 1,
        per: Duration::from_secs(60),
        burst: 1,
        shadow: false,
    });
    let app = TestApp::spawn(config).await;
    app.wait_for_health(1).await;
    app
}

/// What every example prints, in this order (the ids vary).
fn check(output: std::process::Output, which: &str) {
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{which} failed:\n{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("submitted: OUTCOME_ACCEPTED "),
        "{out}"
    );
    let id = lines[0].rsplit(' ').next().unwrap();
    for expected in [
        "refused: INVALID_ARGUMENT",
        "bad_request: author_email is not an e-mail address: no @",
        "refused: ALREADY_EXISTS",
        "error_info: IDEMPOTENCY_KEY_REUSED",
        "refused: RESOURCE_EXHAUSTED",
        "quota_failure: ip",
        "acknowledged: 1",
    ] {
        assert!(
            lines.contains(&expected),
            "{which}: no {expected:?} in\n{out}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("bad_request: body ")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("retry_info: ") && l.ends_with('s')),
        "{out}"
    );
    assert!(
        lines.contains(&format!("feed: FEED_EVENT_KIND_PUBLISHED {id}").as_str()),
        "{which}: {out}"
    );
}

fn missing(what: &str) -> ! {
    panic!("{what} is missing: run scripts/test, which installs it")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_runs_against_the_server() {
    let ready = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, grpc_status"])
        .status();
    if !ready.is_ok_and(|s| s.success()) {
        missing("python3 with grpcio, grpcio-tools and grpcio-status");
    }
    let app = server().await;
    let output = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/python/client.py"
        ))
        .args(["--server", &app.address.to_string()])
        .output()
        .unwrap();
    check(output, "the Python example");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_example_runs_against_the_server() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/node");
    if !std::path::Path::new(dir)
        .join("node_modules/@grpc/grpc-js")
        .exists()
    {
        missing("node with examples/node's packages (npm install in examples/node)");
    }
    let app = server().await;
    let output = Command::new("node")
        .arg("client.js")
        .current_dir(dir)
        .args(["--server", &app.address.to_string()])
        .output()
        .unwrap();
    check(output, "the Node example");
}
