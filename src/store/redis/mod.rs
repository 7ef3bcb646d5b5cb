//! The Redis backend. Every key is under one configurable prefix; the default prefix is a hash
//! tag (`{moderation}:`), so a submission's keys share one hash slot and the same scripts run on
//! Redis Cluster. Layout (see the README for portal developers):
//!
//! | key | type | content |
//! |---|---|---|
//! | `<prefix>comment:<id>` | hash | the comment, its state, scores, reasons, timestamps |
//! | `<prefix>accepted` | stream | accepted comments, for the portal to publish (consumer group) |
//! | `<prefix>flagged` | sorted set | ids waiting for a moderator, scored by arrival (ms) |
//! | `<prefix>rejected` | stream | rejected comments, trimmed to the retention |
//! | `<prefix>idem:<key>` | hash | fingerprint and answer of a submission, for retries |
//! | `<prefix>flagged:article:<id>`, `<prefix>flagged:reason:<code>` | sorted sets | the flagged set by article and by reason |
//! | `<prefix>history:<id>` | list | what happened to a comment (JSON events) |
//! | `<prefix>stats:author:<hash>`, `<prefix>stats:ip:<ip>` | hashes | accepted and rejected counts |
//! | `<prefix>feedback` | stream | moderators' decisions as labeled examples |
//! | `<prefix>removed` | stream | published comments rejected after a report, to take down |
//!
//! One file per port: `submissions.rs` (one Lua script per submission), `review.rs`,
//! `settings.rs`, `captcha.rs`, `limits.rs`, `feed.rs`; `connection.rs` is the shared
//! connection and `import.rs` fills a prefix from the embedded store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod captcha;
mod connection;
mod feed;
mod import;
mod limits;
mod readers;
mod review;
mod sentinel;
mod settings;
mod submissions;

pub use captcha::RedisChallenges;
pub use connection::{Connection, Health};
pub use import::Imported;
pub use limits::RedisCounters;
pub(crate) use submissions::read_comment;

use super::{StoreError, StoredComment};
use crate::comment::{CommentId, IdempotencyKey};
use crate::secret::Secret;

/// A Redis URL. It may hold a password, so it never prints in full: `Display` and `Debug`
/// replace the password with `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        RedisUrl(url.into())
    }

    /// The full URL, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        // scheme://[user][:password]@host...: hide what is between the first ':' after the
        // scheme and the '@'.
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "<unparsable Redis URL>".to_owned();
        };
        match rest.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
                format!("{scheme}://{user}:***@{host}")
            }
            None => self.0.clone(),
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

/// Settings of the Redis backend (section `[redis]` of the configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// Where Redis is. With `sentinels` or `cluster_nodes`, only its credentials, database
    /// and TLS (`rediss://`) are used, for every data node; its host and port are not.
    pub url: RedisUrl,
    /// Sentinels watching the primary (`"host:port"`). Given, the service asks them where the
    /// primary is and follows a failover without a restart.
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> ...`).
    pub sentinel_master: String,
    /// The sentinels' own user, when they ask for one (`sentinel sentinel-user`).
    pub sentinel_username: Option<String>,
    /// The sentinels' own password (`requirepass` in sentinel.conf), when they ask for one.
    pub sentinel_password: Option<Secret>,
    /// Whether the sentinels speak TLS.
    pub sentinel_tls: bool,
    /// A PEM file of the certificate authority that signed the Redis nodes' and sentinels'
    /// certificates, for TLS (`rediss://`, `sentinel_tls`) with a private CA; without it the
    /// system's roots are trusted.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Nodes of a Redis Cluster to discover it from (`"host:port"`). Every key of a
    /// deployment is in the prefix's hash slot, so one primary serves them all.
    pub cluster_nodes: Vec<String>,
    /// Prefix of every key. Keep a hash tag (`{...}`) in it for Redis Cluster.
    pub prefix: String,
    /// Consumer group created on the accepted stream at start-up, so that comments accepted
    /// before the portal first connects are waiting for it.
    pub consumer_group: String,
    /// How long a submission's answer is kept for retries.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// Accepted stream entries older than this are trimmed: the portal must consume within it.
    #[serde(with = "humantime_serde")]
    pub accepted_retention: Duration,
    /// Rejected stream entries (the audit log) older than this are trimmed.
    #[serde(with = "humantime_serde")]
    pub rejected_retention: Duration,
    /// How long accepted and rejected comment records are kept (pending ones stay until
    /// decided).
    #[serde(with = "humantime_serde")]
    pub comment_retention: Duration,
    /// How long moderators' decisions are kept as labeled examples for retraining.
    #[serde(with = "humantime_serde")]
    pub feedback_retention: Duration,
    /// Longest wait for a connection to Redis.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// What an ACCEPTED answer waits for: see [`Durability`].
    pub durability: Durability,
    /// Replicas that must have the write before an answer is given (`WAIT`; with
    /// `durability = "fsync"`, replicas that fsynced it, `WAITAOF`). 0: none. With 1 and a
    /// Sentinel or managed failover, a comment answered ACCEPTED is on a replica that can take
    /// over; if none confirms within the request's deadline the answer is UNAVAILABLE (the
    /// comment may be stored: a retry with the same key gets it once confirmed).
    pub min_replicas_acked: u32,
}

