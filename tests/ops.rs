//! Operations end to end: runtime settings (versioned, validated, audited, reaching a second
//! server process within a second), shadow modes, model versions, API keys and roles on every
//! RPC, TLS with certificates made here, and the metrics endpoint.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{
    Backend, TestApp, cli, spawn_server, stdout, submission, test_config, test_config_on,
    violated_fields,
};
use moderation::auth::{KeySettings, Role};
use moderation::proto::v1 as pb;
use pb::admin_service_client::AdminServiceClient;
use pb::comment_service_client::CommentServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn change(key: &str, value: &str) -> pb::SettingChange {
    pb::SettingChange {
        key: key.into(),
        value: value.into(),
        reset: false,
    }
}

async fn update(
    admin: &mut AdminServiceClient<Channel>,
    changes: &[(&str, &str)],
) -> Result<pb::Settings, Status> {
    let version = admin
        .get_settings(pb::GetSettingsRequest {})
        .await?
        .into_inner()
        .version;
    admin
        .update_settings(pb::UpdateSettingsRequest {
            version,
            changes: changes.iter().map(|(k, v)| change(k, v)).collect(),
            note: "test".into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The count of `name` among `counts` (0 when absent).
fn count_of(counts: &[pb::Count], name: &str) -> u64 {
    counts
        .iter()
        .find(|c| c.name == name)
        .map_or(0, |c| c.count)
}

fn value<'a>(settings: &'a pb::Settings, key: &str) -> &'a pb::Setting {
    settings
        .settings
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no setting {key}"))
}

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Reads `GET /metrics` and parses the Prometheus text format.
async fn scrape(address: std::net::SocketAddr) -> Vec<Sample> {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_lowercase().contains("content-type: text/plain"),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').unwrap();
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), HashMap::new()),
            };
            Sample {
                name,
                labels,
                value: value.parse().unwrap_or_else(|_| panic!("{line}")),
            }
        })
        .collect()
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn spam(key: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        body: "Nhận làm bằng đại học giá rẻ, vay tiền nhanh không thế chấp, liên hệ zalo 0912 345 678 hoặc vào bit.ly/vay-nhanh".into(),
        ..submission(key)
    }
}

