//! The container image: built and started, healthy by its own health check, when a container
//! runtime answers on this machine (skipped, saying so, when none does); and the `health`
//! command that check runs, against the real server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn the_health_command_says_whether_the_server_serves() {
    let app = TestApp::spawn(common::test_config_on(common::Backend::Embedded)).await;
    app.wait_for_health(1).await;
    let serving = common::cli(
        &["health", "--server", &format!("http://{}", app.address)],
        &[],
    );
    assert!(serving.status.success());
    assert_eq!(common::stdout(&serving).trim(), "SERVING");
    let port = common::free_port();
    let nobody = common::cli(
        &["health", "--server", &format!("http://127.0.0.1:{port}")],
        &[],
    );
    assert!(!nobody.status.success());
}

/// The container runtime that answers, if any.
fn runtime() -> Option<&'static str> {
    ["docker", "podman"].into_iter().find(|r| {
        Command::new(r)
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_image_builds_starts_and_turns_healthy() {
    let Some(runtime) = runtime() else {
        eprintln!("skipped: no container runtime answers here (docker info, podman info)");
        return;
    };
    let tag = format!("moderation-test:{}", uuid::Uuid::now_v7().simple());
    let root = env!("CARGO_MANIFEST_DIR");
    let built = Command::new(runtime)
        .args(["build", "-t", &tag, root])
        .status()
        .unwrap();
    assert!(built.success(), "the image builds");
    let name = tag.replace([':', '-'], "_");
    let started = Command::new(runtime)
        .args(["run", "-d", "--name", &name, &tag])
        .status()
        .unwrap();
    assert!(started.success());
    let mut healthy = false;
    for _ in 0..120 {
        let out = Command::new(runtime)
            .args(["inspect", "--format", "{{.State.Health.Status}}", &name])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == "healthy" {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let _ = Command::new(runtime).args(["rm", "-f", &name]).status();
    let _ = Command::new(runtime).args(["rmi", "-f", &tag]).status();
    assert!(healthy, "the container's health check passes");
}
