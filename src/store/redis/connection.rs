//! The connection every Redis user of the service shares: one multiplexed connection
//! (redis-rs' `ConnectionManager`) to one node or to the primary the sentinels name, or a
//! cluster connection that sends everything to the primary of the deployment's hash slot; with
//! three things redis-rs does not do.
//!
//! - **A Sentinel failover is followed** ([`super::sentinel`]): redis-rs' connections keep
//!   reconnecting to the address they were made for, so the primary's address is watched and
//!   the connection remade when it changes.
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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::TlsCertificates;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError};
use redis::{RedisFuture, Value};

use super::sentinel::Sentinels;
use super::{Address, RedisSettings, Topology};

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
    /// Records the outcome of a health probe (a small write). A transient failure was
    /// recorded by the connection, as every failed request's is; any other (a wrong password,
    /// a missing permission, too many clients) is recorded here: writes fail all the same.
    pub fn probed(&self, outcome: Result<(), &RedisError>) {
        match outcome {
            Ok(()) => self.record(true),
            Err(e) if !transient(e) => self.record(false),
            Err(_) => {}
        }
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

/// Where requests go now.
enum Link {
    /// One node: the configured one, or the primary the sentinels named.
    Node {
        client: Box<redis::Client>,
        manager: ConnectionManager,
        /// The primary's address, when the sentinels gave it.
        primary: Option<Address>,
    },
    /// A Redis Cluster: every command to the primary of the deployment's slot (all its keys
    /// are there), including those with no key, such as `WAIT`, `TIME` and `SCAN`.
    Cluster {
        connection: ClusterConnection,
        route: Route,
    },
}

impl Link {
    async fn send(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match self {
            Link::Node { manager, .. } => manager.clone().req_packed_command(cmd).await,
            Link::Cluster { connection, route } => {
                let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(*route));
                connection.clone().route_command(cmd.clone(), to).await
            }
        }
    }

    async fn send_all(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        match self {
            Link::Node { manager, .. } => {
                manager
                    .clone()
                    .req_packed_commands(pipeline, offset, count)
                    .await
            }
            Link::Cluster { connection, route } => {
                let to = SingleNodeRoutingInfo::SpecificNode(*route);
                (connection.clone())
                    .route_pipeline(pipeline.clone(), offset, count, to)
                    .await
            }
        }
    }
}

/// How links are made.
enum Target {
    Node,
    Sentinel(Sentinels),
    Cluster {
        client: ClusterClient,
        route: Route,
        /// Nodes to subscribe on (a cluster broadcasts every PUBLISH to all its nodes),
        /// taken in turn as subscriptions break.
        nodes: Vec<redis::Client>,
        next: AtomicU32,
    },
}

struct Shared {
    target: Target,
    config: ConnectionManagerConfig,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// `None` until the sentinels first named the primary.
    current: ArcSwapOption<Link>,
    /// Held while the primary is looked up and the link remade; it keeps the last failed
    /// first lookup (when, and why), so that requests queued behind it fail at once rather
    /// than each asking every sentinel again.
    resolving: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
    /// Wakes the sentinel watcher early (a request met a refusal or a read-only node).
    wake: tokio::sync::Notify,
    watching: AtomicBool,
    timeouts: AtomicU32,
    replaced: AtomicU32,
    health: Health,
}

/// A shared connection to one Redis deployment (cheap to clone).
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    /// The link every request of this handle uses (see [`Connection::pinned`]).
    pinned: Option<Arc<Link>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("replaced", &self.replaced())
            .finish_non_exhaustive()
    }
}

/// The error codes that say Redis could not be used right now.
const TRANSIENT_CODES: [&str; 8] = [
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "OOM",
    "BUSY",
    "NOREPLICAS",
    "MISCONF",
    "TRYAGAIN",
];

