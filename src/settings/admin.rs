//! What operators do with settings and models: read them, update them (versioned, checked as a
//! whole, audited, announced to every instance), activate and roll back models, read the
//! statistics. The gRPC layer maps each request here and each error to a status.

use std::sync::Arc;

use super::live::Live;
use super::{Change, Effective, apply};
use crate::comment::Violation;
use crate::settings::{Audit, AuditChange, SettingsStore, Stats};
use crate::store::StoreError;

/// Why an operator's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Settings that cannot work; every violation names its key.
    #[error("invalid settings")]
    Invalid(Vec<Violation>),
    /// The settings changed since the caller read them.
    #[error("the settings are at version {current}, not {given}")]
    Stale {
        /// Their version now.
        current: u64,
        /// The version the caller sent.
        given: u64,
    },
    /// No earlier model to roll back to.
    #[error("no earlier model in the audit log to roll back to")]
    NoEarlierModel,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A model file as operators see it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelListing {
    /// Its name.
    pub name: String,
    /// Its card, when it loads.
    pub info: Option<crate::classifier::model::ModelInfo>,
    /// Its recommended thresholds, when it loads.
    pub thresholds: Option<crate::classifier::Thresholds>,
    /// Scoring now.
    pub active: bool,
    /// The candidate in shadow.
    pub shadow: bool,
    /// Why it cannot be loaded.
    pub error: Option<String>,
}

