//! The rate-limit stage: whether this reader, address, article and the service as a whole may
//! post another comment now.
//!
//! Two tiers ([`TwoTier`]): an in-process flood gate ([`local`], governor) that turns floods
//! away without touching the shared counters (a refused request is only looked up, so that a
//! retry of a stored submission still gets its first answer; the gate is charged for that
//! retry, which its headroom allows for), then the cluster-wide limiter ([`cluster`], GCRA) that every
//! instance shares and that decides. A request is charged only when all its buckets admit it; a
//! refused request uses nobody's quota. When the counters are in the submissions' store (the
//! default), they are tested and charged in the same atomic call that stores the submission,
//! so a submission makes one storage round trip; when `rate_limit.redis_url` names a Redis of
//! their own, the cluster limiter makes its own call, and when that Redis cannot be reached the
//! configured policy decides within the request's deadline: `fail_open` (the flood gate alone)
//! or `fail_closed` (UNAVAILABLE).

pub mod cluster;
pub mod local;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use sha2::Sha256;

use crate::comment::NewComment;
use crate::store::redis::RedisUrl;

/// Why a comment was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A bucket is empty: the request may be retried after `retry_after`.
    #[error("rate limit {bucket} exceeded; retry in {retry_after:?}")]
    Limited {
        /// The bucket that refused (`ip`, `email`, `article`, `global`).
        bucket: String,
        /// How long until the request would be admitted.
        retry_after: Duration,
    },
    /// The shared limiter cannot be reached and the policy is to refuse.
    #[error("the rate limiter is unavailable: {0}")]
    Unavailable(String),
}

/// What the rate limiter left to the storage step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Decided and charged already (or nothing limits this comment).
    Admitted,
    /// The flood gate let it through; these cells are tested and charged, all or nothing, in
    /// the same atomic call that stores the submission, and [`RateLimiter::settle`] reads the
    /// answer.
    Charge(Vec<cluster::Cell>),
}

/// Admits or refuses a comment; a refused comment uses no quota.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Refuses `comment`, admits and charges it, or says which cells to charge with it;
    /// decides by `deadline`.
    async fn admit(&self, comment: &NewComment, deadline: Instant)
    -> Result<Admit, RateLimitError>;

    /// Whether [`RateLimiter::admit`] charges counters of its own (not in the submissions'
    /// store): then a retry is answered from storage first, so it is not charged again.
    fn charges_separately(&self) -> bool;

    /// What the storage step found for the cells of [`Admit::Charge`]: counted, and a refusal
    /// as the error.
    fn settle(
        &self,
        cells: &[cluster::Cell],
        charged: cluster::Charged,
    ) -> Result<(), RateLimitError>;
}

/// Rate limiting switched off in configuration: admits everything, counts nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Off;

#[async_trait]
impl RateLimiter for Off {
    async fn admit(
        &self,
        _comment: &NewComment,
        _deadline: Instant,
    ) -> Result<Admit, RateLimitError> {
        Ok(Admit::Admitted)
    }

    fn charges_separately(&self) -> bool {
        false
    }

    fn settle(&self, _: &[cluster::Cell], _: cluster::Charged) -> Result<(), RateLimitError> {
        Ok(())
    }
}

/// The kinds of bucket a comment is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// The author's e-mail address (by keyed hash).
    Email,
    /// The client's IP address (IPv6 by /64).
    Ip,
    /// The article.
    Article,
    /// The whole service.
    Global,
}

impl Bucket {
    /// Every kind, most specific first (the order the flood gate checks them in).
    pub const ALL: [Bucket; 4] = [Bucket::Email, Bucket::Ip, Bucket::Article, Bucket::Global];

    /// The name used in configuration, errors and Redis keys.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Email => "email",
            Bucket::Ip => "ip",
            Bucket::Article => "article",
            Bucket::Global => "global",
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One bucket's quota: `rate` comments per `per`, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Comments admitted per `per` in the long run.
    pub rate: u32,
    /// The period of `rate`.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    /// Comments admitted at once after a quiet spell (at least 1).
    pub burst: u32,
    /// Count what this bucket would refuse without refusing (to roll a new limit out).
    #[serde(default)]
    pub shadow: bool,
}

impl Quota {
    /// Time between two admissions in the long run.
    pub fn interval(&self) -> Duration {
        self.per / self.rate.max(1)
    }
}