/// How the service reaches Redis, as the settings say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// The one node `url` names.
    Node,
    /// The primary the sentinels name.
    Sentinel {
        /// The sentinels, asked in turn.
        sentinels: Vec<Address>,
        /// The monitored name.
        master: String,
    },
    /// A Redis Cluster, found from these nodes.
    Cluster {
        /// Nodes to start from.
        nodes: Vec<Address>,
    },
}

/// A node's `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// Host name or IP (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Address {
    /// Parses `host:port` (`[v6]:port` for IPv6).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not host:port");
        let (host, port) = text.trim().rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Address {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl RedisSettings {
    /// The topology the settings describe, or what is wrong with them (naming the setting).
    pub fn topology(&self) -> Result<Topology, String> {
        let parse = |name: &str, list: &[String]| {
            list.iter()
                .map(|a| Address::parse(a).map_err(|e| format!("redis.{name}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        match (self.sentinels.is_empty(), self.cluster_nodes.is_empty()) {
            (true, true) => Ok(Topology::Node),
            (false, false) => {
                Err("redis.sentinels and redis.cluster_nodes exclude each other".to_owned())
            }
            (false, true) if self.sentinel_master.trim().is_empty() => {
                Err("redis.sentinel_master must name the monitored primary".to_owned())
            }
            (false, true) => Ok(Topology::Sentinel {
                sentinels: parse("sentinels", &self.sentinels)?,
                master: self.sentinel_master.trim().to_owned(),
            }),
            (true, false) if !has_hash_tag(&self.prefix) => Err(format!(
                "redis.prefix {:?} must hold a hash tag such as {{moderation}}: with redis.cluster_nodes (a submission's keys must share one slot)",
                self.prefix
            )),
            (true, false) => Ok(Topology::Cluster {
                nodes: parse("cluster_nodes", &self.cluster_nodes)?,
            }),
        }
    }

    /// These settings aimed at the single node `url` (for a copy target or a limiter's own
    /// Redis, which are given as a URL).
    pub fn single_node(self, url: RedisUrl) -> Self {
        RedisSettings {
            url,
            sentinels: Vec::new(),
            cluster_nodes: Vec::new(),
            ..self
        }
    }
}

/// Whether `prefix` holds a non-empty `{...}` hash tag (Redis Cluster hashes only that part).
fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .is_some_and(|(tag, _)| !tag.is_empty())
}

fn not_replicated(acked: u64, wanted: u32) -> StoreError {
    StoreError::Unavailable(format!(
        "{acked} of the {wanted} replicas redis.min_replicas_acked asks for confirmed the write in time"
    ))
}

/// What a stored submission's answer waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Redis' reply: the comment is in Redis' memory, and on disk as its persistence settings
    /// say (`appendfsync everysec`: within a second; none: never). The README's table says
    /// what each loses.
    #[default]
    AsConfigured,
    /// Redis' confirmation (`WAITAOF 1 0`, Redis ≥ 7.2) that the write is fsynced to its
    /// append-only file before answering. Needs `appendonly yes`; with `appendfsync always`
    /// the confirmation comes at once, with `everysec` every answer waits for the next fsync.
    Fsync,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: RedisUrl::new("redis://127.0.0.1:6379"),
            sentinels: Vec::new(),
            sentinel_master: "mymaster".to_owned(),
            sentinel_username: None,
            sentinel_password: None,
            sentinel_tls: false,
            tls_ca: None,
            cluster_nodes: Vec::new(),
            prefix: "{moderation}:".to_owned(),
            consumer_group: "portal".to_owned(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            accepted_retention: Duration::from_secs(7 * 24 * 3600),
            rejected_retention: Duration::from_secs(30 * 24 * 3600),
            comment_retention: Duration::from_secs(90 * 24 * 3600),
            feedback_retention: Duration::from_secs(365 * 24 * 3600),
            connect_timeout: Duration::from_millis(500),
            durability: Durability::AsConfigured,
            min_replicas_acked: 0,
        }
    }
}

/// Lua shared by the scripts that append to the streams: trimming cut-offs are taken from
/// Redis' own clock, as stream ids are (an instance whose clock is off trims nothing it should
/// not), and the accepted stream gets the portal's consumer group back if Redis lost it (it
/// restarted empty), so the portal never meets NOGROUP.
pub(super) const STREAM_HELPERS: &str = r#"
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function minid(retention_ms)
  return string.format('%.0f', math.max(0, now_ms - tonumber(retention_ms))) .. '-0'
end
local function ensure_group(stream, group)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  end
end
"#;

/// The spans tallies are kept by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tally {
    Minute,
    Hour,
}

