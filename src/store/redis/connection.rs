//! The connection every Redis user of the service shares: one multiplexed connection
//! (redis-rs' `ConnectionManager`), with two things redis-rs does not do.
//!
//! - **A silent connection is replaced.** When a NAT or firewall loses the connection's state,
//!   the socket stays open and nothing answers: redis-rs reports a timeout but keeps the
//!   connection, so every request would wait out its deadline for ever. After
//!   [`TIMEOUTS_BEFORE_REPLACING`] timeouts in a row the connection is dropped and a new one is
//!   made. TCP keepalive and `TCP_USER_TIMEOUT` are set too, so the kernel also gives up on a
//!   peer that stopped acknowledging.
//! - **Outcomes are recorded for health:** every transient failure of any request (refused,
//!   reset, timed out, out of memory, read-only, loading) counts against it, and the periodic
//!   probe's write for it, so the health status follows what requests actually meet rather
//!   than one PING ([`Health`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

/// Timeouts in a row after which the connection is replaced.
pub const TIMEOUTS_BEFORE_REPLACING: u32 = 2;

/// Outcomes in a row that change the health status: this many failures turn it NOT_SERVING,
/// this many successes SERVING again (hysteresis: one slow reply flips nothing).
pub const HEALTH_STREAK: u32 = 3;

/// The health the recorded outcomes give.
#[derive(Debug, Default)]
pub struct Health {
    /// Failures in a row (0 after a success).
    failures: AtomicU32,
    /// Successes in a row (0 after a failure).
    successes: AtomicU32,
    /// 1 while serving.
    serving: AtomicU32,
}

impl Health {
    /// Records the outcome of a health probe (a small write).
    pub fn probed(&self, ok: bool) {
        if ok {
            self.record(true);
        }
        // A failed probe was recorded by the connection, as every failed request is.
    }

    fn record(&self, ok: bool) {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= HEALTH_STREAK {
                self.serving.store(1, Ordering::Relaxed);
            }
        } else {
            self.successes.store(0, Ordering::Relaxed);
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= HEALTH_STREAK {
                self.serving.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Whether the store is serving: [`HEALTH_STREAK`] successes in a row since the last
    /// [`HEALTH_STREAK`] failures in a row (not serving until the first streak of successes).
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed) == 1
    }
}

struct Shared {
    client: redis::Client,
    config: ConnectionManagerConfig,
    current: ArcSwap<ConnectionManager>,
    timeouts: AtomicU32,
    replaced: AtomicU32,
    health: Health,
}

/// A shared connection to one Redis (cheap to clone).
#[derive(Clone)]
pub struct Connection(Arc<Shared>);

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("replaced", &self.replaced())
            .finish_non_exhaustive()
    }
}

/// Whether an error says Redis could not be used right now (as opposed to a wrong command
/// or a script's own error, which say nothing about Redis' health).
fn transient(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(error.code(), Some("READONLY" | "LOADING" | "MASTERDOWN"))
        // Codes redis-rs has no kind of its own for come through as a response error whose
        // text starts with them.
        || {
            let text = error.to_string();
            ["OOM", "BUSY", "NOREPLICAS", "MISCONF", "READONLY", "LOADING"]
                .iter()
                .any(|code| text.contains(code))
        }
}

/// TCP settings of every connection: no Nagle delay, keepalive probes after 10 s idle, and a
/// connection whose sent data stays unacknowledged for `user_timeout` is closed by the kernel.
fn tcp_settings(user_timeout: Duration) -> redis::io::tcp::TcpSettings {
    let keepalive = redis::io::tcp::socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5));
    let settings = redis::io::tcp::TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let settings = settings.set_user_timeout(user_timeout);
    #[cfg(not(target_os = "linux"))]
    let _ = user_timeout;
    settings
}

