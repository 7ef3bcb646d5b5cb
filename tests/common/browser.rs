//! A real headless Chromium, driven over WebDriver by its chromedriver (Debian's `chromium` and
//! `chromium-driver`, which scripts/test installs when missing): one browser per [`Browser`].

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

/// A browser and the chromedriver that drives it.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
}

fn binary(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless browser window of 1280×1000.
    pub async fn start() -> Browser {
        let port = super::free_port();
        // In a process group of its own, with the browsers it starts, so that a test that
        // fails (and never closes its session) leaves no browser behind: see `Drop`.
        let driver = Command::new(binary("CHROMEDRIVER", "chromedriver"))
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (scripts/test installs chromium-driver)");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": binary("CHROME_BIN", "/usr/bin/chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=vi"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Browser { client, driver },
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session: {last:?}");
    }

    /// Signs in at the console at `base` with `credential` (a key, or a name with keys off).
    pub async fn sign_in(&self, base: &str, credential: &str) {
        self.client.goto(&format!("{base}/signin")).await.unwrap();
        let field = self.client.find(Locator::Id("credential")).await.unwrap();
        field.send_keys(credential).await.unwrap();
        self.client
            .find(Locator::Css("form.signin button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_until(
            "signed in",
            "return !location.pathname.startsWith('/signin')",
        )
        .await;
    }

    /// Waits (at most 10 s) until `script` returns true; panics naming `what` otherwise.
    pub async fn wait_until(&self, what: &str, script: &str) {
        for _ in 0..200 {
            if self
                .client
                .execute(script, vec![])
                .await
                .ok()
                .and_then(|v| v.as_bool())
                == Some(true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting until {what}");
    }

    /// What `script` returns.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.click().await.unwrap();
    }

    /// Types `text` into the element `css` selects.
    pub async fn type_in(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    /// Types `keys` into the focused element, as a moderator's keyboard would.
    pub async fn press(&self, keys: &str) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }

    /// Ends the session (the browser exits); dropping it stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Kills chromedriver and every browser process it started (its process group).
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}
