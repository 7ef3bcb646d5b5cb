//! Wires the service from its configuration and runs it: the gRPC services (comments,
//! moderation, admin, health, reflection) behind the edge layer (API keys, roles, request
//! metrics), optionally over TLS; the Prometheus endpoint on its own port; a watch on Redis that
//! drives the health status and the queue gauges; the runtime settings watch; and graceful
//! shutdown.
//!
//! [`App::build`] loads everything that can fail at start-up (the model, the store, the TLS
//! files) before anything listens; [`App::run`] takes the listener and the shutdown signal as
//! parameters, so tests bind port 0 and shut down when they choose.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::Keys;
use crate::captcha::Captchas;
use crate::captcha::store::ChallengeStore;
use crate::classifier::Model;
use crate::classify::ModelClassifier;
use crate::config::Backend;
use crate::config::Config;
use crate::decide::Thresholds;
use crate::feed::FeedStore;
use crate::grpc::edge::{EdgeLayer, Gate};
use crate::grpc::{AdminApi, CommentApi, FeedApi, ModerationApi};
use crate::metrics::Metrics;
use crate::models::Models;
use crate::pipeline::Pipeline;
use crate::proto::v1::admin_service_server::AdminServiceServer;
use crate::proto::v1::comment_service_server::CommentServiceServer;
use crate::proto::v1::feed_service_server::FeedServiceServer;
use crate::proto::v1::moderation_service_server::ModerationServiceServer;
use crate::rate_limit::TwoTier;
use crate::rate_limit::cluster::ClusterLimiter;
use crate::review::Queue;
use crate::review::ReviewStore;
use crate::settings::admin::Admin;
use crate::settings::live::{Base, Live, Targets};
use crate::settings::{Context as SettingsContext, SettingsStore, Source, Tunables};
use crate::store::Store;
use crate::store::redis::{RedisChallenges, RedisCounters, RedisStore, Topology};
use crate::store::sqlite::{Retention, SqliteStore};

/// The gRPC service names whose health is reported (besides the overall "").
const SERVICE_NAMES: &[&str] = &[
    "moderation.v1.CommentService",
    "moderation.v1.ModerationService",
    "moderation.v1.AdminService",
    "moderation.v1.FeedService",
    "moderation.v1.ReaderService",
];

/// How often Redis is pinged for the health status.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// A built service, ready to run.
pub struct App {
    config: Config,
    pipeline: Arc<Pipeline>,
    captchas: Arc<Captchas>,
    storage: Storage,
    queue: Arc<Queue>,
    admin: Arc<Admin>,
    live: Arc<Live>,
    limiter: Arc<TwoTier>,
    metrics: Arc<Metrics>,
    gate: Arc<Gate>,
    tls: Option<ServerTlsConfig>,
    metrics_listener: Option<TcpListener>,
    console: Arc<crate::console::Console>,
    console_listener: Option<TcpListener>,
    desk: Arc<crate::readers::desk::Desk>,
    rescanner: Arc<crate::rescan::Rescanner>,
    rejected: Option<tokio::sync::mpsc::Receiver<crate::readers::ReaderId>>,
    flagged: Option<tokio::sync::mpsc::Receiver<(Vec<crate::comment::CommentId>, usize)>>,
    webhooks: Option<(
        Arc<crate::webhooks::Webhooks>,
        tokio::sync::mpsc::Receiver<crate::webhooks::Notice>,
    )>,
}

/// The backend the service runs on, opened from the configuration.
#[derive(Clone)]
pub enum Storage {
    /// Redis, shared by several instances.
    Redis(Arc<RedisStore>),
    /// One SQLite file, for one instance.
    Embedded(SqliteStore),
}

impl Storage {
    /// Opens the backend `config` chooses (`store.backend`).
    pub fn open(config: &Config) -> Result<Self> {
        Ok(match config.store.backend {
            Backend::Redis => Storage::Redis(Arc::new(
                RedisStore::new(config.redis.clone(), config.server.request_timeout)
                    .context("setting up Redis (redis.url)")?,
            )),
            Backend::Embedded => {
                let r = &config.redis;
                let retention = Retention {
                    idempotency: r.idempotency_ttl,
                    accepted: r.accepted_retention,
                    rejected: r.rejected_retention,
                    comments: r.comment_retention,
                    feedback: r.feedback_retention,
                };
                Storage::Embedded(
                    SqliteStore::open_with(&config.store.path, retention)
                        .context("opening the embedded store (store.path)")?,
                )
            }
        })
    }