/// The Redis backend.
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    /// The longest a confirmation (WAIT, WAITAOF) may block: half a request's deadline.
    wait_ms: u64,
    settings: RedisSettings,
    scripts: Arc<Scripts>,
}

/// The Lua scripts, hashed once.
struct Scripts {
    submit: redis::Script,
    claim: redis::Script,
    decide: redis::Script,
    report: redis::Script,
    update_settings: redis::Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.settings.url)
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

/// Classifies a Redis error at the boundary: what Redis reports about itself is transient
/// (connection refused or reset, timeouts, LOADING, READONLY, BUSY, OOM, too many clients), and
/// the portal may retry; answers of the wrong shape, values of the wrong type, and errors
/// raised inside our scripts mean the data or the code is broken, and retrying cannot help.
fn classify(error: redis::RedisError) -> StoreError {
    let broken = match error.kind() {
        redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse => true,
        _ if error.code() == Some("WRONGTYPE") => true,
        redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => error
            .detail()
            .is_some_and(|d| d.contains("user_script") || d.contains("script")),
        _ => false,
    };
    if broken {
        StoreError::Corrupt(error.to_string())
    } else {
        StoreError::Unavailable(error.to_string())
    }
}

/// A field of a stream entry as text; empty when absent.
fn entry_text(entry: &redis::streams::StreamId, name: &str) -> String {
    entry
        .map
        .get(name)
        .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
        .unwrap_or_default()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisStore {
    /// A store for `settings`. Connects lazily and reconnects by itself, so it can be built
    /// while Redis is down; only a malformed URL is an error.
    pub fn new(settings: RedisSettings, request_timeout: Duration) -> Result<Self, StoreError> {
        let connection = Connection::open(&settings, request_timeout).map_err(|e| {
            StoreError::Unavailable(format!("bad Redis settings ({}): {e}", settings.url))
        })?;
        Ok(RedisStore {
            connection,
            // Half the deadline: the reply ("0 of 1 replicas") then comes before redis-rs
            // or the caller gives up, and a lagging replica is not taken for a dead
            // connection.
            wait_ms: (millis(request_timeout) / 2).max(1),
            settings,
            scripts: Arc::new(Scripts {
                submit: redis::Script::new(&format!(
                    "{STREAM_HELPERS}{}{}",
                    limits::GCRA,
                    submissions::SUBMIT
                )),
                claim: redis::Script::new(review::CLAIM),
                decide: redis::Script::new(&format!("{STREAM_HELPERS}{}", review::DECIDE)),
                report: redis::Script::new(review::REPORT),
                update_settings: redis::Script::new(settings::UPDATE),
            }),
        })
    }

    /// Whether recent requests and probes succeed (see [`Health`]): what the health service
    /// reports.
    pub fn serving(&self) -> bool {
        self.connection.health().serving()
    }

    /// The settings in force.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// A key under the prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.prefix)
    }

    fn counter_key(&self, cell: &crate::rate_limit::cluster::Cell) -> String {
        limits::counter_key(&self.settings.prefix, cell)
    }

    /// `<prefix><kind><name>`, built in one allocation (a submission names a dozen keys).
    fn named(&self, kind: &str, name: impl fmt::Display) -> String {
        use fmt::Write as _;
        let prefix = &self.settings.prefix;
        let mut key = String::with_capacity(prefix.len() + kind.len() + 40);
        key.push_str(prefix);
        key.push_str(kind);
        let _ = write!(key, "{name}");
        key
    }

    fn comment_key(&self, id: CommentId) -> String {
        self.named("comment:", id)
    }

    fn history_key(&self, id: CommentId) -> String {
        self.named("history:", id)
    }

    /// Counts of a reader's comments, under their id.
    fn author_stats_key(&self, reader: &str) -> String {
        self.named("stats:author:", reader)
    }

    /// A subscription of its own (a connection apart from the multiplexed one) to `channel`.
    async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<impl tokio_stream::Stream<Item = redis::Msg> + Send + use<>, StoreError> {
        let mut pubsub = self
            .connection
            .subscriber()
            .await
            .map_err(classify)?
            .get_async_pubsub()
            .await
            .map_err(classify)?;
        pubsub.subscribe(channel).await.map_err(classify)?;
        Ok(pubsub.into_on_message())
    }

    /// The comments `ids` in one round trip, each `None` when it is no longer stored.
    async fn comments(&self, ids: &[CommentId]) -> Result<Vec<Option<StoredComment>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.comment_key(*id));
        }
        let hashes: Vec<std::collections::HashMap<String, String>> = pipe
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        ids.iter()
            .zip(hashes)
            .map(|(id, hash)| match hash.is_empty() {
                true => Ok(None),
                false => read_comment(*id, &hash).map(Some),
            })
            .collect()
    }

    /// Where stored texts' fingerprints are published for other instances.
    fn campaigns_channel(&self) -> String {
        self.key("campaigns")
    }

    /// A reader's latest comments: a sorted set of ids by arrival.
    fn reader_index_key(&self, reader: &str) -> String {
        self.named("reader:", format_args!("{reader}:comments"))
    }

    fn ip_stats_key(&self, ip: &str) -> String {
        self.named("stats:ip:", ip)
    }

    fn article_index_key(&self, article: &str) -> String {
        self.named("flagged:article:", article)
    }

    fn reason_index_key(&self, code: &str) -> String {
        self.named("flagged:reason:", code)
    }

    /// The tallies (counts by name) of the minute or hour that `at_ms` falls in; kept 26 hours.
    fn tally_key(&self, span: Tally, at_ms: i64) -> String {
        match span {
            Tally::Minute => self.named("tally:m:", at_ms.div_euclid(60_000)),
            Tally::Hour => self.named("tally:h:", at_ms.div_euclid(3_600_000)),
        }
    }

    fn idempotency_key(&self, key: &IdempotencyKey) -> String {
        self.named("idem:", key)
    }

    /// With [`Durability::Fsync`], waits until Redis confirms that `connection`'s writes
    /// (sent over it: a pinned one, so they reached this node) are fsynced to its append-only file (`WAITAOF 1 0`); at once otherwise. The caller's
    /// deadline bounds the wait.
    async fn confirm_durable(&self, connection: &mut Connection) -> Result<(), StoreError> {
        let replicas = self.settings.min_replicas_acked;
        if self.settings.durability != Durability::Fsync {
            return self.confirm_replicated(connection, replicas).await;
        }
        let (local, acked): (u64, u64) = redis::cmd("WAITAOF")
            .arg(1)
            .arg(replicas)
            .arg(self.wait_ms)
            .query_async(connection)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "Redis cannot confirm fsyncs (redis.durability = \"fsync\" needs Redis 7.2 or later with appendonly yes): {e}"
                ))
            })?;
        if local < 1 {
            return Err(StoreError::Unavailable(
                "Redis did not confirm the fsync".to_owned(),
            ));
        }
        if acked < u64::from(replicas) {
            return Err(not_replicated(acked, replicas));
        }
        Ok(())
    }

    /// Waits (`WAIT`) until `replicas` replicas have the write, within the request's time.
    async fn confirm_replicated(
        &self,
        connection: &mut Connection,
        replicas: u32,
    ) -> Result<(), StoreError> {
        if replicas == 0 {
            return Ok(());
        }
        let acked: u64 = redis::cmd("WAIT")
            .arg(replicas)
            .arg(self.wait_ms)
            .query_async(connection)
            .await
            .map_err(classify)?;
        if acked < u64::from(replicas) {
            return Err(not_replicated(acked, replicas));
        }
        Ok(())
    }

    /// What Redis keeps on disk, as one sentence for the start-up log, and whether it is
    /// nothing at all. `None` when Redis does not let its configuration be read (managed
    /// offerings often rename `CONFIG`).
    pub async fn persistence(&self) -> Option<(String, bool)> {
        let config: std::collections::HashMap<String, String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .arg("appendfsync")
            .arg("save")
            .query_async(&mut self.connection())
            .await
            .ok()?;
        let field = |k: &str| config.get(k).map_or("", String::as_str);
        let aof = field("appendonly") == "yes";
        let snapshots = !field("save").trim().is_empty();
        let sentence = match (aof, field("appendfsync"), snapshots) {
            (true, "always", _) => {
                "append-only file fsynced on every write: an acknowledged comment survives a host crash".to_owned()
            }
            (true, "everysec", _) => {
                "append-only file fsynced every second: a host crash can lose the last second of acknowledged comments (redis.durability = \"fsync\" waits for the fsync)".to_owned()
            }
            (true, other, _) => format!(
                "append-only file, appendfsync {other}: a host crash can lose what the OS had not written"
            ),
            (false, _, true) => format!(
                "snapshots only (save {}): a crash loses everything since the last snapshot",
                field("save")
            ),
            (false, _, false) => {
                "nothing on disk (appendonly no, save \"\"): a Redis restart loses every stored comment; see README, Durability".to_owned()
            }
        };
        Some((sentence, !aof && !snapshots))
    }

    /// A connection handle (cheap to clone; shares one multiplexed connection).
    pub fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// Creates the accepted stream and its consumer group if they do not exist yet.
    pub async fn ensure_consumer_group(&self) -> Result<(), StoreError> {
        let result: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.key("accepted"))
            .arg(&self.settings.consumer_group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.connection())
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topology_is_read_from_the_settings_and_mistakes_are_named() {
        let base = RedisSettings::default();
        assert_eq!(base.topology(), Ok(Topology::Node));
        let sentinel = RedisSettings {
            sentinels: vec!["10.0.0.5:26379".into(), "[::1]:26380".into()],
            ..base.clone()
        };
        let Ok(Topology::Sentinel { sentinels, master }) = sentinel.topology() else {
            panic!("sentinels given: {:?}", sentinel.topology());
        };
        assert_eq!(master, "mymaster");
        assert_eq!(sentinels[1].host, "::1");
        assert_eq!(sentinels[1].to_string(), "[::1]:26380");
        let no_port = RedisSettings {
            sentinels: vec!["10.0.0.5".into()],
            ..base.clone()
        };
        assert!(no_port.topology().unwrap_err().contains("redis.sentinels"));
        let unnamed = RedisSettings {
            sentinel_master: " ".into(),
            ..sentinel.clone()
        };
        assert!(unnamed.topology().unwrap_err().contains("sentinel_master"));
        let both = RedisSettings {
            cluster_nodes: vec!["10.0.0.9:6379".into()],
            ..sentinel
        };
        assert!(both.topology().unwrap_err().contains("exclude"));
        let cluster = RedisSettings {
            cluster_nodes: vec!["10.0.0.9:6379".into()],
            ..base.clone()
        };
        assert!(matches!(cluster.topology(), Ok(Topology::Cluster { nodes }) if nodes.len() == 1));
        for prefix in ["moderation:", "{}:", "{open:"] {
            let untagged = RedisSettings {
                prefix: prefix.into(),
                ..cluster.clone()
            };
            assert!(
                untagged.topology().unwrap_err().contains("hash tag"),
                "{prefix}"
            );
        }
        let single = cluster.single_node(RedisUrl::new("redis://10.0.0.1"));
        assert_eq!(single.topology(), Ok(Topology::Node));
    }

    #[test]
    fn redis_urls_never_print_their_password() {
        let url = RedisUrl::new("redis://user:s3cret@db.internal:6380/2");
        assert_eq!(url.to_string(), "redis://user:***@db.internal:6380/2");
        assert!(!format!("{url:?}").contains("s3cret"));
        let bare = RedisUrl::new("redis://:s3cret@db.internal");
        assert!(!bare.to_string().contains("s3cret"));
        assert_eq!(
            RedisUrl::new("redis://127.0.0.1:6379").to_string(),
            "redis://127.0.0.1:6379"
        );
    }
}