/// Whether an error says Redis could not be used right now (as opposed to a wrong command
/// or a script's own error, which say nothing about Redis' health). Codes are compared
/// whole: `BUSYGROUP` (a consumer group that exists) is not `BUSY`.
fn transient(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        // A script's error carries the code of the command that failed inside it in its
        // text ("... OOM command not allowed ..."): whole words only.
        || error
            .to_string()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| TRANSIENT_CODES.contains(&word))
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

/// `template` (credentials, database, TLS with its trusted roots, TCP settings) aimed at
/// `address`.
pub(super) fn at(template: &ConnectionInfo, address: &Address) -> ConnectionInfo {
    let (host, port) = (address.host.clone(), address.port);
    let addr = match template.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    template.clone().set_addr(addr)
}

/// The CA certificate `redis.tls_ca` names, read from its file.
fn certificate_authority(settings: &RedisSettings) -> Result<Option<Vec<u8>>, RedisError> {
    let Some(path) = &settings.tls_ca else {
        return Ok(None);
    };
    std::fs::read(path).map(Some).map_err(|e| {
        let text = format!("redis.tls_ca {}: {e}", path.display());
        RedisError::from((redis::ErrorKind::InvalidClientConfig, "", text))
    })
}

/// The certificates that trust `ca`.
fn trusted(ca: &[u8]) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    }
}

/// `info`, trusting `ca` (when given) if it speaks TLS.
pub(super) fn trusting(
    info: ConnectionInfo,
    ca: Option<&[u8]>,
) -> Result<ConnectionInfo, RedisError> {
    match ca {
        Some(ca) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) => {
            let client = redis::Client::build_with_tls(info, trusted(ca))?;
            Ok(client.get_connection_info().clone())
        }
        _ => Ok(info),
    }
}

impl Connection {
    /// A connection to the one node at `url`, made lazily (Redis may be down now); each reply
    /// waits at most `response_timeout`.
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, RedisError> {
        let settings = RedisSettings {
            url: super::RedisUrl::new(url),
            connect_timeout,
            ..RedisSettings::default()
        };
        Self::open(&settings, response_timeout)
    }