    /// Its submissions port.
    pub fn submissions(&self) -> Arc<dyn Store> {
        match self {
            Storage::Redis(r) => r.clone(),
            Storage::Embedded(s) => Arc::new(s.clone()),
        }
    }

    /// Its review queue port.
    pub fn review(&self) -> Arc<dyn ReviewStore> {
        match self {
            Storage::Redis(r) => r.clone(),
            Storage::Embedded(s) => Arc::new(s.clone()),
        }
    }

    /// Its published comments, for re-scans.
    pub fn published(&self) -> Arc<dyn crate::rescan::PublishedStore> {
        match self {
            Storage::Redis(r) => r.clone(),
            Storage::Embedded(s) => Arc::new(s.clone()),
        }
    }

    /// Its readers' port.
    pub fn readers(&self) -> Arc<dyn crate::readers::ReaderStore> {
        match self {
            Storage::Redis(r) => r.clone(),
            Storage::Embedded(s) => Arc::new(s.clone()),
        }
    }

    /// Its runtime settings port.
    pub fn settings(&self) -> Arc<dyn SettingsStore> {
        match self {
            Storage::Redis(r) => r.clone(),
            Storage::Embedded(s) => Arc::new(s.clone()),
        }
    }

    /// Its feed port.
    pub fn feed(&self) -> Arc<dyn FeedStore> {
        match self {
            Storage::Redis(r) => r.clone(),
            Storage::Embedded(s) => Arc::new(s.clone()),
        }
    }

    /// Its CAPTCHA challenges port (`prefix`: Redis' key prefix).
    pub fn challenges(&self, prefix: &str) -> Arc<dyn ChallengeStore> {
        match self {
            Storage::Redis(r) => Arc::new(RedisChallenges::new(r.connection(), prefix)),
            Storage::Embedded(s) => Arc::new(s.clone()),
        }
    }

    /// What the start-up line says of it.
    pub fn describe(&self) -> String {
        match self {
            Storage::Redis(r) => {
                let settings = r.settings();
                match settings.topology() {
                    Ok(Topology::Sentinel { sentinels, master }) => {
                        let asked: Vec<String> = sentinels.iter().map(|a| a.to_string()).collect();
                        format!(
                            "redis primary {master:?} through sentinels {}",
                            asked.join(", ")
                        )
                    }
                    Ok(Topology::Cluster { nodes }) => {
                        let nodes: Vec<String> = nodes.iter().map(|a| a.to_string()).collect();
                        format!("redis cluster from {}", nodes.join(", "))
                    }
                    _ => format!("redis {}", settings.url),
                }
            }
            Storage::Embedded(s) => format!("embedded {}", s.path().display()),
        }
    }
}

/// The rate limiter of `config`: its counters charged with each submission by the backend, or
/// in the Redis `rate_limit.redis_url` names.
fn two_tier_limiter(config: &Config) -> Result<TwoTier> {
    let settings = &config.rate_limit;
    let cluster = match &settings.redis_url {
        Some(url) => {
            let limiter_redis = config.redis.clone().single_node(url.clone());
            let own = RedisStore::new(limiter_redis, settings.cluster_timeout)
                .context("setting up the rate limiter's Redis (rate_limit.redis_url)")?;
            let counters = RedisCounters::new(own.connection(), &config.redis.prefix);
            ClusterLimiter::new(Arc::new(counters), &settings.buckets)
        }
        None => ClusterLimiter::with_submissions(&settings.buckets),
    };
    Ok(TwoTier::new(
        settings,
        cluster,
        governor::clock::DefaultClock::default(),
    ))
}

/// The TLS configuration of `config`, its files read.
fn tls(config: &Config) -> Result<Option<ServerTlsConfig>> {
    let Some(t) = &config.server.tls else {
        return Ok(None);
    };
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read(&t.cert, "server.tls.cert")?,
        read(&t.key, "server.tls.key")?,
    ));
    if let Some(ca) = &t.client_ca {
        tls = tls
            .client_ca_root(Certificate::from_pem(read(ca, "server.tls.client_ca")?))
            .client_auth_optional(t.client_auth_optional);
    }
    Ok(Some(tls))
}

