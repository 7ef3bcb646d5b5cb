//! The settings in force on this instance, and how they are kept current: every instance
//! subscribes to the settings channel and re-reads when an update is announced (within
//! milliseconds), and re-reads every few seconds anyway, in case an announcement was missed
//! while it was disconnected. Applying settings swaps what the pipeline, the rate limiter, the
//! CAPTCHAs and the classifier read; requests in flight finish with what they started with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_stream::StreamExt;

use super::lists::Lists;
use super::{Context, Effective, Source, Stored, Tunables, follow_model, resolve};
use crate::captcha::{Captchas, Required};
use crate::classifier::{Model, ModelError};
use crate::classify::{InForce, Loaded, ModelClassifier};
use crate::decide::Thresholds;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::rate_limit::TwoTier;
use crate::settings::store::SettingsStore;

/// What the settings start from: the file's values (and the model's thresholds), and what a
/// check needs to know of the rest of the configuration.
#[derive(Clone, Debug)]
pub struct Base {
    /// The values.
    pub tunables: Tunables,
    /// Where each came from (keys left out came from the file).
    pub sources: BTreeMap<&'static str, Source>,
    /// The configuration a check consults.
    pub context: Context,
}

/// The settings the pipeline reads for one request.
#[derive(Debug)]
pub struct Snapshot {
    /// The values, their sources and version.
    pub effective: Effective,
    /// The block and allow lists, ready to match.
    pub lists: Lists,
    /// The article controls, compiled.
    pub articles: crate::articles::ArticleRules,
    /// The thresholds a candidate model in shadow is judged by: ops' where they set them, the
    /// candidate's own recommendations where the active model's apply.
    pub candidate_thresholds: Option<Thresholds>,
}

/// The parts of the service that settings change.
pub struct Targets {
    /// Quotas.
    pub limiter: Arc<TwoTier>,
    /// CAPTCHA modes.
    pub captchas: Arc<Captchas>,
    /// Models.
    pub classifier: Arc<ModelClassifier>,
    /// The models directory.
    pub models: Arc<Models>,
    /// Settings version and models in force.
    pub metrics: Arc<Metrics>,
}

/// The settings in force on this instance.
pub struct Live {
    base: Base,
    targets: Targets,
    snapshot: ArcSwap<Snapshot>,
    /// The stored settings applied last (one application at a time).
    applying: tokio::sync::Mutex<Option<Stored>>,
}

/// The article controls of `settings` (checked when they were set; the defaults if they
/// somehow do not compile, said in the log).
fn articles(settings: &crate::articles::ArticleSettings) -> crate::articles::ArticleRules {
    crate::articles::ArticleRules::new(settings).unwrap_or_else(|e| {
        tracing::error!(error = %e, "article settings do not compile; none apply");
        crate::articles::ArticleRules::default()
    })
}

impl Live {
    /// Settings from `base` alone, applied to `targets`.
    pub fn new(base: Base, targets: Targets) -> Self {
        let (effective, _) = resolve(&base.tunables, &base.sources, &Stored::default());
        targets
            .metrics
            .settings_applied(0, &effective.tunables.model, None);
        Live {
            snapshot: ArcSwap::from_pointee(Snapshot {
                lists: Lists::new(&effective.tunables.lists),
                articles: articles(&effective.tunables.articles),
                effective,
                candidate_thresholds: None,
            }),
            base,
            targets,
            applying: tokio::sync::Mutex::new(None),
        }
    }

    /// The settings now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// What the settings start from.
    pub fn base(&self) -> &Base {
        &self.base
    }

    /// What a check consults, with the models directory as it is now (and the models in force,
    /// which may have been loaded from elsewhere at start-up).
    pub fn context(&self) -> Context {
        let mut models = self.targets.models.names();
        let in_force = self.targets.classifier.in_force();
        for loaded in std::iter::once(&in_force.active).chain(in_force.shadow.as_ref()) {
            if !models.iter().any(|m| **m == *loaded.version) {
                models.push(loaded.version.to_string());
            }
        }
        Context {
            models,
            ..self.base.context.clone()
        }
    }

    /// The models directory.
    pub fn models(&self) -> &Arc<Models> {
        &self.targets.models
    }

    /// A model's card and thresholds, without keeping it loaded (for listings).
    pub async fn peek_model(&self, name: &str) -> Result<Arc<Model>, ModelError> {
        self.read_model(name, Models::peek).await
    }

    /// Loads a model by name (and keeps it) without blocking the runtime.
    pub async fn load_model(&self, name: &str) -> Result<Arc<Model>, ModelError> {
        self.read_model(name, Models::load).await
    }