/// Settings and models, for operators.
pub struct Admin {
    live: Arc<Live>,
    store: Arc<dyn SettingsStore>,
    consumer_group: String,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Admin {
    /// Over `live`, stored in `store`; `consumer_group` is the portal's, for the unread count.
    pub fn new(live: Arc<Live>, store: Arc<dyn SettingsStore>, consumer_group: &str) -> Self {
        Admin {
            live,
            store,
            consumer_group: consumer_group.to_owned(),
        }
    }

    /// The settings in force, read fresh from Redis (so a caller about to update sees the
    /// latest version even if this instance has not applied it yet).
    pub async fn get(&self) -> Result<Effective, AdminError> {
        self.live.refresh(self.store.as_ref()).await?;
        Ok(self.live.snapshot().effective.clone())
    }

    /// Applies `changes` replacing `version`, as `by`, and puts the result in force here at
    /// once (the other instances follow on the announcement).
    pub async fn update(
        &self,
        version: u64,
        changes: &[Change],
        by: &str,
        note: &str,
    ) -> Result<Effective, AdminError> {
        let stored = self.store.load_settings().await?;
        if stored.version != version {
            return Err(AdminError::Stale {
                current: stored.version,
                given: version,
            });
        }
        let base = self.live.base();
        let next = apply(
            &base.tunables,
            &base.sources,
            &stored,
            changes,
            by,
            now_ms(),
            &self.live.context(),
        )
        .map_err(AdminError::Invalid)?;
        self.check_models(changes).await?;
        let before = self.live.snapshot().effective.clone();
        let mut after = super::resolve(&base.tunables, &base.sources, &next).0;
        // Thresholds left to the model are the recommendations of the model that will be active.
        if let Ok(model) = self.live.load_model(&after.tunables.model).await {
            super::follow_model(
                &mut after,
                crate::decide::Thresholds::from(model.thresholds()),
            );
            if let Some((name, problem)) = after.tunables.thresholds.problems().into_iter().next() {
                let key = match name {
                    "accept_below" => "decision.accept_below",
                    "reject_at" => "decision.reject_at",
                    _ => "decision.review_toxic_at",
                };
                return Err(AdminError::Invalid(vec![Violation::new(
                    key,
                    format!(
                        "{problem} (with the thresholds {} recommends)",
                        after.tunables.model
                    ),
                )]));
            }
        }
        let audit = Audit {
            version: next.version,
            by: by.to_owned(),
            at_ms: now_ms(),
            note: note.to_owned(),
            changes: diff(&before, &after),
        };
        if let Some(current) = self.store.update_settings(version, &next, &audit).await? {
            return Err(AdminError::Stale {
                current,
                given: version,
            });
        }
        // Whatever is newest in Redis now (another instance may have updated since).
        self.live.refresh(self.store.as_ref()).await?;
        Ok(self.live.snapshot().effective.clone())
    }

    /// Sets (or with `None`, lifts) one reader's standing, at whatever version the settings
    /// are (a concurrent update of other settings is retried, a few times).
    pub async fn set_reader(
        &self,
        id: crate::readers::ReaderId,
        status: Option<&crate::readers::Status>,
        by: &str,
        note: &str,
    ) -> Result<Effective, AdminError> {
        let key = crate::readers::status_key(&id);
        let change = match status {
            Some(s) => Change::Set {
                key,
                value: s.to_string(),
            },
            None => Change::Reset { key },
        };
        let mut attempts = 0;
        loop {
            let version = self.store.load_settings().await?.version;
            match self
                .update(version, std::slice::from_ref(&change), by, note)
                .await
            {
                Err(AdminError::Stale { .. }) if attempts < 5 => attempts += 1,
                done => return done,
            }
        }
    }

    /// Every model named in `changes` must load here, or the update is refused.
    async fn check_models(&self, changes: &[Change]) -> Result<(), AdminError> {
        let mut violations = Vec::new();
        for change in changes {
            if let Change::Set { key, value } = change
                && (key == "model.active" || key == "model.shadow")
                && !value.trim().is_empty()
                && let Err(e) = self.live.load_model(value.trim()).await
            {
                violations.push(Violation::new(
                    if key == "model.active" {
                        "model.active"
                    } else {
                        "model.shadow"
                    },
                    format!("cannot be loaded: {e}"),
                ));
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(AdminError::Invalid(violations))
        }
    }

    /// The latest `count` audit records, newest first.
    pub async fn audit(&self, count: usize) -> Result<Vec<Audit>, AdminError> {
        Ok(self.store.settings_audit(count).await?)
    }

    /// The models in the models directory.
    pub async fn models(&self) -> Vec<ModelListing> {
        let in_force = self.live.snapshot();
        let t = &in_force.effective.tunables;
        let mut out = Vec::new();
        for entry in self.live.models().list() {
            let loaded = self.live.peek_model(&entry.name).await;
            out.push(ModelListing {
                active: entry.name == t.model,
                shadow: t.model_shadow.as_deref() == Some(entry.name.as_str()),
                info: loaded.as_ref().ok().map(|m| m.info().clone()),
                thresholds: loaded.as_ref().ok().map(|m| m.thresholds()),
                error: loaded.err().map(|e| e.to_string()),
                name: entry.name,
            });
        }
        out
    }

    /// Makes `name` the active model; `version` 0 replaces whatever is current.
    pub async fn activate(
        &self,
        name: &str,
        version: u64,
        by: &str,
        note: &str,
    ) -> Result<Effective, AdminError> {
        let change = [Change::Set {
            key: "model.active".into(),
            value: name.to_owned(),
        }];
        if version != 0 {
            return self.update(version, &change, by, note).await;
        }
        // Whatever is current: another operator's concurrent update only costs a retry.
        let mut attempt = 0;
        loop {
            let current = self.store.load_settings().await?.version;
            match self.update(current, &change, by, note).await {
                Err(AdminError::Stale { .. }) if attempt < 3 => attempt += 1,
                other => return other,
            }
        }
    }

    /// Activates the model that was active before the current one was: the audit log's
    /// activations, each rollback undoing the one before it, so rolling back twice steps back
    /// twice. `version` 0 replaces whatever is current.
    pub async fn rollback(
        &self,
        version: u64,
        by: &str,
        note: &str,
    ) -> Result<Effective, AdminError> {
        let records = self.store.settings_audit(10_000).await?;
        let previous = previous_model(&records).ok_or(AdminError::NoEarlierModel)?;
        let note = if note.is_empty() {
            ROLLBACK.to_owned()
        } else {
            format!("{ROLLBACK} {note}")
        };
        self.activate(&previous, version, by, &note).await
    }

    /// Counts over the last hour and day, and the queues now.
    pub async fn stats(&self) -> Result<Stats, AdminError> {
        Ok(self.store.stats(now_ms(), &self.consumer_group).await?)
    }

    /// The settings in force on this instance.
    pub fn in_force(&self) -> Arc<super::live::Snapshot> {
        self.live.snapshot()
    }
}

/// How a rollback marks its audit record.
const ROLLBACK: &str = "[rollback]";

/// The model active before the current one, from audit records (newest first): activations
/// are pushed, rollbacks pop.
fn previous_model(records: &[Audit]) -> Option<String> {
    let mut history: Vec<String> = Vec::new();
    for record in records.iter().rev() {
        for c in record.changes.iter().filter(|c| c.key == "model.active") {
            if history.is_empty() {
                history.push(c.old.clone());
            }
            if record.note.starts_with(ROLLBACK) {
                history.pop();
                if history.last() != Some(&c.new) {
                    history.push(c.new.clone());
                }
            } else {
                history.push(c.new.clone());
            }
        }
    }
    (history.len() >= 2).then(|| history[history.len() - 2].clone())
}

/// The values that differ between two sets of settings, in key order.
fn diff(before: &Effective, after: &Effective) -> Vec<AuditChange> {
    let mut changes: Vec<AuditChange> = before
        .entries()
        .into_iter()
        .zip(after.entries())
        .filter(|((_, old, _), (_, new, _))| old != new)
        .map(|((k, old, _), (_, new, _))| AuditChange {
            key: k.name.to_owned(),
            old,
            new,
        })
        .collect();
    changes.extend(readers_diff(
        &before.tunables.readers.directory,
        &after.tunables.readers.directory,
    ));
    changes
}

/// The readers whose standing an update changed (empty text: none).
fn readers_diff(
    before: &crate::readers::Directory,
    after: &crate::readers::Directory,
) -> Vec<AuditChange> {
    fn text(d: &crate::readers::Directory, id: &crate::readers::ReaderId) -> String {
        d.get(id).map(|s| s.to_string()).unwrap_or_default()
    }
    let ids: std::collections::BTreeSet<_> = before
        .iter()
        .chain(after.iter())
        .map(|(id, _)| *id)
        .collect();
    ids.into_iter()
        .filter_map(|id| {
            let (old, new) = (text(before, &id), text(after, &id));
            (old != new).then(|| AuditChange {
                key: crate::readers::status_key(&id),
                old,
                new,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switch(version: u64, old: &str, new: &str, note: &str) -> Audit {
        Audit {
            version,
            by: "ops".into(),
            at_ms: 0,
            note: note.into(),
            changes: vec![AuditChange {
                key: "model.active".into(),
                old: old.into(),
                new: new.into(),
            }],
        }
    }

    #[test]
    fn rollbacks_step_back_through_the_activations() {
        // Newest first, as the audit log reads.
        let mut log = vec![switch(2, "b", "c", ""), switch(1, "a", "b", "")];
        assert_eq!(previous_model(&log).as_deref(), Some("b"));
        log.insert(0, switch(3, "c", "b", "[rollback]"));
        assert_eq!(
            previous_model(&log).as_deref(),
            Some("a"),
            "a second rollback goes further"
        );
        log.insert(0, switch(4, "b", "a", "[rollback] bad week"));
        assert_eq!(previous_model(&log), None, "nothing before the first model");
        assert_eq!(previous_model(&[]), None);
    }
}