/// What runtime settings start from: the file's values, and the model's thresholds where the
/// file sets none.
fn base(config: &Config, model: &Model, models: &Models) -> Base {
    let recommended = Thresholds::from(model.thresholds());
    let d = config.decision;
    let mut sources = BTreeMap::new();
    let mut threshold = |key: &'static str, set: Option<f32>, recommended: f32| {
        set.unwrap_or_else(|| {
            sources.insert(key, Source::Model);
            recommended
        })
    };
    let thresholds = Thresholds {
        accept_below: threshold(
            "decision.accept_below",
            d.accept_below,
            recommended.accept_below,
        ),
        reject_at: threshold("decision.reject_at", d.reject_at, recommended.reject_at),
        review_toxic_at: threshold(
            "decision.review_toxic_at",
            d.review_toxic_at,
            recommended.review_toxic_at,
        ),
    };
    Base {
        tunables: Tunables {
            thresholds,
            decision_shadow: d.shadow,
            rate_limit_enabled: config.rate_limit.enabled,
            buckets: config.rate_limit.buckets.clone(),
            captcha_mode: config.captcha.mode,
            captcha_articles: config.captcha.articles.clone(),
            captcha_shadow: config.captcha.shadow,
            lists: config.lists.normalized(),
            articles: config.articles.clone(),
            readers: crate::readers::ReaderTunables {
                hold_first_comment: config.readers.hold_first_comment,
                auto_premoderate: config.readers.auto_premoderate,
                directory: crate::readers::Directory::default(),
            },
            campaign_copies: config.campaigns.copies,
            model: model.info().name.clone(),
            model_shadow: None,
        },
        sources,
        context: SettingsContext {
            email_hash_key: config.rate_limit.email_hash_key.is_some(),
            captcha: config.captcha.clone(),
            models: models.names(),
        },
    }
}

impl App {
    /// Builds the service: loads the model, resolves the thresholds, prepares the store. Fails
    /// with the reason when the configuration cannot work; does not need Redis to be up.
    pub fn build(config: Config) -> Result<Self> {
        let model = Model::load(&config.classifier.model).with_context(|| {
            format!(
                "loading the model (classifier.model = {})",
                config.classifier.model.display()
            )
        })?;
        Self::build_with_model(config, Arc::new(model))
    }

