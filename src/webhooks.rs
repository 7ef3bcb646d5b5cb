//! Webhooks: what happens to comments, POSTed as signed JSON to the URLs operators configure
//! (`[[webhooks]]`), with retries and a dead-letter list. Never in the way of a submission:
//! the pipeline and the queue hand a notice to a bounded channel and go on; a full channel
//! drops the notice and counts it.
//!
//! A body is signed with HMAC-SHA256 over `"{timestamp}.{body}"` with the webhook's secret,
//! sent as `X-Moderation-Signature: t={timestamp},v1={hex}`; a receiver recomputes it and
//! refuses a timestamp more than five minutes from its clock (replays).
//!
//! Deliveries are kept in this process's memory: a restart loses the ones not yet delivered.
//! The portal's feed ([`crate::feed`]) is the durable record of what is published and removed;
//! webhooks are for reacting quickly.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::secret::Secret;

/// What a webhook can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A comment was published on arrival.
    Published,
    /// A comment was held for moderators.
    Held,
    /// A comment was rejected on arrival.
    Rejected,
    /// A moderator decided a held comment.
    Decided,
    /// A published comment was taken down (a moderator rejected it after a report).
    Removed,
}

impl EventType {
    /// The `type` of its payload (`comment.published`).
    pub fn name(self) -> &'static str {
        match self {
            EventType::Published => "comment.published",
            EventType::Held => "comment.held",
            EventType::Rejected => "comment.rejected",
            EventType::Decided => "comment.decided",
            EventType::Removed => "comment.removed",
        }
    }
}

/// One `[[webhooks]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// A name for metrics and the dead-letter list.
    pub name: String,
    /// Where to POST (http or https).
    pub url: String,
    /// The signing secret (at least 16 characters).
    pub secret: Secret,
    /// What to send.
    pub events: Vec<EventType>,
    /// How long one delivery may take.
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts before a delivery goes to the dead-letter list.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_attempts() -> u32 {
    6
}

impl WebhookSettings {
    /// Every problem with this entry, as (setting, description); `at` names it.
    pub fn problems(&self, at: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            out.push((
                format!("{at}.url"),
                "must be an http:// or https:// URL".into(),
            ));
        }
        if self.secret.expose().chars().count() < 16 {
            out.push((
                format!("{at}.secret"),
                "must be at least 16 characters".into(),
            ));
        }
        if self.events.is_empty() {
            out.push((
                format!("{at}.events"),
                "must name at least one event".into(),
            ));
        }
        if self.max_attempts == 0 {
            out.push((format!("{at}.max_attempts"), "must be at least 1".into()));
        }
        if self.name.trim().is_empty() {
            out.push((format!("{at}.name"), "must not be empty".into()));
        }
        out
    }
}

/// Something to tell webhooks: its type and its data (already JSON).
#[derive(Clone, Debug)]
pub struct Notice {
    /// What happened.
    pub kind: EventType,
    /// The payload's `data`.
    pub data: serde_json::Value,
}

/// A delivery that failed every attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The webhook.
    pub webhook: String,
    /// The event's id.
    pub event_id: String,
    /// Its type.
    pub kind: &'static str,
    /// Why the last attempt failed.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up (Unix ms).
    pub at_ms: i64,
}

/// The most dead letters kept (the oldest are dropped first).
const DEAD_LETTERS_KEPT: usize = 1000;

/// Where notices go: a bounded channel to the dispatcher. Cheap to clone; without webhooks
/// configured it holds nothing and every notice is dropped at once.
#[derive(Clone, Default)]
pub struct Notifier {
    sender: Option<mpsc::Sender<Notice>>,
    wanted: Vec<EventType>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Notifier {
    /// Whether any webhook wants `kind` (callers skip building the notice otherwise).
    pub fn wants(&self, kind: EventType) -> bool {
        self.sender.is_some() && self.wanted.contains(&kind)
    }

    /// Hands `notice` to the dispatcher without waiting; a full channel drops it (counted).
    pub fn notify(&self, notice: Notice) {
        if let Some(sender) = &self.sender
            && sender.try_send(notice).is_err()
            && let Some(m) = &self.metrics
        {
            m.webhook("", "dropped");
        }
    }
}

/// The dispatcher: its dead letters, and a handle to send notices.
pub struct Webhooks {
    hooks: Vec<WebhookSettings>,
    dead: Mutex<VecDeque<DeadLetter>>,
    metrics: Arc<crate::metrics::Metrics>,
    client: reqwest::Client,
}

impl Webhooks {
    /// The dispatcher for `hooks`, and the notifier that feeds it (`capacity` notices wait at
    /// most). Run [`Webhooks::run`] with the receiver.
    pub fn new(
        hooks: Vec<WebhookSettings>,
        metrics: Arc<crate::metrics::Metrics>,
        capacity: usize,
    ) -> (Arc<Webhooks>, Notifier, mpsc::Receiver<Notice>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let wanted = hooks.iter().flat_map(|h| h.events.clone()).collect();
        let notifier = Notifier {
            sender: (!hooks.is_empty()).then_some(sender),
            wanted,
            metrics: Some(metrics.clone()),
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let webhooks = Arc::new(Webhooks {
            hooks,
            dead: Mutex::new(VecDeque::new()),
            metrics,
            client,
        });
        (webhooks, notifier, receiver)
    }

    /// The deliveries given up, newest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        let dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        dead.iter().rev().cloned().collect()
    }