    /// A connection to the deployment `settings` describe (one node, Sentinel or Cluster),
    /// made lazily: Redis may be down now, and only settings that cannot work are an error.
    pub fn open(settings: &RedisSettings, response_timeout: Duration) -> Result<Self, RedisError> {
        let invalid = |e: String| RedisError::from((redis::ErrorKind::InvalidClientConfig, "", e));
        let user_timeout = (response_timeout * 4).max(Duration::from_secs(5));
        let ca = certificate_authority(settings)?;
        let template = settings
            .url
            .expose()
            .into_connection_info()?
            .set_tcp_settings(tcp_settings(user_timeout));
        let template = trusting(template, ca.as_deref())?;
        let connect_timeout = settings.connect_timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let (target, current) = match settings.topology().map_err(invalid)? {
            Topology::Node => {
                let client = redis::Client::open(template)?;
                let manager =
                    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
                let link = Link::Node {
                    client: Box::new(client),
                    manager,
                    primary: None,
                };
                (Target::Node, Some(Arc::new(link)))
            }
            Topology::Sentinel { sentinels, master } => {
                let timeouts = (connect_timeout, response_timeout);
                let s = Sentinels::new(settings, &sentinels, master, template, timeouts)?
                    .trusting(ca.as_deref())?;
                (Target::Sentinel(s), None)
            }
            Topology::Cluster { nodes } => {
                let infos: Vec<_> = nodes.iter().map(|a| at(&template, a)).collect();
                let subscribers = infos
                    .iter()
                    .map(|i| redis::Client::open(i.clone()))
                    .collect::<Result<_, _>>()?;
                let tls = matches!(template.addr(), ConnectionAddr::TcpTls { .. });
                let mut builder = ClusterClientBuilder::new(infos)
                    .tcp_settings(tcp_settings(user_timeout))
                    .retries(1)
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout);
                if let Some(ca) = ca.as_deref().filter(|_| tls) {
                    builder = builder.certs(trusted(ca));
                }
                let client = builder.build()?;
                let route = Route::with_key(settings.prefix.as_bytes(), SlotAddr::Master);
                let target = Target::Cluster {
                    client,
                    route,
                    nodes: subscribers,
                    next: AtomicU32::new(0),
                };
                (target, None)
            }
        };
        let shared = Arc::new(Shared {
            target,
            config,
            connect_timeout,
            response_timeout,
            current: ArcSwapOption::new(current),
            resolving: tokio::sync::Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            watching: AtomicBool::new(false),
            timeouts: AtomicU32::new(0),
            replaced: AtomicU32::new(0),
            health: Health::default(),
        });
        let connection = Connection {
            shared,
            pinned: None,
        };
        if matches!(connection.shared.target, Target::Cluster { .. }) {
            connection
                .shared
                .current
                .store(Some(Arc::new(connection.cluster_link())));
        }
        Ok(connection)
    }

    /// A handle whose requests all go over the link in use now, even if the primary changes
    /// meanwhile: a write and the `WAIT` that confirms it must reach the same node.
    pub async fn pinned(&self) -> Result<Connection, RedisError> {
        Ok(Connection {
            shared: self.shared.clone(),
            pinned: Some(self.link().await?),
        })
    }

    /// A client for a subscription (which needs a connection of its own): the node's, the
    /// primary's, or one cluster node's in turn.
    pub async fn subscriber(&self) -> Result<redis::Client, RedisError> {
        if let Target::Cluster { nodes, next, .. } = &self.shared.target {
            let n = next.fetch_add(1, Ordering::Relaxed) as usize;
            return Ok(nodes[n % nodes.len()].clone());
        }
        match &*self.link().await? {
            Link::Node { client, .. } => Ok((**client).clone()),
            Link::Cluster { .. } => unreachable!("cluster links only on a cluster target"),
        }
    }

    /// The health recorded outcomes give.
    pub fn health(&self) -> &Health {
        &self.shared.health
    }

    /// How many times the connection was replaced since start-up (after timeouts, or to
    /// follow a new primary).
    pub fn replaced(&self) -> u32 {
        self.shared.replaced.load(Ordering::Relaxed)
    }

    /// The primary's address, when the sentinels named it.
    fn primary(&self) -> Option<Address> {
        match self.shared.current.load().as_deref() {
            Some(Link::Node {
                primary: Some(a), ..
            }) => Some(a.clone()),
            _ => None,
        }
    }

    /// The link requests go over: looked up from the sentinels the first time.
    async fn link(&self) -> Result<Arc<Link>, RedisError> {
        if let Some(link) = &self.pinned {
            return Ok(link.clone());
        }
        if let Some(link) = self.shared.current.load_full() {
            return Ok(link);
        }
        self.resolve().await
    }

    fn cluster_link(&self) -> Link {
        let Target::Cluster { client, route, .. } = &self.shared.target else {
            unreachable!("a cluster link for a cluster target only");
        };
        let config = ClusterConfig::new()
            .set_connection_timeout(self.shared.connect_timeout)
            .set_response_timeout(self.shared.response_timeout);
        Link::Cluster {
            connection: client.get_pending_async_connection_with_config(config),
            route: *route,
        }
    }

    /// A link to the primary at `address` (named by the sentinels).
    fn primary_link(&self, sentinels: &Sentinels, address: Address) -> Result<Link, RedisError> {
        let client = redis::Client::open(sentinels.node(&address))?;
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), self.shared.config.clone())?;
        Ok(Link::Node {
            client: Box::new(client),
            manager,
            primary: Some(address),
        })
    }

    /// Asks the sentinels where the primary is, when no link is known yet.
    async fn resolve(&self) -> Result<Arc<Link>, RedisError> {
        let Target::Sentinel(sentinels) = &self.shared.target else {
            unreachable!("only a Sentinel target starts without a link");
        };
        let mut failed = self.shared.resolving.lock().await;
        if let Some(link) = self.shared.current.load_full() {
            return Ok(link);
        }
        if let Some((at, why)) = &*failed
            && at.elapsed() < super::sentinel::POLL
        {
            return Err(super::sentinel::failure(why.clone()));
        }
        let address = match sentinels.primary().await {
            Ok(address) => address,
            Err(e) => {
                *failed = Some((std::time::Instant::now(), e.to_string()));
                return Err(e);
            }
        };
        let link = Arc::new(self.primary_link(sentinels, address)?);
        self.shared.current.store(Some(link.clone()));
        self.watch();
        Ok(link)
    }

    /// Starts the task that follows the primary (once; it ends with the connection).
    fn watch(&self) {
        if self.shared.watching.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            while let Some(shared) = weak.upgrade() {
                let _ = tokio::time::timeout(super::sentinel::POLL, shared.wake.notified()).await;
                let connection = Connection {
                    shared,
                    pinned: None,
                };
                connection.follow().await;
                drop(connection);
                // However often requests fail, the sentinels are asked at most this often.
                tokio::time::sleep(super::sentinel::POLL / 5).await;
            }
        });
    }

    /// Remakes the link when the sentinels name another primary, and that node says it is
    /// the primary (a sentinel that has not heard of a failover yet is not followed).
    async fn follow(&self) {
        let Target::Sentinel(sentinels) = &self.shared.target else {
            return;
        };
        let address = match sentinels.primary().await {
            Ok(address) => address,
            Err(e) => {
                tracing::debug!(error = %e, "no sentinel answered where the primary is");
                return;
            }
        };
        let known = self.primary();
        if known.as_ref() == Some(&address) {
            return;
        }
        if !sentinels.is_primary(&address).await {
            tracing::debug!(%address, "the sentinels name a primary that does not say it is one yet");
            return;
        }
        let _resolving = self.shared.resolving.lock().await;
        let Ok(link) = self.primary_link(sentinels, address.clone()) else {
            return;
        };
        self.shared.current.store(Some(Arc::new(link)));
        self.shared.timeouts.store(0, Ordering::Relaxed);
        self.shared.replaced.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            primary = %address,
            previous = %known.map_or("none".to_owned(), |a| a.to_string()),
            "the sentinels name a new Redis primary: following it"
        );
    }

    /// Records a reply or failure of a request sent over `used`. Redis' own refusals (out of
    /// memory, read-only) arrive as replies holding an error, so replies are looked into.
    fn record(&self, used: &Arc<Link>, result: Result<&[Value], &RedisError>) {
        let shared = &self.shared;
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
                    self.failed();
                }
            }
            Err(e) if e.is_timeout() => self.record_timeout(used),
            Err(e) => {
                if transient(e) {
                    self.failed();
                }
            }
        }
    }

    /// A transient failure: it counts against health, and the primary may have moved.
    fn failed(&self) {
        self.shared.health.record(false);
        if matches!(self.shared.target, Target::Sentinel(_)) {
            self.shared.wake.notify_one();
        }
    }

    /// Records a request over `used` that got no answer in time: redis-rs timed it out, or the
    /// caller's deadline ran out first and it was dropped unanswered.
    fn record_timeout(&self, used: &Arc<Link>) {
        self.failed();
        let timeouts = self.shared.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if timeouts >= TIMEOUTS_BEFORE_REPLACING {
            self.replace(used);
        }
    }

    /// Drops `used` for a new link to the same place, unless another request already did.
    fn replace(&self, used: &Arc<Link>) {
        let shared = &self.shared;
        let fresh = match &**used {
            Link::Node {
                client, primary, ..
            } => {
                let Ok(manager) = ConnectionManager::new_lazy_with_config(
                    (**client).clone(),
                    shared.config.clone(),
                ) else {
                    return;
                };
                Link::Node {
                    client: client.clone(),
                    manager,
                    primary: primary.clone(),
                }
            }
            Link::Cluster { .. } => self.cluster_link(),
        };
        let previous = shared
            .current
            .compare_and_swap(&Some(used.clone()), Some(Arc::new(fresh)));
        if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, used)) {
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
    used: Arc<Link>,
    answered: bool,
    started: std::time::Instant,
}