    /// Like [`App::build`] with a model already loaded (`classifier.model` is not read).
    pub fn build_with_model(config: Config, model: Arc<Model>) -> Result<Self> {
        let models = Arc::new(Models::new(&config.classifier.models_dir));
        models.insert(&model.info().name, model.clone());
        let base = base(&config, &model, &models);
        if let Some((name, problem)) = base.tunables.thresholds.problems().into_iter().next() {
            anyhow::bail!("decision.{name} {problem}");
        }
        let storage = Storage::open(&config)?;
        let limiter = Arc::new(two_tier_limiter(&config)?);
        let mut metrics = Metrics::new();
        metrics.watch_rate_limiter(limiter.clone());
        let metrics = Arc::new(metrics);
        let challenges = storage.challenges(&config.redis.prefix);
        let captchas = Arc::new(Captchas::new(config.captcha.clone(), challenges));
        let classifier = Arc::new(ModelClassifier::new(model));
        let live = Arc::new(Live::new(
            base,
            Targets {
                limiter: limiter.clone(),
                captchas: captchas.clone(),
                classifier: classifier.clone(),
                models,
                metrics: metrics.clone(),
            },
        ));
        let (webhooks, notifier, notices) =
            crate::webhooks::Webhooks::new(config.webhooks.clone(), metrics.clone(), 65_536);
        let (rejections, rejected) = crate::readers::desk::Rejections::new(4096);
        let (flags, flagged) = crate::campaigns::Flags::new(4096);
        let queue = Arc::new(
            Queue::new(storage.review(), config.review, metrics.clone())
                .with_notifier(notifier.clone())
                .with_rejections(rejections.clone()),
        );
        let recent = Arc::new(crate::traffic::Recent::default());
        let keyring = Arc::new(crate::readers::Keyring::new(
            config.readers.hash_key.as_ref(),
        ));
        let pipeline = Arc::new(Pipeline {
            limits: config.comments,
            bots: config.bots,
            live: live.clone(),
            rate_limiter: limiter.clone(),
            captcha: captchas.clone(),
            classifier,
            store: storage.submissions(),
            keyring: keyring.clone(),
            readers: storage.readers(),
            rejections,
            campaigns: Arc::new(crate::campaigns::Detector::new(&config.campaigns)),
            flags,
            metrics: metrics.clone(),
            recent: recent.clone(),
            events: queue.events().clone(),
            notifier,
        });
        let rescanner = Arc::new(crate::rescan::Rescanner::new(
            pipeline.clone(),
            queue.clone(),
            storage.published(),
        ));
        let admin = Arc::new(Admin::new(
            live.clone(),
            storage.settings(),
            &config.redis.consumer_group,
        ));
        let desk = Arc::new(crate::readers::desk::Desk::new(
            admin.clone(),
            live.clone(),
            queue.clone(),
            storage.readers(),
        ));
        let gate = Arc::new(Gate {
            protected: config.auth.protected_mode(),
            keys: config.auth.enabled.then(|| Keys::new(&config.auth)),
            open_health: config.auth.open_health,
            open_reflection: config.auth.open_reflection,
            metrics: metrics.clone(),
        });
        let tls = tls(&config)?;
        let console = Arc::new(crate::console::Console {
            queue: queue.clone(),
            admin: admin.clone(),
            desk: desk.clone(),
            recent,
            webhooks: webhooks.clone(),
            pipeline: pipeline.clone(),
            coral: config.coral.clone(),
            bots: config.bots,
            gate: match &gate.keys {
                Some(keys) => crate::console::session::Gatekeeper::Keys(keys.clone()),
                None => crate::console::session::Gatekeeper::Names {
                    protected: config.auth.protected_mode(),
                },
            },
            sessions: crate::console::session::Sessions::new(
                config.http.session_lifetime,
                config.http.session_idle,
            ),
            settings: config.http.clone(),
            request_timeout: config.server.request_timeout,
        });
        Ok(App {
            config,
            pipeline,
            captchas,
            storage,
            queue,
            admin,
            live,
            limiter,
            metrics,
            gate,
            tls,
            metrics_listener: None,
            console,
            console_listener: None,
            webhooks: Some((webhooks, notices)),
            desk,
            rescanner,
            rejected: Some(rejected),
            flagged: Some(flagged),
        })
    }

    /// Serves metrics on `listener` instead of binding `metrics.listen` (tests bind port 0).
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// Serves the console on `listener` instead of binding `http.listen` (tests bind port 0).
    pub fn with_console_listener(mut self, listener: TcpListener) -> Self {
        self.console_listener = Some(listener);
        self
    }

    /// The pipeline (for tests that drive it directly).
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The CAPTCHAs (for tests, which cannot read the images they issue).
    pub fn captchas(&self) -> &Arc<Captchas> {
        &self.captchas
    }