/// The buckets in force; a bucket left out does not limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Buckets {
    /// Per client IP (IPv6 addresses grouped by /64).
    pub ip: Option<Quota>,
    /// Per author e-mail address.
    pub email: Option<Quota>,
    /// Per article.
    pub article: Option<Quota>,
    /// For the whole service.
    pub global: Option<Quota>,
}

impl Buckets {
    /// The quota of `bucket`, if it limits.
    pub fn get(&self, bucket: Bucket) -> Option<&Quota> {
        match bucket {
            Bucket::Email => self.email.as_ref(),
            Bucket::Ip => self.ip.as_ref(),
            Bucket::Article => self.article.as_ref(),
            Bucket::Global => self.global.as_ref(),
        }
    }
}

/// What to do when the cluster limiter cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Admit what the in-process flood gate admits.
    #[default]
    FailOpen,
    /// Refuse with UNAVAILABLE.
    FailClosed,
}

/// `[rate_limit]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Rate limiting on or off.
    pub enabled: bool,
    /// When the cluster limiter cannot be reached.
    pub failure_policy: FailurePolicy,
    /// Longest wait for the cluster limiter before the failure policy decides.
    #[serde(with = "humantime_serde")]
    pub cluster_timeout: Duration,
    /// How much looser than the quotas the in-process flood gate is: it only turns away what
    /// exceeds a quota by this factor on one instance, and is the only limit under
    /// `fail_open`.
    pub local_headroom: f64,
    /// The cluster limiter's Redis, if not the one in `[redis]`.
    pub redis_url: Option<RedisUrl>,
    /// Key of the keyed hash (HMAC-SHA256) under which e-mail addresses are counted, so they
    /// are never stored in clear; the same on every instance. Required for the e-mail bucket.
    pub email_hash_key: Option<Secret>,
    /// Addresses and networks (e.g. the newsroom) that skip the IP bucket.
    pub allow_ips: Vec<String>,
    /// The quotas.
    pub buckets: Buckets,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: false,
            failure_policy: FailurePolicy::FailOpen,
            cluster_timeout: Duration::from_millis(200),
            local_headroom: 2.0,
            redis_url: None,
            email_hash_key: None,
            allow_ips: Vec::new(),
            buckets: Buckets::default(),
        }
    }
}

impl RateLimitSettings {
    /// Every problem with these settings, as (setting, description).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for bucket in Bucket::ALL {
            if let Some(q) = self.buckets.get(bucket) {
                let name = format!("rate_limit.buckets.{bucket}");
                if q.rate == 0 {
                    problems.push((format!("{name}.rate"), "must be at least 1".into()));
                }
                if q.burst == 0 {
                    problems.push((format!("{name}.burst"), "must be at least 1".into()));
                }
                if q.per.is_zero() {
                    problems.push((format!("{name}.per"), "must be more than 0".into()));
                }
            }
        }
        if self.buckets.email.is_some() && self.email_hash_key.is_none() && self.enabled {
            problems.push((
                "rate_limit.email_hash_key".into(),
                "is required for the email bucket (the same secret on every instance)".into(),
            ));
        }
        // Written so that NaN is refused too.
        if self.local_headroom.is_nan() || self.local_headroom < 1.0 {
            problems.push((
                "rate_limit.local_headroom".into(),
                "must be at least 1".into(),
            ));
        }
        for entry in &self.allow_ips {
            if parse_network(entry).is_none() {
                problems.push((
                    "rate_limit.allow_ips".into(),
                    format!("{entry:?} is not an IP address or network"),
                ));
            }
        }
        problems
    }
}

