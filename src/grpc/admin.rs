//! `AdminService`: runtime settings, model versions and statistics for operators. The mapping
//! from errors to statuses is the table in [`admin_status`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{ERROR_DOMAIN, actor, deadline, invalid_argument, timestamp};
use crate::proto::v1 as pb;
use crate::settings::admin::{Admin, AdminError};
use crate::settings::{Change, Effective, Source};
use crate::store::StoreError;

/// `AdminService`.
#[derive(Clone)]
pub struct AdminApi {
    admin: Arc<Admin>,
    rescanner: Arc<crate::rescan::Rescanner>,
    request_timeout: Duration,
}

impl AdminApi {
    /// The service over `admin`. Updates may take longer than a submission (a model is loaded
    /// to check it), so each request may take up to ten times `request_timeout`.
    pub fn new(
        admin: Arc<Admin>,
        rescanner: Arc<crate::rescan::Rescanner>,
        request_timeout: Duration,
    ) -> Self {
        AdminApi {
            admin,
            rescanner,
            request_timeout: request_timeout * 10,
        }
    }

    /// When a request must be answered (the client's shorter `grpc-timeout` wins).
    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        deadline(request, self.request_timeout)
    }

    async fn within<T>(
        &self,
        deadline: Instant,
        work: impl Future<Output = Result<T, AdminError>>,
    ) -> Result<T, AdminError> {
        tokio::time::timeout_at(deadline.into(), work)
            .await
            .unwrap_or_else(|_| {
                Err(AdminError::Store(StoreError::Unavailable(
                    "no answer before the deadline".into(),
                )))
            })
    }
}

/// The status for a refused request. One arm per error, each with why that code.
pub fn admin_status(error: &AdminError) -> Status {
    match error {
        // The operator's tool shows each violation next to its setting.
        AdminError::Invalid(violations) => invalid_argument("the settings cannot work", violations),
        // Someone else changed them: read again, then decide whether the change still holds.
        AdminError::Stale { current, given } => Status::with_error_details(
            Code::Aborted,
            error.to_string(),
            ErrorDetails::with_error_info(
                "STALE_VERSION",
                ERROR_DOMAIN,
                [
                    ("current_version".to_owned(), current.to_string()),
                    ("given_version".to_owned(), given.to_string()),
                ],
            ),
        ),
        AdminError::NoEarlierModel => Status::with_error_details(
            Code::FailedPrecondition,
            error.to_string(),
            ErrorDetails::with_error_info("NO_EARLIER_MODEL", ERROR_DOMAIN, []),
        ),
        AdminError::Store(StoreError::Unavailable(_)) => Status::with_error_details(
            Code::Unavailable,
            "the settings cannot be reached right now; retry",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
        ),
        AdminError::Store(_) => Status::internal("internal error"),
    }
}

fn refuse(operation: &str, error: AdminError) -> Status {
    let status = admin_status(&error);
    match &error {
        AdminError::Store(e) => tracing::warn!(operation, error = %e, "admin operation failed"),
        _ => {
            tracing::info!(operation, code = ?status.code(), error = %error, "admin operation refused")
        }
    }
    status
}

fn settings_message(e: &Effective) -> pb::Settings {
    pb::Settings {
        version: e.version,
        settings: e
            .entries()
            .into_iter()
            .map(|(key, value, source)| {
                let (source, set_by, set_at) = match source {
                    Source::File => (pb::SettingSource::File, String::new(), None),
                    Source::Model => (pb::SettingSource::Model, String::new(), None),
                    Source::Runtime { by, at_ms } => {
                        (pb::SettingSource::Runtime, by, Some(timestamp(at_ms)))
                    }
                };
                pb::Setting {
                    key: key.name.to_owned(),
                    value,
                    source: source.into(),
                    set_by,
                    set_at,
                    description: key.help.to_owned(),
                }
            })
            .collect(),
    }
}