    /// Serves on `listener` until `shutdown` completes, then stops gracefully: health turns
    /// NOT_SERVING, no new connections are accepted, in-flight requests finish (for at most
    /// `server.shutdown_grace`), and the function returns.
    pub async fn run(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let address = listener.local_addr()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;

        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building the reflection service")?;
        let server = &self.config.server;
        let comments = CommentServiceServer::new(CommentApi::new(
            self.pipeline.clone(),
            self.captchas.clone(),
            server.request_timeout,
        ))
        .max_decoding_message_size(server.max_message_bytes);
        let moderation = ModerationServiceServer::new(ModerationApi::new(
            self.queue.clone(),
            server.request_timeout,
        ))
        .max_decoding_message_size(server.max_message_bytes);
        let admin = AdminServiceServer::new(AdminApi::new(
            self.admin.clone(),
            self.rescanner.clone(),
            server.request_timeout,
        ))
        .max_decoding_message_size(server.max_message_bytes);

        // The runtime settings stored, before the first request if the store answers in time;
        // the file's otherwise, until the watch reads them.
        let settings_store = self.storage.settings();
        let readers = self.storage.readers();
        let keyring = self.pipeline.keyring.clone();
        // The readers' key too: a submission waits for it.
        let _ = tokio::time::timeout(Duration::from_secs(1), keyring.load(readers.as_ref())).await;
        match tokio::time::timeout(
            Duration::from_secs(1),
            self.live.refresh(settings_store.as_ref()),
        )
        .await
        {
            Ok(Ok(())) => {}
            // The storage watch says why storage cannot be used; this only says what it means.
            Ok(Err(e)) => {
                tracing::info!(error = %e, "runtime settings not read yet; the file's apply until they are")
            }
            Err(_) => tracing::warn!(
                "runtime settings not read yet (the store is slow); the file's apply until they are"
            ),
        }
        let probe_timeout = self.config.server.request_timeout + Duration::from_millis(100);
        let watch_store = match &self.storage {
            Storage::Redis(store) => tokio::spawn(watch_redis(
                store.clone(),
                health.clone(),
                self.metrics.clone(),
                self.config.redis.consumer_group.clone(),
                probe_timeout,
            )),
            Storage::Embedded(store) => tokio::spawn(watch_embedded(
                store.clone(),
                health.clone(),
                self.metrics.clone(),
                probe_timeout,
            )),
        };
        let mut tasks = vec![
            watch_store,
            tokio::spawn(crate::campaigns::flag_earlier(
                self.queue.clone(),
                self.flagged.take().expect("served once"),
                self.config.server.request_timeout,
            )),
            tokio::spawn(self.rescanner.clone().watch(
                Duration::from_secs(2),
                self.config.server.request_timeout * 10,
            )),
            tokio::spawn(self.desk.clone().watch_rejections(
                self.rejected.take().expect("served once"),
                self.config.server.request_timeout,
            )),
            tokio::spawn(
                self.pipeline
                    .keyring
                    .clone()
                    .keep_loading(self.storage.readers(), Duration::from_millis(500)),
            ),
        ];
        if let Storage::Embedded(store) = &self.storage {
            tasks.push(tokio::spawn(
                store.clone().keep_trimmed(Duration::from_secs(60)),
            ));
        }
        if let Storage::Redis(store) = &self.storage {
            tasks.push(tokio::spawn(crate::campaigns::listen(
                self.pipeline.campaigns.clone(),
                store.clone(),
                Duration::from_secs(1),
            )));
        }
        tasks.extend([
            tokio::spawn(watch_rate_limiter(self.limiter.clone(), health.clone())),
            tokio::spawn(crate::settings::live::watch(
                self.live.clone(),
                settings_store,
                self.config.runtime.refresh,
            )),
        ]);
        let metrics_address = match self.metrics_listener.take() {
            Some(l) => Some(l),
            None if self.config.metrics.enabled => Some(
                TcpListener::bind(self.config.metrics.listen)
                    .await
                    .with_context(|| {
                        format!(
                            "listening on {} (metrics.listen)",
                            self.config.metrics.listen
                        )
                    })?,
            ),
            None => None,
        }
        .map(|l| {
            let at = l.local_addr().ok();
            tasks.push(tokio::spawn(serve_metrics(
                l,
                self.metrics.clone(),
                self.config.auth.protected_mode(),
            )));
            at
        });

        if let Some((webhooks, notices)) = self.webhooks.take() {
            tasks.push(tokio::spawn(webhooks.run(notices)));
        }
        let console_address = match self.console_listener.take() {
            Some(l) => Some(l),
            None if self.config.http.enabled => Some(
                TcpListener::bind(self.config.http.listen)
                    .await
                    .with_context(|| {
                        format!("listening on {} (http.listen)", self.config.http.listen)
                    })?,
            ),
            None => None,
        }
        .map(|l| {
            let at = l.local_addr().ok();
            tasks.push(tokio::spawn(crate::console::serve(l, self.console.clone())));
            at
        });

        let auth = &self.config.auth;
        if auth.enabled {
            tracing::info!(keys = auth.keys.len(), "API keys required");
        } else if auth.protected_mode() {
            tracing::info!(
                "protected mode: authentication is off, so only clients on this machine are served (auth.enabled turns keys on; auth.allow_unauthenticated_network serves others without them)"
            );
        } else {
            tracing::warn!(
                "authentication is off and auth.allow_unauthenticated_network is on: anyone who reaches the port may call every RPC"
            );
        }
        // Transport limits: a connection has a bounded number of streams and header bytes, an
        // idle one must answer PINGs, and a request that is not answered by the deadline (plus
        // a margin, so handlers answer first) is ended by the transport, also while its body
        // is still arriving.
        let mut builder = Server::builder()
            .max_concurrent_streams(server.max_concurrent_streams)
            .http2_max_header_list_size(server.max_header_list_bytes)
            .http2_keepalive_interval(Some(server.keepalive_interval))
            .http2_keepalive_timeout(Some(server.keepalive_timeout))
            .timeout(transport_timeout(server.request_timeout));
        if let Some(tls) = self.tls.clone() {
            builder = builder
                .tls_config(tls)
                .context("configuring TLS (server.tls)")?;
        }
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let serving = builder
            .layer(EdgeLayer(self.gate.clone()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(comments)
            .add_service(moderation)
            .add_service(admin)
            .add_service(
                FeedServiceServer::new(FeedApi::new(self.storage.feed()))
                    .max_decoding_message_size(server.max_message_bytes),
            )
            .add_service(
                crate::proto::v1::reader_service_server::ReaderServiceServer::new(
                    crate::grpc::ReaderApi::new(
                        self.desk.clone(),
                        self.pipeline.keyring.clone(),
                        server.request_timeout,
                    ),
                )
                .max_decoding_message_size(server.max_message_bytes),
            )
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            });
        tracing::info!(
            %address,
            tls = self.tls.is_some(),
            metrics = ?metrics_address.flatten().map(|a: SocketAddr| a.to_string()),
            console = ?console_address.flatten().map(|a: SocketAddr| format!("http://{a}/")),
            model = %self.live.snapshot().effective.tunables.model,
            store = %self.storage.describe(),
            "serving"
        );

        tokio::pin!(serving);
        let stop_watching = |tasks: &[tokio::task::JoinHandle<()>]| {
            for t in tasks {
                t.abort();
            }
        };
        tokio::select! {
            result = &mut serving => {
                stop_watching(&tasks);
                return result.context("the gRPC server failed");
            }
            () = shutdown => {}
        }
        stop_watching(&tasks);
        set_health(&health, ServingStatus::NotServing).await;
        let drain = self.config.server.drain;
        if !drain.is_zero() {
            tracing::info!(
                ?drain,
                "shutting down: health NOT_SERVING; still serving while load balancers notice"
            );
            // Requests keep being answered meanwhile; the server stopping by itself ends it.
            if let Ok(result) = tokio::time::timeout(drain, &mut serving).await {
                return result.context("the gRPC server failed");
            }
        }
        tracing::info!("refusing new connections, finishing in-flight requests");
        let _ = stop_tx.send(());
        let grace = self.config.server.shutdown_grace;
        match tokio::time::timeout(grace, &mut serving).await {
            Ok(result) => result.context("the gRPC server failed")?,
            Err(_) => tracing::warn!(
                ?grace,
                "in-flight requests did not finish within the grace period; stopping anyway"
            ),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The transport's own deadline for a request: the service's, and a margin so that handlers,
/// which answer at the deadline, answer first.
fn transport_timeout(request_timeout: Duration) -> Duration {
    request_timeout + Duration::from_millis(500)
}

/// Serves `GET /metrics` (Prometheus text) on `listener`; in protected mode only to clients
/// on this machine (others get 403).
async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>, protected: bool) {
    use axum::extract::ConnectInfo;
    use axum::http::StatusCode;
    use axum::http::header::CONTENT_TYPE;
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| {
            let metrics = metrics.clone();
            async move {
                if protected && !peer.ip().to_canonical().is_loopback() {
                    return (
                        StatusCode::FORBIDDEN,
                        "protected mode: authentication is off, so metrics are served only on this machine\n",
                    )
                        .into_response();
                }
                (
                    [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    metrics.render(),
                )
                    .into_response()
            }
        }),
    );
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        tracing::error!(error = %e, "the metrics endpoint failed");
    }
}