/// An address ("203.0.113.5") or a network ("10.0.0.0/8").
fn parse_network(entry: &str) -> Option<ipnet::IpNet> {
    entry
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

/// What a comment is charged to: each limiting bucket with the key of this comment in it.
#[derive(Clone, Debug)]
pub struct Charges {
    /// (bucket, key) pairs, most specific first.
    pub items: Vec<(Bucket, String)>,
}

/// Works out the bucket keys of comments.
#[derive(Clone)]
pub struct Keys {
    buckets: Buckets,
    allow: Vec<ipnet::IpNet>,
    email_key: Option<Hmac<Sha256>>,
}

impl Keys {
    /// Keys for `settings` (assumed checked).
    pub fn new(settings: &RateLimitSettings) -> Self {
        Keys {
            buckets: settings.buckets.clone(),
            allow: settings
                .allow_ips
                .iter()
                .filter_map(|e| parse_network(e))
                .collect(),
            email_key: settings
                .email_hash_key
                .as_ref()
                .and_then(|k| Hmac::<Sha256>::new_from_slice(k.expose().as_bytes()).ok()),
        }
    }

    /// The buckets `comment` is charged to.
    pub fn charges(&self, comment: &NewComment) -> Charges {
        let mut items = Vec::with_capacity(4);
        for bucket in Bucket::ALL {
            if self.buckets.get(bucket).is_none() {
                continue;
            }
            let key = match bucket {
                Bucket::Email => match &self.email_key {
                    Some(mac) => {
                        let mut mac = mac.clone();
                        mac.update(comment.author_email.as_str().as_bytes());
                        let digest = mac.finalize().into_bytes();
                        crate::hex::hex(&digest[..16])
                    }
                    None => continue,
                },
                Bucket::Ip => {
                    let ip = comment.client_ip.addr();
                    if self.allow.iter().any(|net| net.contains(&ip)) {
                        continue;
                    }
                    comment.client_ip.group_key()
                }
                Bucket::Article => comment.article_id.as_str().to_owned(),
                Bucket::Global => String::new(),
            };
            items.push((bucket, key));
        }
        Charges { items }
    }
}

/// What the cluster tier said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every bucket admitted (shadow buckets listed if they would have refused).
    Admitted {
        /// Shadow buckets that would have refused.
        shadow_refusals: Vec<Bucket>,
    },
    /// A bucket refused; nothing was charged.
    Refused {
        /// The bucket with the longest wait.
        bucket: Bucket,
        /// How long until the request would be admitted.
        retry_after: Duration,
        /// Shadow buckets that would have refused too.
        shadow_refusals: Vec<Bucket>,
    },
}

/// Counters of what the limiter did, per bucket.
#[derive(Debug, Default)]
pub struct Counters {
    /// Refused by the flood gate, per bucket (in the order of [`Bucket::ALL`]).
    pub gate_refusals: [AtomicU64; 4],
    /// Refused by the cluster tier, per bucket.
    pub cluster_refusals: [AtomicU64; 4],
    /// Would have been refused by a bucket in shadow mode, per bucket.
    pub shadow_refusals: [AtomicU64; 4],
    /// Decisions taken by the failure policy while the cluster tier could not be reached.
    pub policy_decisions: AtomicU64,
}

fn index(bucket: Bucket) -> usize {
    Bucket::ALL.iter().position(|&b| b == bucket).unwrap_or(0)
}

/// After a failure of the cluster tier, requests skip it for this long and the failure policy
/// decides at once: a Redis that is down costs each request nothing.
const CLUSTER_BACKOFF: Duration = Duration::from_secs(1);

/// The quotas in force, ready to check: rebuilt when ops change them.
struct InForce<C: governor::clock::Clock> {
    enabled: bool,
    buckets: Buckets,
    keys: Keys,
    gate: local::FloodGate<C>,
    cluster: cluster::ClusterLimiter,
}

/// The two-tier limiter.
pub struct TwoTier<C: governor::clock::Clock = governor::clock::DefaultClock> {
    settings: RateLimitSettings,
    clock: C,
    in_force: arc_swap::ArcSwap<InForce<C>>,
    policy: FailurePolicy,
    timeout: Duration,
    /// True while the cluster tier is being skipped after a failure.
    degraded: AtomicBool,
    /// When (ms since `started`) the cluster tier may be tried again.
    retry_cluster_at_ms: AtomicU64,
    started: Instant,
    counters: Arc<Counters>,
}