fn counts(map: std::collections::BTreeMap<String, u64>) -> Vec<pb::Count> {
    map.into_iter()
        .map(|(name, count)| pb::Count { name, count })
        .collect()
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn get_settings(
        &self,
        request: Request<pb::GetSettingsRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        let deadline = self.deadline(&request);
        let settings = self
            .within(deadline, self.admin.get())
            .await
            .map_err(|e| refuse("GetSettings", e))?;
        Ok(Response::new(settings_message(&settings)))
    }

    async fn update_settings(
        &self,
        request: Request<pb::UpdateSettingsRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        let deadline = self.deadline(&request);
        let by = actor(&request);
        let r = request.into_inner();
        let changes: Vec<Change> = r
            .changes
            .into_iter()
            .map(|c| {
                if c.reset {
                    Change::Reset { key: c.key }
                } else {
                    Change::Set {
                        key: c.key,
                        value: c.value,
                    }
                }
            })
            .collect();
        let settings = self
            .within(
                deadline,
                self.admin.update(r.version, &changes, &by, &r.note),
            )
            .await
            .map_err(|e| refuse("UpdateSettings", e))?;
        tracing::info!(by, version = settings.version, "settings updated");
        Ok(Response::new(settings_message(&settings)))
    }

    async fn list_settings_audit(
        &self,
        request: Request<pb::ListSettingsAuditRequest>,
    ) -> Result<Response<pb::ListSettingsAuditResponse>, Status> {
        let deadline = self.deadline(&request);
        let limit = match request.into_inner().limit {
            0 => 20,
            n => n.min(1000) as usize,
        };
        let records = self
            .within(deadline, self.admin.audit(limit))
            .await
            .map_err(|e| refuse("ListSettingsAudit", e))?;
        Ok(Response::new(pb::ListSettingsAuditResponse {
            records: records
                .into_iter()
                .map(|a| pb::SettingsAudit {
                    version: a.version,
                    by: a.by,
                    at: Some(timestamp(a.at_ms)),
                    note: a.note,
                    changes: a
                        .changes
                        .into_iter()
                        .map(|c| pb::AuditChange {
                            key: c.key,
                            old_value: c.old,
                            new_value: c.new,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let deadline = self.deadline(&request);
        let models = self
            .within(deadline, async { Ok(self.admin.models().await) })
            .await
            .map_err(|e| refuse("ListModels", e))?;
        Ok(Response::new(pb::ListModelsResponse {
            models: models
                .into_iter()
                .map(|m| {
                    let t = m.thresholds;
                    pb::ModelVersion {
                        trained_at: m
                            .info
                            .as_ref()
                            .map(|i| i.trained_at.clone())
                            .unwrap_or_default(),
                        trained_on: m.info.map(|i| i.trained_on).unwrap_or_default(),
                        active: m.active,
                        shadow: m.shadow,
                        recommended_accept_below: t.map_or(0.0, |t| t.accept_below),
                        recommended_reject_at: t.map_or(0.0, |t| t.reject_at),
                        recommended_review_toxic_at: t.map_or(0.0, |t| t.review_toxic_at),
                        error: m.error.unwrap_or_default(),
                        name: m.name,
                    }
                })
                .collect(),
        }))
    }

    async fn activate_model(
        &self,
        request: Request<pb::ActivateModelRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        let deadline = self.deadline(&request);
        let by = actor(&request);
        let r = request.into_inner();
        let settings = self
            .within(
                deadline,
                self.admin.activate(&r.name, r.version, &by, &r.note),
            )
            .await
            .map_err(|e| refuse("ActivateModel", e))?;
        tracing::info!(by, model = %r.name, "model activated");
        Ok(Response::new(settings_message(&settings)))
    }

    async fn rollback_model(
        &self,
        request: Request<pb::RollbackModelRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        let deadline = self.deadline(&request);
        let by = actor(&request);
        let r = request.into_inner();
        let settings = self
            .within(deadline, self.admin.rollback(r.version, &by, &r.note))
            .await
            .map_err(|e| refuse("RollbackModel", e))?;
        Ok(Response::new(settings_message(&settings)))
    }

    async fn rescan(
        &self,
        request: Request<pb::RescanRequest>,
    ) -> Result<Response<pb::RescanResponse>, Status> {
        let deadline = self.deadline(&request);
        let r = request.into_inner();
        let found = self
            .rescanner
            .run(r.published_days.min(3650), r.flag, deadline)
            .await
            .map_err(|e| refuse("Rescan", AdminError::Store(e)))?;
        let state = |o: crate::decide::Outcome| i32::from(pb::CommentState::from(o));
        Ok(Response::new(pb::RescanResponse {
            model: found.model,
            scanned: u32::try_from(found.scanned).unwrap_or(u32::MAX),
            changed: u32::try_from(found.changed.len()).unwrap_or(u32::MAX),
            flagged: u32::try_from(found.flagged).unwrap_or(u32::MAX),
            changes: found
                .changed
                .into_iter()
                .take(1000)
                .map(|c| pb::RescanChange {
                    comment_id: c.id.to_string(),
                    now: state(c.now),
                    would: state(c.would),
                    reasons: c.reasons,
                    spam_score: c.spam,
                    toxic_score: c.toxic,
                })
                .collect(),
        }))
    }

    async fn get_stats(
        &self,
        request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let deadline = self.deadline(&request);
        let stats = self
            .within(deadline, self.admin.stats())
            .await
            .map_err(|e| refuse("GetStats", e))?;
        let snapshot = self.admin.in_force();
        let t = &snapshot.effective.tunables;
        Ok(Response::new(pb::GetStatsResponse {
            last_hour: counts(stats.last_hour),
            last_day: counts(stats.last_day),
            flagged: stats.flagged,
            accepted_unread: stats.accepted_unread,
            settings_version: snapshot.effective.version,
            active_model: t.model.clone(),
            shadow_model: t.model_shadow.clone().unwrap_or_default(),
        }))
    }
}