/// SERVING or NOT_SERVING.
fn serving_status(up: bool) -> ServingStatus {
    if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        health.set_service_status(*name, status).await;
    }
}

/// Probes Redis every [`HEALTH_INTERVAL`] with a small write, and reports the health recent
/// outcomes give (the probes' and every request's, with hysteresis: see
/// [`crate::store::redis::Health`]). When it turns SERVING (and after every outage) the
/// accepted stream's consumer group is made sure of. One log line per change.
async fn watch_redis(
    store: Arc<RedisStore>,
    health: HealthReporter,
    metrics: Arc<Metrics>,
    consumer_group: String,
    probe_timeout: Duration,
) {
    let mut serving = false;
    let mut ticks: u32 = 0;
    // Whether the line saying Redis cannot be used (and why) was written since it last served.
    let mut said_down = false;
    loop {
        // The connection records the probe's outcome; a probe outliving its own response
        // timeout is recorded as a timeout when dropped.
        let probe = tokio::time::timeout(probe_timeout, store.check()).await;
        let cause = match probe {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {probe_timeout:?}")),
        };
        let up = store.serving()
            && (serving
                || tokio::time::timeout(probe_timeout, store.ensure_consumer_group())
                    .await
                    .is_ok_and(|r| r.is_ok()));
        if up && !serving {
            tracing::info!(redis = %store.settings().url, "Redis answers and takes writes: SERVING");
            report_persistence(&store).await;
            said_down = false;
        } else if !up && !said_down && (serving || cause.is_some()) {
            // One line, with what Redis (or the network) said: a wrong password, a refused
            // write, nothing listening, no answer.
            tracing::warn!(
                redis = %store.settings().url,
                cause = cause.as_deref().unwrap_or("requests fail"),
                "Redis cannot be used: NOT_SERVING until it answers"
            );
            said_down = true;
        }
        if up != serving {
            serving = up;
            set_health(&health, serving_status(up)).await;
        }
        // The queue gauges, every other probe.
        if serving
            && ticks.is_multiple_of(2)
            && let Ok(Ok(depths)) =
                tokio::time::timeout(probe_timeout, store.queue_depths(&consumer_group)).await
        {
            metrics.queue_depths(&depths);
        }
        ticks = ticks.wrapping_add(1);
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

/// Checks the embedded store every [`HEALTH_INTERVAL`]: SERVING while it answers, NOT_SERVING
/// after three failures in a row (a full disk, an unreadable file). One log line per change.
async fn watch_embedded(
    store: SqliteStore,
    health: HealthReporter,
    metrics: Arc<Metrics>,
    probe_timeout: Duration,
) {
    let mut serving = false;
    let mut failures = 0u32;
    let mut ticks: u32 = 0;
    loop {
        let ok = tokio::time::timeout(probe_timeout, store.check())
            .await
            .is_ok_and(|r| r.is_ok());
        failures = if ok { 0 } else { failures + 1 };
        let up = ok || (serving && failures < 3);
        if up != serving {
            serving = up;
            if up {
                tracing::info!(path = %store.path().display(), "the embedded store answers: SERVING");
            } else {
                tracing::warn!(path = %store.path().display(), "the embedded store fails: NOT_SERVING until it recovers");
            }
            set_health(&health, serving_status(up)).await;
        }
        // The queue gauges, every other probe (each second), as on Redis: counting goes
        // through the writer, beside the submissions.
        if serving
            && ticks.is_multiple_of(2)
            && let Ok(Ok(depths)) =
                tokio::time::timeout(probe_timeout, SettingsStore::queue_depths(&store, "")).await
        {
            metrics.queue_depths(&depths);
        }
        ticks = ticks.wrapping_add(1);
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

/// Says in one line what Redis keeps on disk: a warning when it keeps nothing.
async fn report_persistence(store: &RedisStore) {
    match store.persistence().await {
        Some((sentence, true)) => tracing::warn!("Redis persistence: {sentence}"),
        Some((sentence, false)) => tracing::info!("Redis persistence: {sentence}"),
        None => tracing::info!(
            "Redis persistence: unknown (CONFIG GET is not allowed); see README, Durability"
        ),
    }
}

/// The health name under which the rate limiter reports its mode: SERVING while the cluster
/// tier decides, NOT_SERVING while it cannot be reached and the failure policy decides.
pub const RATE_LIMIT_HEALTH: &str = "moderation.v1.RateLimit";

/// Reports the rate limiter's mode under [`RATE_LIMIT_HEALTH`].
async fn watch_rate_limiter(limiter: Arc<TwoTier>, health: HealthReporter) {
    let mut reported = None;
    loop {
        let degraded = limiter.degraded();
        if reported != Some(degraded) {
            let status = serving_status(!degraded);
            health.set_service_status(RATE_LIMIT_HEALTH, status).await;
            reported = Some(degraded);
        }
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