impl<C: governor::clock::Clock> fmt::Debug for TwoTier<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let in_force = self.in_force.load();
        f.debug_struct("TwoTier")
            .field("enabled", &in_force.enabled)
            .field("buckets", &in_force.buckets)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<C: governor::clock::Clock + Clone> TwoTier<C> {
    /// A limiter for `settings`, with the flood gate on `clock`.
    pub fn new(settings: &RateLimitSettings, cluster: cluster::ClusterLimiter, clock: C) -> Self {
        let in_force = Self::build(
            settings,
            settings.enabled,
            &settings.buckets,
            cluster,
            &clock,
        );
        TwoTier {
            settings: settings.clone(),
            clock,
            in_force: arc_swap::ArcSwap::from_pointee(in_force),
            policy: settings.failure_policy,
            timeout: settings.cluster_timeout,
            degraded: AtomicBool::new(false),
            retry_cluster_at_ms: AtomicU64::new(0),
            started: Instant::now(),
            counters: Arc::new(Counters::default()),
        }
    }

    fn build(
        settings: &RateLimitSettings,
        enabled: bool,
        buckets: &Buckets,
        cluster: cluster::ClusterLimiter,
        clock: &C,
    ) -> InForce<C> {
        let settings = RateLimitSettings {
            buckets: buckets.clone(),
            ..settings.clone()
        };
        InForce {
            enabled,
            buckets: buckets.clone(),
            keys: Keys::new(&settings),
            gate: local::FloodGate::new(buckets, settings.local_headroom, clock.clone()),
            cluster: cluster.with_buckets(buckets),
        }
    }

    /// Puts new quotas in force (ops changed them). Unchanged quotas keep the flood gate's
    /// state; changed ones start it afresh (the shared quotas in Redis carry on either way).
    pub fn reconfigure(&self, enabled: bool, buckets: &Buckets) {
        let current = self.in_force.load();
        if current.enabled == enabled && current.buckets == *buckets {
            return;
        }
        let next = Self::build(
            &self.settings,
            enabled,
            buckets,
            current.cluster.clone(),
            &self.clock,
        );
        self.in_force.store(Arc::new(next));
    }

    /// What it has done so far.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// True while the cluster tier cannot be reached and the failure policy decides.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn on_cluster_failure(&self, why: String) -> Result<(), RateLimitError> {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(policy = ?self.policy, error = %why, "the cluster rate limiter cannot be reached");
        }
        self.retry_cluster_at_ms.store(
            self.now_ms() + u64::try_from(CLUSTER_BACKOFF.as_millis()).unwrap_or(1000),
            Ordering::Relaxed,
        );
        self.policy_decision(why)
    }

    fn policy_decision(&self, why: String) -> Result<(), RateLimitError> {
        self.counters
            .policy_decisions
            .fetch_add(1, Ordering::Relaxed);
        match self.policy {
            FailurePolicy::FailOpen => Ok(()),
            FailurePolicy::FailClosed => Err(RateLimitError::Unavailable(why)),
        }
    }

    fn count_shadow(&self, buckets: &[Bucket]) {
        for &b in buckets {
            self.counters.shadow_refusals[index(b)].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<C: governor::clock::Clock + Clone> TwoTier<C> {
    /// Counts a cluster verdict and turns a refusal into the error.
    fn count_verdict(&self, verdict: Verdict) -> Result<(), RateLimitError> {
        match verdict {
            Verdict::Admitted { shadow_refusals } => {
                self.count_shadow(&shadow_refusals);
                Ok(())
            }
            Verdict::Refused {
                bucket,
                retry_after,
                shadow_refusals,
            } => {
                self.count_shadow(&shadow_refusals);
                self.counters.cluster_refusals[index(bucket)].fetch_add(1, Ordering::Relaxed);
                Err(RateLimitError::Limited {
                    bucket: bucket.name().to_owned(),
                    retry_after,
                })
            }
        }
    }
}

#[async_trait]
impl<C: governor::clock::Clock + Clone + Send + Sync> RateLimiter for TwoTier<C>
where
    C::Instant: Send + Sync,
{
    async fn admit(
        &self,
        comment: &NewComment,
        deadline: Instant,
    ) -> Result<Admit, RateLimitError> {
        let in_force = self.in_force.load_full();
        if !in_force.enabled {
            return Ok(Admit::Admitted);
        }
        let charges = in_force.keys.charges(comment);
        if charges.items.is_empty() {
            return Ok(Admit::Admitted);
        }
        if let Err((bucket, retry_after)) = in_force.gate.check(&charges) {
            self.counters.gate_refusals[index(bucket)].fetch_add(1, Ordering::Relaxed);
            return Err(RateLimitError::Limited {
                bucket: bucket.name().to_owned(),
                retry_after,
            });
        }
        if in_force.cluster.with_each_submission() {
            let cells = in_force.cluster.cells(&charges);
            return Ok(if cells.is_empty() {
                Admit::Admitted
            } else {
                Admit::Charge(cells)
            });
        }
        if self.degraded() && self.now_ms() < self.retry_cluster_at_ms.load(Ordering::Relaxed) {
            return self
                .policy_decision("the cluster rate limiter is down".into())
                .map(|()| Admit::Admitted);
        }
        // Decide before the request's own deadline, leaving it time for the later stages.
        let wait = self
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let decided = match tokio::time::timeout(wait, in_force.cluster.charge(&charges)).await {
            Ok(Ok(verdict)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("the cluster rate limiter answers again");
                }
                self.count_verdict(verdict)
            }
            Ok(Err(e)) => self.on_cluster_failure(e.to_string()),
            Err(_) => self.on_cluster_failure(format!("no answer within {wait:?}")),
        };
        decided.map(|()| Admit::Admitted)
    }

    fn charges_separately(&self) -> bool {
        let in_force = self.in_force.load();
        in_force.enabled && !in_force.cluster.with_each_submission()
    }

    fn settle(
        &self,
        cells: &[cluster::Cell],
        charged: cluster::Charged,
    ) -> Result<(), RateLimitError> {
        let verdict = cluster::verdict(cells, charged)
            .map_err(|e| RateLimitError::Unavailable(e.to_string()))?;
        self.count_verdict(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::{Limits, RawSubmission};

    fn comment(ip: &str, email: &str) -> NewComment {
        NewComment::parse(
            &RawSubmission {
                article_id: "a-1".into(),
                author_name: "An".into(),
                author_email: email.into(),
                body: "xin chào".into(),
                client_ip: ip.into(),
                idempotency_key: "k".into(),
                ..RawSubmission::default()
            },
            &Limits::default(),
        )
        .unwrap()
    }

    fn quota() -> Option<Quota> {
        Some(Quota {
            rate: 1,
            per: Duration::from_secs(1),
            burst: 1,
            shadow: false,
        })
    }

    fn all_buckets() -> RateLimitSettings {
        RateLimitSettings {
            enabled: true,
            email_hash_key: Some(Secret::new("k")),
            allow_ips: vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
            buckets: Buckets {
                ip: quota(),
                email: quota(),
                article: quota(),
                global: quota(),
            },
            ..RateLimitSettings::default()
        }
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_ipv4_addresses_are_their_own() {
        let keys = Keys::new(&all_buckets());
        let ip = |addr: &str| {
            keys.charges(&comment(addr, "a@example.com"))
                .items
                .into_iter()
                .find(|(b, _)| *b == Bucket::Ip)
                .map(|(_, k)| k)
        };
        assert_eq!(ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:bbbb::9"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("203.0.113.7").unwrap(), "203.0.113.7");
        // The other ways of writing an IPv4 address count in its bucket.
        for same in ["::203.0.113.7", "64:ff9b::203.0.113.7", "2002:cb00:7107::1"] {
            assert_eq!(ip(same).unwrap(), "203.0.113.7", "{same}");
        }
    }

    #[test]
    fn allowed_networks_skip_the_ip_bucket_only() {
        let keys = Keys::new(&all_buckets());
        let buckets = |addr: &str| -> Vec<Bucket> {
            keys.charges(&comment(addr, "a@example.com"))
                .items
                .into_iter()
                .map(|(b, _)| b)
                .collect()
        };
        assert_eq!(
            buckets("10.1.2.3"),
            [Bucket::Email, Bucket::Article, Bucket::Global]
        );
        assert_eq!(
            buckets("192.0.2.1"),
            [Bucket::Email, Bucket::Article, Bucket::Global]
        );
        assert_eq!(buckets("192.0.2.2").len(), 4);
    }

    #[test]
    fn e_mail_addresses_are_counted_by_keyed_hash_never_in_clear() {
        let keys = Keys::new(&all_buckets());
        let email = |e: &str| keys.charges(&comment("203.0.113.1", e)).items[0].1.clone();
        let key = email("An.Nguyen@Example.com");
        assert_eq!(key.len(), 32);
        assert!(!key.contains("nguyen"));
        assert_eq!(key, email("an.nguyen@example.com"));
        let mut other_secret = all_buckets();
        other_secret.email_hash_key = Some(Secret::new("another"));
        let other =
            Keys::new(&other_secret).charges(&comment("203.0.113.1", "an.nguyen@example.com"));
        assert_ne!(other.items[0].1, key);
    }

    #[test]
    fn unusable_settings_are_named() {
        let mut s = all_buckets();
        s.email_hash_key = None;
        s.local_headroom = 0.5;
        s.allow_ips.push("not-an-ip".into());
        if let Some(q) = s.buckets.ip.as_mut() {
            q.burst = 0;
        }
        let names: Vec<String> = s.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "rate_limit.buckets.ip.burst",
                "rate_limit.email_hash_key",
                "rate_limit.local_headroom",
                "rate_limit.allow_ips"
            ]
        );
    }
}