on_both_backends!(updates_are_versioned_validated_and_audited);
async fn updates_are_versioned_validated_and_audited(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    let mut admin = AdminServiceClient::new(app.channel().await);
    let before = admin
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.version, 0);
    let reject_at = value(&before, "decision.reject_at");
    assert_eq!(
        reject_at.source(),
        pb::SettingSource::Model,
        "the model's recommendation"
    );
    assert_eq!(
        value(&before, "captcha.mode").source(),
        pb::SettingSource::File
    );
    assert!(!reject_at.description.is_empty());

    let updated = admin
        .update_settings(pb::UpdateSettingsRequest {
            version: 0,
            changes: vec![
                change("decision.reject_at", "0.9"),
                change("lists.blocked_words", "lô đề, nha cai"),
            ],
            note: "mùa bóng đá".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.version, 1);
    let set = value(&updated, "decision.reject_at");
    assert_eq!(
        (set.value.as_str(), set.source()),
        ("0.9", pb::SettingSource::Runtime)
    );
    assert_eq!(set.set_by, "anonymous");
    assert!(set.set_at.is_some());

    // Replacing a version that is gone.
    let stale = admin
        .update_settings(pb::UpdateSettingsRequest {
            version: 0,
            changes: vec![change("decision.reject_at", "0.95")],
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let info = stale.get_details_error_info().unwrap();
    assert_eq!(info.reason, "STALE_VERSION");
    assert_eq!(info.metadata["current_version"], "1");

    // Invalid as a whole: every violation names its key, and nothing changes.
    let invalid = admin
        .update_settings(pb::UpdateSettingsRequest {
            version: 1,
            changes: vec![
                change("decision.accept_below", "0.95"),
                change("rate_limit.ip", "lots"),
                change("captcha.mode", "turnstile"),
                change("model.active", "no-such-model"),
            ],
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&invalid);
    fields.sort();
    assert_eq!(
        fields,
        [
            "captcha.mode",
            "decision.accept_below",
            "model.active",
            "rate_limit.ip"
        ]
    );
    let after = admin
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.version, 1);

    let audit = admin
        .list_settings_audit(pb::ListSettingsAuditRequest { limit: 10 })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].version, audit[0].by.as_str()), (1, "anonymous"));
    assert_eq!(audit[0].note, "mùa bóng đá");
    let changes: Vec<(&str, &str, &str)> = audit[0]
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.old_value.as_str(), c.new_value.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            (
                "decision.reject_at",
                value(&before, "decision.reject_at").value.as_str(),
                "0.9"
            ),
            ("lists.blocked_words", "", "lô đề, nha cai"),
        ]
    );

    // The block list is in force at once on this instance.
    let blocked = app
        .client
        .clone()
        .submit_comment(pb::SubmitCommentRequest {
            body: "Chơi lô đề ở đâu uy tín?".into(),
            ..submission("blocked-1")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(blocked.outcome(), pb::Outcome::Rejected);
    assert_eq!(blocked.reasons[0].code, "BLOCKED_WORD");
    assert!(blocked.reasons[0].message.contains("lô đề"));
}

on_both_backends!(shadow_modes_let_comments_through_and_count_what_they_would_do);
async fn shadow_modes_let_comments_through_and_count_what_they_would_do(backend: Backend) {
    let mut config = test_config_on(backend);
    config.captcha.secret = Some(moderation::secret::Secret::new("test secret"));
    config.rate_limit.email_hash_key = Some(moderation::secret::Secret::new("test key"));
    let app = TestApp::spawn(config).await;
    let mut admin = AdminServiceClient::new(app.channel().await);
    let mut client = app.client.clone();

    // Enforced first: the live quota refuses the second comment, the CAPTCHA the first.
    update(
        &mut admin,
        &[
            ("rate_limit.enabled", "true"),
            ("rate_limit.ip", "1/1h burst 1"),
            ("captcha.mode", "image"),
        ],
    )
    .await
    .unwrap();
    let refused = client
        .submit_comment(submission("enforced-1"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "no CAPTCHA answer"
    );
    let limited = client
        .submit_comment(submission("enforced-2"))
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");

    // In shadow: everything passes, and what would have happened is counted.
    update(
        &mut admin,
        &[
            ("rate_limit.ip.shadow", "true"),
            ("captcha.shadow", "true"),
            ("decision.shadow", "true"),
            ("decision.reject_at", "0.5"),
        ],
    )
    .await
    .unwrap();
    for k in 0..3 {
        let answer = client
            .submit_comment(spam(&format!("shadow-{k}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.outcome(), pb::Outcome::Accepted, "{answer:?}");
        assert!(
            answer.spam_score >= 0.5,
            "the classifier still scores: {}",
            answer.spam_score
        );
    }
    // A retry is answered from storage: its findings are not counted again.
    let again = client
        .submit_comment(spam("shadow-0"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    let stats = admin
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let count = |name: &str| count_of(&stats.last_hour, name);
    assert_eq!(count("accepted"), 3);
    assert_eq!(count("shadow_decision_rejected"), 3);
    assert_eq!(count("shadow_captcha_refused"), 3);
    let metrics = scrape(app.metrics_address).await;
    assert_eq!(
        sample(
            &metrics,
            "moderation_shadow_total",
            &[("stage", "decision"), ("would", "rejected")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "moderation_captcha_refusals_total",
            &[("reason", "CAPTCHA_MISSING"), ("shadow", "true")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "moderation_rate_limit_shadow_refusals_total",
            &[("bucket", "ip")]
        ),
        Some(3.0)
    );
}

on_both_backends!(the_metrics_endpoint_serves_prometheus_text);
async fn the_metrics_endpoint_serves_prometheus_text(backend: Backend) {
    let app = TestApp::spawn(test_config_on(backend)).await;
    app.wait_for_health(1).await;
    app.client
        .clone()
        .submit_comment(submission("metrics-1"))
        .await
        .unwrap();
    let refused = app
        .client
        .clone()
        .submit_comment(pb::SubmitCommentRequest {
            body: String::new(),
            ..submission("metrics-2")
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let m = scrape(app.metrics_address).await;
    let submit = [("method", "CommentService/SubmitComment")];
    assert_eq!(
        sample(
            &m,
            "moderation_grpc_requests_total",
            &[submit[0], ("code", "Ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "moderation_grpc_requests_total",
            &[submit[0], ("code", "InvalidArgument")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "moderation_grpc_request_seconds_count", &submit),
        Some(2.0)
    );
    assert_eq!(
        sample(&m, "moderation_comments_total", &[("outcome", "accepted")]),
        Some(1.0)
    );
    // The retry check is part of the store's one call ("replay" is timed only when it is asked
    // apart: before a hosted CAPTCHA, or after a refusal).
    for stage in ["validate", "lists", "classify", "store"] {
        assert!(
            sample(&m, "moderation_stage_seconds_count", &[("stage", stage)]).unwrap_or(0.0) >= 1.0,
            "stage {stage}"
        );
    }
    assert_eq!(
        sample(&m, "moderation_score_count", &[("head", "spam")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "moderation_model_info",
            &[("role", "active"), ("version", "vi-en-20261127")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&m, "moderation_settings_version", &[]), Some(0.0));
    assert_eq!(
        sample(&m, "moderation_rate_limit_cluster_mode", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "moderation_queue_depth", &[("queue", "flagged")]),
        Some(0.0)
    );
    // The queue gauges follow within a second or two.
    let mut unread = None;
    for _ in 0..30 {
        unread = sample(
            &scrape(app.metrics_address).await,
            "moderation_queue_depth",
            &[("queue", "accepted_unread")],
        );
        if unread == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        unread,
        Some(1.0),
        "the accepted comment is waiting for the portal"
    );
}

/// Keys for each role, and the configuration that knows them.
fn keys() -> (HashMap<Role, String>, Vec<KeySettings>) {
    let mut clear = HashMap::new();
    let mut settings = Vec::new();
    for (role, name) in [
        (Role::Portal, "portal-web"),
        (Role::Moderator, "lan"),
        (Role::Ops, "ops-minh"),
    ] {
        let key = moderation::auth::new_key().unwrap();
        settings.push(KeySettings {
            name: name.into(),
            roles: vec![role],
            sha256: moderation::auth::hash(&key),
        });
        clear.insert(role, key);
    }
    (clear, settings)
}

/// Calls `path` with an empty message and `key`; the status it ends with (OK included).
async fn call(channel: Channel, path: &str, key: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(tokio_stream::iter(vec![()]));
    if let Some(k) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
    match grpc.streaming(request, path, codec).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

on_both_backends!(every_rpc_needs_a_key_with_its_role);
async fn every_rpc_needs_a_key_with_its_role(backend: Backend) {
    // Which roles each method admits; every method the server describes must be here.
    let expected: &[(&str, &[Role])] = &[
        ("moderation.v1.CommentService/IssueCaptcha", &[Role::Portal]),
        (
            "moderation.v1.CommentService/SubmitComment",
            &[Role::Portal],
        ),
        (
            "moderation.v1.CommentService/GetComment",
            &[Role::Portal, Role::Moderator, Role::Ops],
        ),
        (
            "moderation.v1.ModerationService/ListFlagged",
            &[Role::Moderator],
        ),
        (
            "moderation.v1.ModerationService/ClaimFlagged",
            &[Role::Moderator],
        ),
        (
            "moderation.v1.ModerationService/DecideComment",
            &[Role::Moderator],
        ),
        (
            "moderation.v1.ModerationService/ReportComment",
            &[Role::Portal, Role::Moderator],
        ),
        (
            "moderation.v1.ModerationService/GetCommentHistory",
            &[Role::Moderator],
        ),
        ("moderation.v1.AdminService/GetSettings", &[Role::Ops]),
        ("moderation.v1.AdminService/UpdateSettings", &[Role::Ops]),
        ("moderation.v1.AdminService/ListSettingsAudit", &[Role::Ops]),
        ("moderation.v1.AdminService/ListModels", &[Role::Ops]),
        ("moderation.v1.AdminService/ActivateModel", &[Role::Ops]),
        ("moderation.v1.AdminService/RollbackModel", &[Role::Ops]),
        ("moderation.v1.AdminService/GetStats", &[Role::Ops]),
        ("moderation.v1.AdminService/Rescan", &[Role::Ops]),
        ("moderation.v1.FeedService/Subscribe", &[Role::Portal]),
        ("moderation.v1.FeedService/Ack", &[Role::Portal]),
        ("moderation.v1.ReaderService/GetReader", &[Role::Moderator]),
        (
            "moderation.v1.ReaderService/SetReaderStanding",
            &[Role::Moderator],
        ),
    ];
    use prost::Message;
    let descriptors =
        prost_types::FileDescriptorSet::decode(moderation::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut described: Vec<String> = descriptors
        .file
        .iter()
        .flat_map(|f| {
            let package = f.package().to_owned();
            f.service.iter().flat_map(move |s| {
                let service = format!("{package}.{}", s.name());
                s.method
                    .iter()
                    .map(move |m| format!("{service}/{}", m.name()))
            })
        })
        .collect();
    described.sort();
    let mut listed: Vec<String> = expected.iter().map(|(m, _)| (*m).to_owned()).collect();
    listed.sort();
    assert_eq!(described, listed, "the table covers every RPC");

    let (clear, key_settings) = keys();
    let mut config = test_config_on(backend);
    config.auth.enabled = true;
    config.auth.keys = key_settings;
    let app = TestApp::spawn(config).await;
    let channel = app.channel().await;
    for (method, allowed) in expected {
        let path = format!("/{method}");
        assert_eq!(
            call(channel.clone(), &path, None).await,
            Code::Unauthenticated,
            "{method} without a key"
        );
        assert_eq!(
            call(channel.clone(), &path, Some("not-a-key")).await,
            Code::Unauthenticated,
            "{method} with an unknown key"
        );
        for role in Role::ALL {
            let code = call(channel.clone(), &path, Some(&clear[&role])).await;
            if allowed.contains(&role) {
                assert!(
                    !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                    "{method} as {role}: {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{method} as {role}");
            }
        }
    }
    // Health stays open (load balancers); reflection needs a key.
    let health = "/grpc.health.v1.Health/Check";
    assert_eq!(call(channel.clone(), health, None).await, Code::Ok);
    let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    assert_eq!(
        call(channel.clone(), reflection, None).await,
        Code::Unauthenticated
    );
    assert_ne!(
        call(channel.clone(), reflection, Some(&clear[&Role::Ops])).await,
        Code::PermissionDenied
    );

    // E-mail addresses only for moderators and ops; the moderator is the key's owner.
    let with_key = |role: Role| {
        let key = clear[&role].clone();
        move |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
            Ok(r)
        }
    };
    let mut portal =
        CommentServiceClient::with_interceptor(channel.clone(), with_key(Role::Portal));
    let id = portal
        .submit_comment(submission("auth-1"))
        .await
        .unwrap()
        .into_inner()
        .comment_id;
    let email = |c: pb::GetCommentResponse| c.comment.unwrap().author_email;
    let get = pb::GetCommentRequest {
        comment_id: id.clone(),
    };
    assert_eq!(
        email(portal.get_comment(get.clone()).await.unwrap().into_inner()),
        None
    );
    let mut moderator =
        CommentServiceClient::with_interceptor(channel.clone(), with_key(Role::Moderator));
    assert_eq!(
        email(moderator.get_comment(get).await.unwrap().into_inner()).as_deref(),
        Some("an.nguyen@example.com")
    );
    let mut queue = pb::moderation_service_client::ModerationServiceClient::with_interceptor(
        channel.clone(),
        with_key(Role::Moderator),
    );
    let impersonating = queue
        .claim_flagged(pb::ClaimFlaggedRequest {
            moderator: "minh".into(),
            count: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(impersonating.code(), Code::PermissionDenied);
    queue
        .claim_flagged(pb::ClaimFlaggedRequest {
            count: 1,
            ..Default::default()
        })
        .await
        .expect("the key's owner claims");
}

/// A CA, and a certificate for `localhost` (server) or a client, signed by it.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    ca_params: rcgen::CertificateParams,
}

impl Pki {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "moderation test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        Pki {
            ca,
            ca_key,
            ca_params: params,
        }
    }

    /// (certificate PEM, key PEM).
    fn issue(&self, name: &str) -> (String, String) {
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A TLS endpoint for `app`, trusting `ca`, presenting `identity` if given.
fn https(
    app: &TestApp,
    ca: &tonic::transport::Certificate,
    identity: Option<tonic::transport::Identity>,
) -> tonic::transport::Endpoint {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .domain_name("localhost");
    if let Some(i) = identity {
        tls = tls.identity(i);
    }
    Channel::from_shared(format!("https://localhost:{}", app.address.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
}

on_both_backends!(tls_with_and_without_client_certificates);
async fn tls_with_and_without_client_certificates(backend: Backend) {
    use tonic::transport::{Certificate, Identity};
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki.issue("localhost");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_path = write("ca.pem", &pki.ca.pem());
    let tls = moderation::config::TlsSettings {
        cert: write("server.pem", &cert),
        key: write("server.key", &key),
        client_ca: None,
        client_auth_optional: false,
    };
    let mut config = test_config_on(backend);
    config.server.tls = Some(tls.clone());
    let app = TestApp::spawn(config).await;
    let ca = Certificate::from_pem(pki.ca.pem());
    let channel = https(&app, &ca, None)
        .connect()
        .await
        .expect("TLS handshake");
    let answer = CommentServiceClient::new(channel)
        .submit_comment(submission("tls-1"))
        .await
        .expect("a submission over TLS")
        .into_inner();
    assert_eq!(answer.outcome(), pb::Outcome::Accepted);
    // Plain HTTP/2 gets nowhere.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", app.address.port()))
        .unwrap()
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(c) => CommentServiceClient::new(c)
            .submit_comment(submission("plain-1"))
            .await
            .is_err(),
    };
    assert!(refused, "plain HTTP/2 is refused");

    // Client certificates required: only a client with one signed by the CA gets through.
    let mut config = test_config_on(backend);
    config.server.tls = Some(moderation::config::TlsSettings {
        client_ca: Some(ca_path),
        ..tls
    });
    let app = TestApp::spawn(config).await;
    let anonymous = match https(&app, &ca, None).connect().await {
        Err(_) => true,
        Ok(c) => CommentServiceClient::new(c)
            .submit_comment(submission("mtls-0"))
            .await
            .is_err(),
    };
    assert!(anonymous, "a client without a certificate is refused");
    let (client_cert, client_key) = pki.issue("portal-web");
    let channel = https(&app, &ca, Some(Identity::from_pem(client_cert, client_key)))
        .connect()
        .await
        .expect("mutual TLS handshake");
    CommentServiceClient::new(channel)
        .submit_comment(submission("mtls-1"))
        .await
        .expect("a client with a certificate gets through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_follow_one_update_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(moderation::classifier::DEFAULT_MODEL),
        models.join("vi-en-20261127.model"),
    )
    .unwrap();
    common::train_small_model(&models, "small-candidate");
    let prefix = format!("{{t-{}}}:", uuid::Uuid::now_v7().simple());
    let config_path = dir.path().join("moderation.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
            [redis]
            url = "{}"
            prefix = "{prefix}"
            [classifier]
            models_dir = "{}"
            [metrics]
            enabled = false
            [runtime]
            refresh = "30s"
            "#,
            common::redis_url(),
            models.display()
        ),
    )
    .unwrap();
    let (_a, channel_a) = spawn_server(&config_path).await;
    let (_b, channel_b) = spawn_server(&config_path).await;
    let mut admin_a = AdminServiceClient::new(channel_a.clone());
    let mut admin_b = AdminServiceClient::new(channel_b.clone());
    // The version each instance has in force (GetStats reports it without re-reading).
    let in_force = |mut admin: AdminServiceClient<Channel>| async move {
        admin
            .get_stats(pb::GetStatsRequest {})
            .await
            .unwrap()
            .into_inner()
    };
    let wait_for = |admin: AdminServiceClient<Channel>, version: u64| async move {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) {
            if in_force(admin.clone()).await.settings_version == version {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("version {version} not in force within a second");
    };

    let updated = update(&mut admin_a, &[("decision.reject_at", "0.97")])
        .await
        .unwrap();
    let took = wait_for(admin_b.clone(), updated.version).await;
    eprintln!(
        "instance B applied version {} after {took:?}",
        updated.version
    );

    // The model moves on both: responses say which model scored.
    let models_listed = admin_b
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let names: Vec<&str> = models_listed.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["small-candidate", "vi-en-20261127"]);
    let activated = admin_a
        .activate_model(pb::ActivateModelRequest {
            name: "small-candidate".into(),
            version: 0,
            note: "trying the candidate".into(),
        })
        .await
        .unwrap()
        .into_inner();
    wait_for(admin_b.clone(), activated.version).await;
    // Thresholds left to the model follow it; the one ops set stays.
    let candidate = models_listed
        .iter()
        .find(|m| m.name == "small-candidate")
        .unwrap();
    let accept_below = value(&activated, "decision.accept_below");
    assert_eq!(accept_below.source(), pb::SettingSource::Model);
    assert_eq!(
        accept_below.value,
        candidate.recommended_accept_below.to_string()
    );
    assert_eq!(value(&activated, "decision.reject_at").value, "0.97");
    for (k, channel) in [channel_a.clone(), channel_b.clone()]
        .into_iter()
        .enumerate()
    {
        let answer = CommentServiceClient::new(channel)
            .submit_comment(submission(&format!("model-{k}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.model_version, "small-candidate", "instance {k}");
    }
    let rolled_back = admin_b
        .rollback_model(pb::RollbackModelRequest {
            note: String::new(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(value(&rolled_back, "model.active").value, "vi-en-20261127");
    wait_for(admin_a.clone(), rolled_back.version).await;
    let answer = CommentServiceClient::new(channel_a)
        .submit_comment(submission("model-back"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model_version, "vi-en-20261127");

    // The runtime settings survive a restart of the instances.
    drop((_a, _b));
    let (_c, channel_c) = spawn_server(&config_path).await;
    let settings = AdminServiceClient::new(channel_c)
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settings.version, rolled_back.version);
    assert_eq!(value(&settings, "decision.reject_at").value, "0.97");
    common::delete_prefix(&common::redis_url(), &prefix);
}

// The command line runs as a child process and is waited for: the server needs threads of its own.
on_both_backends!(operators_work_from_the_command_line_with_their_key);
async fn operators_work_from_the_command_line_with_their_key(backend: Backend) {
    let (clear, key_settings) = keys();
    let mut config = test_config_on(backend);
    config.auth.enabled = true;
    config.auth.keys = key_settings;
    let app = TestApp::spawn(config).await;
    let server = format!("http://{}", app.address);
    let ops = [
        ("MODERATION_SERVER", server.as_str()),
        ("MODERATION_API_KEY", clear[&Role::Ops].as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("words.txt");
    std::fs::write(&words, "# cá độ\nlô đề\nnha cai\n").unwrap();
    let set = stdout(&cli(
        &[
            "settings",
            "set",
            "decision.reject_at=0.9",
            &format!("lists.blocked_words=@{}", words.display()),
            "--note",
            "mùa giải mới",
        ],
        &ops,
    ));
    assert!(set.contains("settings version 1"), "{set}");
    let got = stdout(&cli(&["settings", "get"], &ops));
    let line = got
        .lines()
        .find(|l| l.contains("decision.reject_at"))
        .unwrap_or_else(|| panic!("{got}"));
    assert!(
        line.contains("0.9") && line.contains("runtime") && line.contains("ops-minh"),
        "{line}"
    );
    let history = stdout(&cli(&["settings", "history"], &ops));
    assert!(
        history.contains("lists.blocked_words") && history.contains("mùa giải mới"),
        "{history}"
    );

    let refused = cli(&["settings", "set", "decision.accept_below=0.95"], &ops);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("InvalidArgument") && why.contains("decision.accept_below"),
        "{why}"
    );

    let models = stdout(&cli(&["models", "list"], &ops));
    assert!(
        models.contains("vi-en-20261127") && models.contains("active"),
        "{models}"
    );
    let rollback = cli(&["models", "rollback"], &ops);
    assert!(String::from_utf8_lossy(&rollback.stderr).contains("NO_EARLIER_MODEL"));

    app.client
        .clone()
        .submit_comment({
            let mut r = tonic::Request::new(pb::SubmitCommentRequest {
                body: "Chơi lô đề online".into(),
                ..submission("cli-1")
            });
            r.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", clear[&Role::Portal]).parse().unwrap(),
            );
            r
        })
        .await
        .unwrap();
    let stats = stdout(&cli(&["stats"], &ops));
    let rejected = stats
        .lines()
        .find(|l| l.contains("rejected"))
        .unwrap_or_else(|| panic!("{stats}"));
    assert!(rejected.contains('1'), "{stats}");
    assert!(stats.contains("settings version 1"), "{stats}");

    // A moderator's key does not open the admin commands, nor no key at all.
    let moderator = [
        ("MODERATION_SERVER", server.as_str()),
        ("MODERATION_API_KEY", clear[&Role::Moderator].as_str()),
    ];
    let denied = cli(&["settings", "get"], &moderator);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("PermissionDenied"));
    let anonymous = cli(&["stats"], &[("MODERATION_SERVER", server.as_str())]);
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("Unauthenticated"));
    // The moderator's own command line works with the key.
    let listed = stdout(&cli(&["review", "list"], &moderator));
    assert_eq!(listed, "nothing waiting\n");
}

// Training the candidate runs the command line, waited for: the server needs threads of its own.
on_both_backends!(a_candidate_model_in_shadow_is_compared_but_never_decides);
async fn a_candidate_model_in_shadow_is_compared_but_never_decides(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(moderation::classifier::DEFAULT_MODEL),
        dir.path().join("vi-en-20261127.model"),
    )
    .unwrap();
    common::train_small_model(dir.path(), "small-candidate");
    let mut config = test_config_on(backend);
    config.classifier.models_dir = dir.path().to_owned();
    let app = TestApp::spawn(config).await;
    let mut admin = AdminServiceClient::new(app.channel().await);

    let refused = update(&mut admin, &[("model.shadow", "vi-en-20261127")])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::InvalidArgument,
        "the active model is no candidate"
    );
    update(&mut admin, &[("model.shadow", "small-candidate")])
        .await
        .unwrap();
    let models = admin
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let roles: Vec<(&str, bool, bool)> = models
        .iter()
        .map(|m| (m.name.as_str(), m.active, m.shadow))
        .collect();
    assert_eq!(
        roles,
        [
            ("small-candidate", false, true),
            ("vi-en-20261127", true, false)
        ]
    );
    assert!(
        models[0]
            .trained_on
            .iter()
            .any(|t| t.contains("small-candidate.corpus.jsonl"))
    );

    let mut client = app.client.clone();
    for (k, request) in [
        submission("cand-1"),
        spam("cand-2"),
        submission("cand-3"),
        spam("cand-4"),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = client.submit_comment(request).await.unwrap().into_inner();
        assert_eq!(
            answer.model_version, "vi-en-20261127",
            "comment {k}: the active model decides"
        );
    }
    let stats = admin
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.shadow_model, "small-candidate");
    let compared: u64 = stats
        .last_hour
        .iter()
        .filter(|c| c.name.starts_with("model_shadow_"))
        .map(|c| c.count)
        .sum();
    assert_eq!(compared, 4);
    let metrics = scrape(app.metrics_address).await;
    let counted: f64 = metrics
        .iter()
        .filter(|s| s.name == "moderation_model_shadow_decisions_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(counted, 4.0);
    assert_eq!(
        sample(
            &metrics,
            "moderation_model_info",
            &[("role", "shadow"), ("version", "small-candidate")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn with_redis_down_settings_answer_unavailable_and_recover() {
    let mut redis = common::PrivateRedis::start();
    let mut config = test_config();
    config.redis.url = moderation::store::redis::RedisUrl::new(redis.url());
    config.server.request_timeout = Duration::from_millis(300);
    let app = TestApp::spawn(config).await;
    let mut admin = AdminServiceClient::new(app.channel().await);
    update(&mut admin, &[("decision.reject_at", "0.9")])
        .await
        .expect("updates while Redis is up");

    redis.stop();
    let started = Instant::now();
    let read = admin
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap_err();
    assert_eq!(read.code(), Code::Unavailable, "{read:?}");
    assert!(read.get_details_retry_info().is_some());
    let write = admin
        .update_settings(pb::UpdateSettingsRequest {
            version: 1,
            changes: vec![change("decision.reject_at", "0.95")],
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(write.code(), Code::Unavailable, "{write:?}");
    let stats = admin.get_stats(pb::GetStatsRequest {}).await.unwrap_err();
    assert_eq!(stats.code(), Code::Unavailable, "{stats:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The models directory needs no Redis.
    let models = admin.list_models(pb::ListModelsRequest {}).await.unwrap();
    assert!(!models.into_inner().models.is_empty());

    // Back up: the settings in Redis were kept, and the instance reads them again.
    redis.restart();
    let mut settings = None;
    for _ in 0..50 {
        if let Ok(s) = admin.get_settings(pb::GetSettingsRequest {}).await {
            settings = Some(s.into_inner());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settings = settings.expect("settings are read again once Redis answers");
    // A private Redis without persistence comes back empty: version 0, the file's values.
    assert_eq!(settings.version, 0);
    assert_eq!(
        value(&settings, "decision.reject_at").source(),
        pb::SettingSource::Model
    );
}

on_both_backends!(articles_are_closed_and_premoderated_at_runtime_and_by_the_hour);
async fn articles_are_closed_and_premoderated_at_runtime_and_by_the_hour(backend: Backend) {
    let app = TestApp::spawn(common::test_config_on(backend)).await;
    app.wait_for_health(1).await;
    let mut admin = AdminServiceClient::new(app.channel().await);
    let mut client = app.client.clone();
    let article = common::submission("x").article_id;
    let first = client
        .submit_comment(common::submission("art-0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.outcome(), pb::Outcome::Accepted);

    // Pre-moderated: what would be published waits, with its reason; certain spam is still
    // rejected (a blocked phrase here).
    update(
        &mut admin,
        &[
            ("articles.premoderated", &article),
            ("lists.blocked_words", "lô đề"),
        ],
    )
    .await
    .unwrap();
    let held = client
        .submit_comment(common::submission("art-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.outcome(), pb::Outcome::PendingReview);
    assert_eq!(held.reasons[0].code, "PREMODERATED");
    assert_eq!(held.reasons[0].message, "the article is pre-moderated");
    let mut spam = common::submission("art-2");
    spam.body = "Soi cầu lô đề chuẩn nhất".into();
    assert_eq!(
        client
            .submit_comment(spam)
            .await
            .unwrap()
            .into_inner()
            .outcome(),
        pb::Outcome::Rejected
    );

    // Closed: refused with its own reason, stored nothing; a retry of a stored submission
    // still gets its first answer.
    update(
        &mut admin,
        &[("articles.premoderated", ""), ("articles.closed", &article)],
    )
    .await
    .unwrap();
    let refused = client
        .submit_comment(common::submission("art-3"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.get_details_error_info().unwrap().reason,
        "ARTICLE_CLOSED"
    );
    let retry = client
        .submit_comment(common::submission("art-0"))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.replayed && retry.comment_id == first.comment_id);

    // The night desk: hours that cover now, in the newsroom's zone, hold everything.
    let zone = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
    let now = jiff::Timestamp::now().to_zoned_datetime(zone);
    let minute = i32::from(now.hour()) * 60 + i32::from(now.minute());
    let at = |m: i32| {
        format!(
            "{:02}:{:02}",
            m.rem_euclid(1440) / 60,
            m.rem_euclid(1440) % 60
        )
    };
    let hours = format!("{}-{}", at(minute - 60), at(minute + 60));
    update(
        &mut admin,
        &[
            ("articles.closed", ""),
            ("articles.premoderation_hours", &hours),
        ],
    )
    .await
    .unwrap();
    let night = client
        .submit_comment(common::submission("art-4"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(night.outcome(), pb::Outcome::PendingReview, "{hours}");
    assert!(
        night.reasons[0].message.contains("Asia/Ho_Chi_Minh"),
        "{:?}",
        night.reasons
    );
    // A bad value is refused, naming it.
    let bad = update(&mut admin, &[("articles.premoderation_hours", "22h-6h")])
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        common::violated_fields(&bad),
        ["articles.premoderation_hours"]
    );
}

on_both_backends!(moderators_decisions_are_counted_per_moderator_with_their_wait_and_agreement);
async fn moderators_decisions_are_counted_per_moderator_with_their_wait_and_agreement(
    backend: Backend,
) {
    let app = TestApp::spawn(common::holding_config_on(backend)).await;
    app.wait_for_health(1).await;
    let mut moderation =
        pb::moderation_service_client::ModerationServiceClient::new(app.channel().await);
    for (k, who, decision) in [
        (0, "lan", pb::ModeratorDecision::Approve),
        (1, "lan", pb::ModeratorDecision::Approve),
        (2, "minh", pb::ModeratorDecision::Reject),
    ] {
        let id = common::hold(&app, common::submission(&format!("mod-{k}"))).await;
        moderation
            .decide_comment(pb::DecideCommentRequest {
                comment_id: id,
                version: 1,
                decision: decision as i32,
                moderator: who.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut admin = AdminServiceClient::new(app.channel().await);
    let stats = admin
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let count = |name: &str| count_of(&stats.last_day, name);
    assert_eq!(count("moderator:lan:approved"), 2);
    assert_eq!(count("moderator:minh:rejected"), 1);
    assert_eq!(count("moderator_approved"), 2);
    let metrics = scrape(app.metrics_address).await;
    assert_eq!(
        sample(
            &metrics,
            "moderation_moderator_decisions_total",
            &[("moderator", "lan"), ("verdict", "approved")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&metrics, "moderation_time_to_decision_seconds_count", &[]),
        Some(3.0)
    );
    // The ordinary comment scores low: approving it agrees with the model, rejecting it not.
    assert_eq!(
        sample(
            &metrics,
            "moderation_moderator_model_agreement_total",
            &[("moderator", "minh"), ("agreed", "false")]
        ),
        Some(1.0)
    );
}
