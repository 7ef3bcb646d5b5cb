//! What the service counts, for Prometheus: requests by RPC and status, comment outcomes,
//! latency per pipeline stage, scores, refusals by reason, shadow-mode counts, queue depths, the
//! settings version and the models in force. Served as Prometheus text on a port of its own
//! (`[metrics]`), apart from the gRPC port.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

use crate::rate_limit::{Bucket, TwoTier};

/// A pipeline stage, as timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Parsing and normalising the request.
    Validate,
    /// Looking up a retry's first answer on its own (before a hosted CAPTCHA or a rate
    /// limiter with counters of its own, or after the flood gate refused); otherwise the
    /// retry check is part of [`Stage::Store`].
    Replay,
    /// Block and allow lists.
    Lists,
    /// Rate limits before storage: the flood gate (and the cluster limiter's own call when its
    /// counters are elsewhere).
    RateLimit,
    /// The CAPTCHA's checks before storage (a hosted provider's call included).
    Captcha,
    /// Scoring.
    Classify,
    /// Explaining the scores.
    Explain,
    /// Looking the text up among recent ones (campaigns).
    Campaigns,
    /// The one storage call: the retry check, the rate-limit charge, the CAPTCHA claim,
    /// storing and queueing.
    Store,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Replay => "replay",
            Stage::Lists => "lists",
            Stage::RateLimit => "rate_limit",
            Stage::Captcha => "captcha",
            Stage::Classify => "classify",
            Stage::Explain => "explain",
            Stage::Campaigns => "campaigns",
            Stage::Store => "store",
        }
    }
}

