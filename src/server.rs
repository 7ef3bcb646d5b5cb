//! Wires the service from its configuration and runs it: the gRPC services (comments, health,
//! reflection), a watch on Redis that drives the health status, and graceful shutdown.
//!
//! [`App::build`] loads everything that can fail at start-up (the model, the store) before
//! anything listens; [`App::run`] takes the listener and the shutdown signal as parameters, so
//! tests bind port 0 and shut down when they choose.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::captcha::Captchas;
use crate::classifier::Model;
use crate::classify::ModelClassifier;
use crate::config::Config;
use crate::decide::Thresholds;
use crate::grpc::{CommentApi, ModerationApi};
use crate::pipeline::Pipeline;
use crate::proto::v1::comment_service_server::CommentServiceServer;
use crate::proto::v1::moderation_service_server::ModerationServiceServer;
use crate::rate_limit;
use crate::rate_limit::cluster::ClusterLimiter;
use crate::rate_limit::{RateLimiter, TwoTier};
use crate::review::Queue;
use crate::store::Store;
use crate::store::redis::RedisStore;

/// The gRPC service names whose health is reported (besides the overall "").
const SERVICE_NAMES: &[&str] = &[
    "moderation.v1.CommentService",
    "moderation.v1.ModerationService",
];

/// How often Redis is pinged for the health status.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// A built service, ready to run.
pub struct App {
    config: Config,
    pipeline: Arc<Pipeline>,
    captchas: Arc<Captchas>,
    store: Arc<RedisStore>,
    queue: Arc<Queue>,
    limiter: Option<Arc<TwoTier>>,
}

/// The rate limiter of `config`, on the store's Redis unless `rate_limit.redis_url` names
/// another.
fn two_tier_limiter(config: &Config, store: &RedisStore) -> Result<TwoTier> {
    let settings = &config.rate_limit;
    let connection = match &settings.redis_url {
        Some(url) => {
            let limiter_redis = crate::store::redis::RedisSettings {
                url: url.clone(),
                ..config.redis.clone()
            };
            RedisStore::new(limiter_redis, settings.cluster_timeout)
                .context("setting up the rate limiter's Redis (rate_limit.redis_url)")?
                .connection()
        }
        None => store.connection(),
    };
    let cluster = ClusterLimiter::new(connection, &config.redis.prefix, &settings.buckets);
    Ok(TwoTier::new(
        settings,
        cluster,
        governor::clock::DefaultClock::default(),
    ))
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
        let recommended = Thresholds::from(model.thresholds());
        let d = config.decision;
        let thresholds = Thresholds {
            accept_below: d.accept_below.unwrap_or(recommended.accept_below),
            reject_at: d.reject_at.unwrap_or(recommended.reject_at),
            review_toxic_at: d.review_toxic_at.unwrap_or(recommended.review_toxic_at),
        };
        if let Some((name, problem)) = thresholds.problems().into_iter().next() {
            anyhow::bail!("decision.{name} {problem}");
        }
        let store = Arc::new(
            RedisStore::new(config.redis.clone(), config.server.request_timeout)
                .context("setting up Redis (redis.url)")?,
        );
        let limiter = if config.rate_limit.enabled {
            Some(Arc::new(two_tier_limiter(&config, &store)?))
        } else {
            None
        };
        let rate_limiter: Arc<dyn RateLimiter> = match &limiter {
            Some(l) => l.clone(),
            None => Arc::new(rate_limit::Off),
        };
        let captchas = Arc::new(Captchas::new(
            config.captcha.clone(),
            store.connection(),
            &config.redis.prefix,
        ));
        let pipeline = Arc::new(Pipeline {
            limits: config.comments,
            thresholds,
            bots: config.bots,
            rate_limiter,
            captcha: captchas.clone(),
            classifier: Arc::new(ModelClassifier::new(model)),
            store: store.clone(),
        });
        let queue = Arc::new(Queue::new(store.clone(), config.review));
        Ok(App {
            config,
            pipeline,
            captchas,
            store,
            queue,
            limiter,
        })
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
        self,
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

        let watch = tokio::spawn(watch_redis(self.store.clone(), health.clone()));
        let watch_limiter = self
            .limiter
            .clone()
            .map(|l| tokio::spawn(watch_rate_limiter(l, health.clone())));

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let serving = Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(comments)
            .add_service(moderation)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            });
        tracing::info!(%address, model = %self.pipeline_model(), redis = %self.config.redis.url, "serving");

        tokio::pin!(serving);
        let stop_watching = || {
            watch.abort();
            if let Some(w) = &watch_limiter {
                w.abort();
            }
        };
        tokio::select! {
            result = &mut serving => {
                stop_watching();
                return result.context("the gRPC server failed");
            }
            () = shutdown => {}
        }
        tracing::info!("shutting down: health NOT_SERVING, finishing in-flight requests");
        stop_watching();
        set_health(&health, ServingStatus::NotServing).await;
        let _ = stop_tx.send(());
        match tokio::time::timeout(server.shutdown_grace, &mut serving).await {
            Ok(result) => result.context("the gRPC server failed")?,
            Err(_) => tracing::warn!(
                grace = ?server.shutdown_grace,
                "in-flight requests did not finish within the grace period; stopping anyway"
            ),
        }
        tracing::info!("stopped");
        Ok(())
    }

    fn pipeline_model(&self) -> String {
        self.config.classifier.model.display().to_string()
    }
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        health.set_service_status(*name, status).await;
    }
}

/// Pings Redis every [`HEALTH_INTERVAL`]: SERVING while it answers, NOT_SERVING while it does
/// not. When it first answers (and after every outage) the accepted stream's consumer group is
/// made sure of.
async fn watch_redis(store: Arc<RedisStore>, health: HealthReporter) {
    let mut serving = false;
    let mut warned = false;
    loop {
        let up = tokio::time::timeout(HEALTH_INTERVAL, store.check())
            .await
            .is_ok_and(|r| r.is_ok());
        let up = up
            && (serving
                || tokio::time::timeout(HEALTH_INTERVAL, store.ensure_consumer_group())
                    .await
                    .is_ok_and(|r| r.is_ok()));
        if up != serving {
            serving = up;
            if up {
                tracing::info!("Redis answers: SERVING");
                warned = false;
            } else {
                tracing::warn!("Redis does not answer: NOT_SERVING until it does");
            }
            let status = if up {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_health(&health, status).await;
        } else if !up && !warned {
            tracing::warn!(
                redis = %store.settings().url,
                "Redis is not reachable; start one (for example `redis-server --port 6379`) or set MODERATION_REDIS__URL. Serving NOT_SERVING until it answers."
            );
            warned = true;
        }
        tokio::time::sleep(HEALTH_INTERVAL).await;
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
            let status = if degraded {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            };
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