    /// Reads a model file on a blocking thread.
    async fn read_model(
        &self,
        name: &str,
        read: fn(&Models, &str) -> Result<Arc<Model>, ModelError>,
    ) -> Result<Arc<Model>, ModelError> {
        let models = self.targets.models.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || read(&models, &name))
            .await
            .unwrap_or_else(|e| {
                Err(ModelError::Corrupt {
                    path: String::new(),
                    reason: format!("reading the model failed: {e}"),
                })
            })
    }

    /// Puts `stored` in force, unless it is what is in force already. A model that cannot be
    /// loaded here leaves the current one scoring (and is logged and counted); everything else
    /// is applied. The caller holds the lock.
    async fn apply_locked(&self, stored: Stored, last: &mut Option<Stored>) {
        if last.as_ref() == Some(&stored) {
            return;
        }
        let current = self.snapshot();
        let (mut effective, warnings) = resolve(&self.base.tunables, &self.base.sources, &stored);
        for warning in warnings {
            tracing::warn!(version = stored.version, "{warning}");
            self.targets.metrics.settings_error();
        }
        let in_force = self.targets.classifier.in_force();
        let wanted = effective.tunables.model.clone();
        let active = if *in_force.active.version == *wanted {
            in_force.active.clone()
        } else {
            match self.load_model(&wanted).await {
                Ok(model) => Loaded {
                    model,
                    version: Arc::from(wanted.as_str()),
                },
                Err(e) => {
                    tracing::error!(model = %wanted, error = %e, "the model set at runtime cannot be loaded here; the current one goes on scoring");
                    self.targets.metrics.settings_error();
                    in_force.active.clone()
                }
            }
        };
        effective.tunables.model = active.version.to_string();
        // Thresholds the configuration leaves to the model follow the model in force.
        follow_model(&mut effective, Thresholds::from(active.model.thresholds()));
        let shadow = match effective.tunables.model_shadow.clone() {
            None => None,
            Some(name) => match self.load_model(&name).await {
                Ok(model) => Some(Loaded {
                    model,
                    version: Arc::from(name.as_str()),
                }),
                Err(e) => {
                    tracing::error!(model = %name, error = %e, "the candidate model cannot be loaded here");
                    self.targets.metrics.settings_error();
                    None
                }
            },
        };
        let candidate_thresholds = shadow.as_ref().map(|c| {
            let mut judged = effective.clone();
            follow_model(&mut judged, Thresholds::from(c.model.thresholds()));
            judged.tunables.thresholds
        });
        let t = &mut effective.tunables;
        t.model_shadow = shadow.as_ref().map(|s| s.version.to_string());
        self.targets.classifier.switch(InForce { active, shadow });
        self.targets
            .limiter
            .reconfigure(t.rate_limit_enabled, &t.buckets);
        self.targets.captchas.require(Required {
            mode: t.captcha_mode,
            articles: t.captcha_articles.clone(),
        });
        self.targets.metrics.settings_applied(
            effective.version,
            &effective.tunables.model,
            effective.tunables.model_shadow.as_deref(),
        );
        if effective.version != current.effective.version {
            tracing::info!(version = effective.version, "runtime settings applied");
        }
        self.snapshot.store(Arc::new(Snapshot {
            lists: Lists::new(&effective.tunables.lists),
            articles: articles(&effective.tunables.articles),
            effective,
            candidate_thresholds,
        }));
        *last = Some(stored);
    }

    /// Reads the stored settings and applies them. Reading and applying happen under one lock,
    /// so two refreshes never apply an older read after a newer one.
    pub async fn refresh(&self, store: &dyn SettingsStore) -> Result<(), crate::store::StoreError> {
        let mut last = self.applying.lock().await;
        let stored = store.load_settings().await?;
        self.apply_locked(stored, &mut last).await;
        Ok(())
    }
}

/// Keeps `live` current until the task is dropped: re-reads on every announcement and every
/// `every`, and resubscribes when the subscription breaks.
pub async fn watch(live: Arc<Live>, store: Arc<dyn SettingsStore>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut subscription = match store.announcements().await {
            Ok(announcements) => Some(announcements),
            Err(e) => {
                tracing::debug!(error = %e, "cannot subscribe to settings announcements yet");
                None
            }
        };
        // Whatever was announced while not subscribed is read now.
        if let Err(e) = live.refresh(store.as_ref()).await {
            tracing::debug!(error = %e, "cannot read the runtime settings");
        }
        match subscription.as_mut() {
            Some(messages) => loop {
                tokio::select! {
                    message = messages.next() => {
                        if message.is_none() {
                            tracing::warn!("the settings subscription broke; resubscribing");
                            break;
                        }
                    }
                    _ = tick.tick() => {}
                }
                if let Err(e) = live.refresh(store.as_ref()).await {
                    tracing::debug!(error = %e, "cannot read the runtime settings");
                }
            },
            None => {
                tick.tick().await;
            }
        }
    }
}