/// How long a request dropped unanswered must have waited to count as a timeout: a local
/// Redis answers in well under a millisecond, while a caller that gives up at once (a client
/// cancelling, a lost race) says nothing about the connection.
const DROPPED_AFTER: Duration = Duration::from_millis(100);

impl InFlight<'_> {
    fn finish(mut self, result: Result<&[Value], &RedisError>) {
        self.answered = true;
        self.connection.record(&self.used, result);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered && self.started.elapsed() >= DROPPED_AFTER {
            self.connection.record_timeout(&self.used);
        }
    }
}

impl Connection {
    async fn start(&self) -> Result<InFlight<'_>, RedisError> {
        let used = self.link().await.inspect_err(|e| {
            if transient(e) {
                self.shared.health.record(false);
            }
        })?;
        Ok(InFlight {
            connection: self,
            used,
            answered: false,
            started: std::time::Instant::now(),
        })
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let request = self.start().await?;
            let result = request.used.send(cmd).await;
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
            let request = self.start().await?;
            let result = request.used.send_all(pipeline, offset, count).await;
            request.finish(result.as_ref().map(Vec::as_slice));
            result
        })
    }

    fn get_db(&self) -> i64 {
        match self.shared.current.load().as_deref() {
            Some(Link::Node { manager, .. }) => manager.get_db(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(resp: &str) -> RedisError {
        match redis::parse_redis_value(resp.as_bytes()).unwrap() {
            Value::ServerError(e) => e.into(),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn only_whole_codes_of_an_unusable_redis_are_transient() {
        for unusable in [
            "-BUSY Redis is busy running a script\r\n",
            "-READONLY You can't write against a read only replica.\r\n",
            "-LOADING Redis is loading the dataset in memory\r\n",
            "-ERR Error running script: OOM command not allowed when used memory > 'maxmemory'\r\n",
        ] {
            assert!(transient(&server_error(unusable)), "{unusable}");
        }
        for answered in [
            "-BUSYGROUP Consumer Group name already exists\r\n",
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            "-NOSCRIPT No matching script\r\n",
        ] {
            assert!(!transient(&server_error(answered)), "{answered}");
        }
    }

    #[test]
    fn a_probe_refused_for_a_reason_of_its_own_counts_against_health() {
        let h = Health::default();
        for _ in 0..HEALTH_STREAK {
            h.probed(Ok(()));
        }
        assert!(h.serving());
        let refused = server_error("-NOAUTH Authentication required.\r\n");
        for _ in 0..HEALTH_STREAK {
            h.probed(Err(&refused));
        }
        assert!(!h.serving(), "writes fail: not serving");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_queued_behind_a_failed_sentinel_lookup_fail_without_asking_again() {
        // A "sentinel" that accepts connections and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU32::new(0));
        let counted = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::Relaxed);
                held.push(stream);
            }
        });
        let settings = RedisSettings {
            sentinels: vec![format!("127.0.0.1:{port}")],
            connect_timeout: Duration::from_millis(300),
            ..RedisSettings::default()
        };
        let connection = Connection::open(&settings, Duration::from_millis(300)).unwrap();
        let requests: Vec<_> = (0..10)
            .map(|_| {
                let mut c = connection.clone();
                tokio::spawn(async move {
                    let ping = redis::cmd("PING");
                    let answer = ping.query_async::<String>(&mut c);
                    tokio::time::timeout(Duration::from_secs(10), answer).await
                })
            })
            .collect();
        for request in requests {
            let answer = request
                .await
                .unwrap()
                .expect("answered within the hang guard");
            assert!(answer.is_err(), "no primary: every request fails");
        }
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            1,
            "one lookup for the ten requests"
        );
    }

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