    /// Delivers every notice to every webhook that wants it, each delivery in a task of its
    /// own (a slow receiver delays only its own deliveries). Ends when every notifier is gone.
    pub async fn run(self: Arc<Self>, mut notices: mpsc::Receiver<Notice>) {
        while let Some(notice) = notices.recv().await {
            let event_id = uuid::Uuid::now_v7().to_string();
            let body = serde_json::json!({
                "id": event_id,
                "type": notice.kind.name(),
                "created_at": jiff::Timestamp::now().to_string(),
                "data": notice.data,
            })
            .to_string();
            for (k, hook) in self.hooks.iter().enumerate() {
                if hook.events.contains(&notice.kind) {
                    let this = self.clone();
                    let body = body.clone();
                    let event_id = event_id.clone();
                    tokio::spawn(async move {
                        this.deliver(k, notice.kind, event_id, body).await;
                    });
                }
            }
        }
    }

    /// Tries one delivery until it succeeds, fails for good, or runs out of attempts.
    async fn deliver(&self, hook: usize, kind: EventType, event_id: String, body: String) {
        let hook = &self.hooks[hook];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.attempt(hook, &event_id, &body).await;
            match outcome {
                Ok(()) => {
                    self.metrics.webhook(&hook.name, "delivered");
                    return;
                }
                Err((error, retry)) if retry && attempt < hook.max_attempts => {
                    self.metrics.webhook(&hook.name, "retried");
                    tracing::debug!(webhook = %hook.name, %error, attempt, "webhook delivery failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err((error, _)) => {
                    self.metrics.webhook(&hook.name, "dead_lettered");
                    tracing::warn!(webhook = %hook.name, %error, attempts = attempt, event = %event_id, "webhook delivery given up");
                    let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
                    if dead.len() == DEAD_LETTERS_KEPT {
                        dead.pop_front();
                    }
                    dead.push_back(DeadLetter {
                        webhook: hook.name.clone(),
                        event_id,
                        kind: kind.name(),
                        error,
                        attempts: attempt,
                        at_ms: jiff::Timestamp::now().as_millisecond(),
                    });
                    return;
                }
            }
        }
    }

    /// One POST; on failure why, and whether trying again can help (timeouts, connection
    /// errors, 408, 429 and 5xx can; other answers cannot).
    async fn attempt(
        &self,
        hook: &WebhookSettings,
        event_id: &str,
        body: &str,
    ) -> Result<(), (String, bool)> {
        let timestamp = jiff::Timestamp::now().as_second();
        let answer = self
            .client
            .post(&hook.url)
            .timeout(hook.timeout)
            .header("content-type", "application/json")
            .header("x-moderation-event", event_id)
            .header(
                "x-moderation-signature",
                signature(hook.secret.expose(), timestamp, body),
            )
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| (e.to_string(), true))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let retry = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        Err((format!("answered {status}"), retry))
    }
}

/// How long to wait after failed attempt `n` (1-based): 1 s, 2 s, 4 s, … at most 5 minutes.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

/// The `X-Moderation-Signature` value of `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let t = timestamp.to_string();
    let mac =
        crate::secret::hmac_sha256_hex(secret.as_bytes(), &[t.as_bytes(), b".", body.as_bytes()]);
    format!("t={t},v1={mac}")
}

/// Checks a signature as a receiver does: the HMAC matches and the timestamp is within
/// `window` of `now` (Unix seconds).
pub fn verify(secret: &str, header: &str, body: &str, now: i64, window: Duration) -> bool {
    let mut timestamp = None;
    let mut given = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => given = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(given)) = (timestamp, given) else {
        return false;
    };
    if (now - t).unsigned_abs() > window.as_secs() {
        return false;
    }
    let expected = signature(secret, t, body);
    let expected = expected.rsplit("v1=").next().unwrap_or_default();
    crate::secret::same(&given, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse_tampering_and_replays() {
        let header = signature("a-secret-of-16-chars", 1_000, "{\"a\":1}");
        assert!(header.starts_with("t=1000,v1="), "{header}");
        let window = Duration::from_secs(300);
        let secret = "a-secret-of-16-chars";
        for (key, header, body, now, good) in [
            (secret, header.as_str(), "{\"a\":1}", 1_100, true),
            (secret, header.as_str(), "{\"a\":2}", 1_100, false),
            (
                "another-secret-16ch",
                header.as_str(),
                "{\"a\":1}",
                1_100,
                false,
            ),
            (secret, header.as_str(), "{\"a\":1}", 2_000, false),
            (secret, "v1=00", "{\"a\":1}", 1_000, false),
        ] {
            assert_eq!(
                verify(key, header, body, now, window),
                good,
                "{key} {body} {now}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 256]);
        assert_eq!(backoff(40), Duration::from_secs(256));
    }

    #[test]
    fn bad_entries_are_named() {
        let hook = WebhookSettings {
            name: "".into(),
            url: "ftp://x".into(),
            secret: Secret::new("short"),
            events: vec![],
            timeout: default_timeout(),
            max_attempts: 0,
        };
        let fields: Vec<String> = hook
            .problems("webhooks[0]")
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            fields,
            [
                "webhooks[0].url",
                "webhooks[0].secret",
                "webhooks[0].events",
                "webhooks[0].max_attempts",
                "webhooks[0].name"
            ]
        );
    }
}