impl Connection {
    /// A connection to `url`, made lazily (Redis may be down now); each reply waits at most
    /// `response_timeout`.
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, RedisError> {
        use redis::IntoConnectionInfo;
        let user_timeout = (response_timeout * 4).max(Duration::from_secs(5));
        let info = url
            .into_connection_info()?
            .set_tcp_settings(tcp_settings(user_timeout));
        let client = redis::Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Connection(Arc::new(Shared {
            client,
            config,
            current: ArcSwap::from_pointee(manager),
            timeouts: AtomicU32::new(0),
            replaced: AtomicU32::new(0),
            health: Health::default(),
        })))
    }

    /// The client (for pub/sub, which needs a connection of its own).
    pub fn client(&self) -> &redis::Client {
        &self.0.client
    }

    /// The health recorded outcomes give.
    pub fn health(&self) -> &Health {
        &self.0.health
    }

    /// How many times the connection was replaced since start-up.
    pub fn replaced(&self) -> u32 {
        self.0.replaced.load(Ordering::Relaxed)
    }

    /// Records a reply or failure of a request sent over `used`. Redis' own refusals (out of
    /// memory, read-only) arrive as replies holding an error, so replies are looked into.
    fn record(&self, used: &Arc<ConnectionManager>, result: Result<&[Value], &RedisError>) {
        let shared = &self.0;
        match result {
            Ok(values) => {
                shared.timeouts.store(0, Ordering::Relaxed);
                // Replies do not count for health (under memory pressure reads are answered
                // while writes are refused): only a probe's write does (`Health::probed`).
                let refused = values.iter().any(|v| match v {
                    Value::ServerError(e) => transient(&RedisError::from(e.clone())),
                    _ => false,
                });
                if refused {
                    shared.health.record(false);
                }
            }
            Err(e) if e.is_timeout() => self.record_timeout(used),
            Err(e) => {
                if transient(e) {
                    shared.health.record(false);
                }
            }
        }
    }

    /// Records a request over `used` that got no answer in time: redis-rs timed it out, or the
    /// caller's deadline ran out first and it was dropped unanswered.
    fn record_timeout(&self, used: &Arc<ConnectionManager>) {
        let shared = &self.0;
        shared.health.record(false);
        if shared.timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_BEFORE_REPLACING {
            self.replace(used);
        }
    }

    /// Drops `used` for a new connection, unless another request already did.
    fn replace(&self, used: &Arc<ConnectionManager>) {
        let shared = &self.0;
        let Ok(fresh) =
            ConnectionManager::new_lazy_with_config(shared.client.clone(), shared.config.clone())
        else {
            return;
        };
        let previous = shared.current.compare_and_swap(used, Arc::new(fresh));
        if Arc::ptr_eq(&previous, used) {
            shared.timeouts.store(0, Ordering::Relaxed);
            shared.replaced.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "Redis did not answer {TIMEOUTS_BEFORE_REPLACING} requests in a row: the connection was replaced"
            );
        }
    }
}

/// A request on its way: when dropped before its answer was recorded (the caller's deadline
/// ran out), it counts as a timeout, so a connection that answers nothing is noticed even when
/// callers give up before redis-rs does.
struct InFlight<'a> {
    connection: &'a Connection,
    used: Arc<ConnectionManager>,
    answered: bool,
}

impl InFlight<'_> {
    fn finish(mut self, result: Result<&[Value], &RedisError>) {
        self.answered = true;
        self.connection.record(&self.used, result);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.connection.record_timeout(&self.used);
        }
    }
}

impl Connection {
    fn start(&self) -> InFlight<'_> {
        InFlight {
            connection: self,
            used: self.0.current.load_full(),
            answered: false,
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let request = self.start();
            let result = (*request.used).clone().req_packed_command(cmd).await;
            request.finish(result.as_ref().map(std::slice::from_ref));
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let request = self.start();
            let result = (*request.used)
                .clone()
                .req_packed_commands(pipeline, offset, count)
                .await;
            request.finish(result.as_ref().map(Vec::as_slice));
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.current.load().get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_changes_only_after_a_streak() {
        let h = Health::default();
        assert!(!h.serving(), "not serving before anything answered");
        for _ in 0..HEALTH_STREAK - 1 {
            h.record(true);
        }
        assert!(!h.serving());
        h.record(true);
        assert!(h.serving());
        // One slow reply, then replies again: still serving.
        h.record(false);
        h.record(true);
        assert!(h.serving());
        for _ in 0..HEALTH_STREAK {
            h.record(false);
        }
        assert!(!h.serving());
        h.record(true);
        assert!(!h.serving(), "one success does not bring it back");
    }
}