type Labels = Vec<(&'static str, String)>;
/// Labels of the hot path: static strings in a fixed-size array, so counting allocates nothing.
type Static1 = [(&'static str, &'static str); 1];
type Static2 = [(&'static str, &'static str); 2];

fn latency() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

fn probability() -> Histogram {
    Histogram::new(linear_buckets(0.05, 0.05, 19))
}

const STAGES: [Stage; 9] = [
    Stage::Validate,
    Stage::Replay,
    Stage::Lists,
    Stage::RateLimit,
    Stage::Captcha,
    Stage::Classify,
    Stage::Explain,
    Stage::Campaigns,
    Stage::Store,
];

const OUTCOMES: [&str; 3] = ["accepted", "pending_review", "rejected"];

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Static2, Counter>,
    request_seconds: Family<Static1, Histogram, fn() -> Histogram>,
    /// One per stage, in the order of [`STAGES`].
    stage_seconds: Vec<Histogram>,
    /// One per outcome, in the order of [`OUTCOMES`].
    comments: Vec<Counter>,
    /// Spam, toxic.
    scores: [Histogram; 2],
    captcha_refusals: Family<Labels, Counter>,
    shadow: Family<Labels, Counter>,
    model_agreement: Family<Labels, Counter>,
    moderator_decisions: Family<Labels, Counter>,
    time_to_decision: Histogram,
    moderator_agreement: Family<Labels, Counter>,
    webhooks: Family<Labels, Counter>,
    queue_depth: Family<Labels, Gauge>,
    feed_oldest_pending_seconds: Gauge,
    feed_trimmed_unread: Gauge,
    settings_version: Gauge,
    settings_errors: Counter,
    models: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("moderation");
        let requests = Family::<Static2, Counter>::default();
        let request_seconds =
            Family::<Static1, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        let stages = Family::<Static1, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        let comments = Family::<Static1, Counter>::default();
        let scores =
            Family::<Static1, Histogram, fn() -> Histogram>::new_with_constructor(probability);
        let captcha_refusals = Family::<Labels, Counter>::default();
        let shadow = Family::<Labels, Counter>::default();
        let model_agreement = Family::<Labels, Counter>::default();
        let moderator_decisions = Family::<Labels, Counter>::default();
        let webhooks = Family::<Labels, Counter>::default();
        // 10 s to about 2 days.
        let time_to_decision = Histogram::new(exponential_buckets(10.0, 2.0, 15));
        let moderator_agreement = Family::<Labels, Counter>::default();
        let queue_depth = Family::<Labels, Gauge>::default();
        let feed_oldest_pending_seconds = Gauge::default();
        let feed_trimmed_unread = Gauge::default();
        let settings_version = Gauge::default();
        let settings_errors = Counter::default();
        let models = Family::<Labels, Gauge>::default();
        registry.register(
            "grpc_requests",
            "gRPC requests by method and status code",
            requests.clone(),
        );
        registry.register(
            "grpc_request_seconds",
            "gRPC request latency by method, until the response headers",
            request_seconds.clone(),
        );
        registry.register(
            "comments",
            "submitted comments by outcome",
            comments.clone(),
        );
        registry.register(
            "stage_seconds",
            "time spent in each submission stage",
            stages.clone(),
        );
        registry.register(
            "score",
            "classifier scores by head (spam, toxic)",
            scores.clone(),
        );
        registry.register(
            "captcha_refusals",
            "CAPTCHA answers refused, by reason; shadow=\"true\" for refusals only counted",
            captcha_refusals.clone(),
        );
        registry.register(
            "shadow",
            "what a stage in shadow mode would have done (stage, would)",
            shadow.clone(),
        );
        registry.register(
            "model_shadow_decisions",
            "decisions of the candidate model in shadow, by agreement with the active one",
            model_agreement.clone(),
        );
        registry.register(
            "moderator_decisions",
            "moderators' decisions by verdict",
            moderator_decisions.clone(),
        );
        registry.register(
            "time_to_decision_seconds",
            "how long held comments waited, from submission to a moderator's decision",
            time_to_decision.clone(),
        );
        registry.register(
            "moderator_model_agreement",
            "moderators' decisions by whether the model leaned the same way (spam and toxic both below 0.5 for an approval, either at or above for a rejection)",
            moderator_agreement.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "webhook deliveries by webhook and result (delivered, retried, dead_lettered; dropped: the dispatcher's channel was full)",
            webhooks.clone(),
        );
        registry.register(
            "queue_depth",
            "comments waiting: flagged (for moderators), accepted_unread (not yet read by the portal), accepted_pending (read by the portal, not acknowledged)",
            queue_depth.clone(),
        );
        registry.register(
            "feed_oldest_pending_seconds",
            "age of the oldest accepted comment the portal read and has not acknowledged (0 when none)",
            feed_oldest_pending_seconds.clone(),
        );
        registry.register(
            "feed_trimmed_unread",
            "accepted comments trimmed from the stream before the portal's group read them (over the stream's life)",
            feed_trimmed_unread.clone(),
        );
        registry.register(
            "settings_version",
            "version of the runtime settings in force on this instance",
            settings_version.clone(),
        );
        registry.register(
            "settings_apply_errors",
            "runtime settings this instance could not apply",
            settings_errors.clone(),
        );
        registry.register(
            "model_info",
            "models in force (role=active or shadow), value 1",
            models.clone(),
        );
        registry.register_collector(Box::new(LogCollector));
        // The hot path's series exist from the start (at zero), and are held directly.
        let stage_seconds = STAGES
            .iter()
            .map(|s| stages.get_or_create(&[("stage", s.name())]).clone())
            .collect();
        let outcome_counters = OUTCOMES
            .iter()
            .map(|o| comments.get_or_create(&[("outcome", *o)]).clone())
            .collect();
        let score = |head: &'static str| scores.get_or_create(&[("head", head)]).clone();
        Metrics {
            registry,
            requests,
            request_seconds,
            stage_seconds,
            comments: outcome_counters,
            scores: [score("spam"), score("toxic")],
            captcha_refusals,
            shadow,
            model_agreement,
            moderator_decisions,
            time_to_decision,
            moderator_agreement,
            webhooks,
            queue_depth,
            feed_oldest_pending_seconds,
            feed_trimmed_unread,
            settings_version,
            settings_errors,
            models,
        }
    }

    /// Adds the rate limiter's counters and mode to what is served.
    pub fn watch_rate_limiter(&mut self, limiter: Arc<TwoTier>) {
        self.registry
            .register_collector(Box::new(LimiterCollector(limiter)));
    }

    /// The metrics as Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts an answered gRPC request; `method` is one of a fixed set of names.
    pub fn request(&self, method: &'static str, code: &'static str, took: Duration) {
        self.requests
            .get_or_create(&[("method", method), ("code", code)])
            .inc();
        self.request_seconds
            .get_or_create(&[("method", method)])
            .observe(took.as_secs_f64());
    }

    /// Times a synchronous stage.
    pub fn time<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.stage(stage, started.elapsed());
        out
    }

    /// Records a stage's duration.
    pub fn stage(&self, stage: Stage, took: Duration) {
        let k = STAGES.iter().position(|s| *s == stage).unwrap_or(0);
        self.stage_seconds[k].observe(took.as_secs_f64());
    }

    /// Counts a decided comment and its scores.
    pub fn comment(&self, outcome: &str, spam: Option<f32>, toxic: Option<f32>) {
        if let Some(k) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.comments[k].inc();
        }
        for (histogram, score) in self.scores.iter().zip([spam, toxic]) {
            if let Some(s) = score {
                histogram.observe(f64::from(s));
            }
        }
    }

    /// Counts a refused CAPTCHA answer.
    pub fn captcha_refused(&self, reason: &str, shadow: bool) {
        self.captcha_refusals
            .get_or_create(&vec![
                ("reason", reason.to_owned()),
                ("shadow", shadow.to_string()),
            ])
            .inc();
    }

    /// Counts what a stage in shadow would have done.
    pub fn shadow(&self, stage: &str, would: &str) {
        self.shadow
            .get_or_create(&vec![
                ("stage", stage.to_owned()),
                ("would", would.to_owned()),
            ])
            .inc();
    }

    /// Counts a candidate model's decision.
    pub fn model_shadow(&self, candidate: &str, agrees: bool) {
        self.model_agreement
            .get_or_create(&vec![
                ("candidate", candidate.to_owned()),
                (
                    "agreement",
                    if agrees { "same" } else { "different" }.to_owned(),
                ),
            ])
            .inc();
    }

    /// Counts a moderator's decision.
    pub fn moderator_decision(&self, moderator: &str, verdict: &str) {
        self.moderator_decisions
            .get_or_create(&vec![
                ("moderator", moderator.to_owned()),
                ("verdict", verdict.to_owned()),
            ])
            .inc();
    }

    /// Records how long a decided comment waited, and whether the model leaned the same way.
    pub fn decision_context(&self, moderator: &str, waited: Duration, agreed: bool) {
        self.time_to_decision.observe(waited.as_secs_f64());
        self.moderator_agreement
            .get_or_create(&vec![
                ("moderator", moderator.to_owned()),
                ("agreed", agreed.to_string()),
            ])
            .inc();
    }

    /// Counts a webhook delivery's `result`.
    pub fn webhook(&self, webhook: &str, result: &'static str) {
        self.webhooks
            .get_or_create(&vec![
                ("webhook", webhook.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// Sets a queue's depth.
    pub fn queue_depth(&self, queue: &str, depth: u64) {
        self.queue_depth
            .get_or_create(&vec![("queue", queue.to_owned())])
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Records the queues: what waits for moderators and the state of the portal's feed.
    pub fn queue_depths(&self, d: &crate::settings::QueueDepths) {
        let gauge = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        self.queue_depth("flagged", d.flagged);
        self.queue_depth("accepted_unread", d.unread);
        self.queue_depth("accepted_pending", d.pending);
        gauge(
            &self.feed_oldest_pending_seconds,
            d.oldest_pending_ms / 1000,
        );
        gauge(&self.feed_trimmed_unread, d.trimmed_unread);
    }

    /// Records the settings version in force and the models.
    pub fn settings_applied(&self, version: u64, active: &str, shadow: Option<&str>) {
        self.settings_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        self.models.clear();
        self.models
            .get_or_create(&vec![
                ("role", "active".to_owned()),
                ("version", active.to_owned()),
            ])
            .set(1);
        if let Some(s) = shadow {
            self.models
                .get_or_create(&vec![
                    ("role", "shadow".to_owned()),
                    ("version", s.to_owned()),
                ])
                .set(1);
        }
    }

    /// Counts settings that could not be applied.
    pub fn settings_error(&self) {
        self.settings_errors.inc();
    }
}

/// Log lines dropped because the log writer fell behind (set once, by the log set-up).
static DROPPED_LOG_LINES: std::sync::OnceLock<tracing_appender::non_blocking::ErrorCounter> =
    std::sync::OnceLock::new();

/// Counts, from now on, the log lines `counter` counts as dropped (`log_lines_dropped_total`).
pub fn count_dropped_log_lines(counter: tracing_appender::non_blocking::ErrorCounter) {
    let _ = DROPPED_LOG_LINES.set(counter);
}

/// Serves [`DROPPED_LOG_LINES`].
#[derive(Debug)]
struct LogCollector;

impl Collector for LogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let dropped = DROPPED_LOG_LINES
            .get()
            .map_or(0, |c| c.dropped_lines() as u64);
        let counter = ConstCounter::new(dropped);
        counter.encode(encoder.encode_descriptor(
            "log_lines_dropped",
            "log lines dropped because standard error could not keep up (the writer never waits)",
            None,
            counter.metric_type(),
        )?)
    }
}

/// The rate limiter's own counters, read at each scrape.
#[derive(Debug)]
struct LimiterCollector(Arc<TwoTier>);

impl Collector for LimiterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.0.counters();
        let refusals = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "rate_limit_refusals",
            "comments refused by a rate limit, by bucket and tier (gate: this instance's flood gate; cluster: the shared quota)",
            None,
            refusals.metric_type(),
        )?;
        for (k, bucket) in Bucket::ALL.iter().enumerate() {
            for (tier, values) in [
                ("gate", &counters.gate_refusals),
                ("cluster", &counters.cluster_refusals),
            ] {
                let labels = [("bucket", bucket.name()), ("tier", tier)];
                ConstCounter::new(values[k].load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "rate_limit_shadow_refusals",
            "comments a bucket in shadow mode would have refused, by bucket",
            None,
            refusals.metric_type(),
        )?;
        for (k, bucket) in Bucket::ALL.iter().enumerate() {
            let labels = [("bucket", bucket.name())];
            ConstCounter::new(counters.shadow_refusals[k].load(Ordering::Relaxed))
                .encode(family.encode_family(&labels)?)?;
        }
        ConstCounter::new(counters.policy_decisions.load(Ordering::Relaxed)).encode(
            encoder.encode_descriptor(
                "rate_limit_policy_decisions",
                "comments decided by the failure policy while the shared limiter was unreachable",
                None,
                refusals.metric_type(),
            )?,
        )?;
        let mode = ConstGauge::new(i64::from(!self.0.degraded()));
        mode.encode(encoder.encode_descriptor(
            "rate_limit_cluster_mode",
            "1 while the shared (Redis) limiter decides; 0 while the failure policy does",
            None,
            mode.metric_type(),
        )?)?;
        Ok(())
    }
}
