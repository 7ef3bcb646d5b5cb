//! What every RPC goes through before its handler: the caller's API key is recognised and the
//! role the method needs is checked ([`access`] is the table), and the answer is counted and
//! timed by method and status code.
//!
//! A tower layer rather than a tonic interceptor, because it must see the method's path and
//! the response's status for every service, including health and reflection.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tonic::{Code, Status};

use crate::auth::{Caller, Keys, Role};
use crate::metrics::Metrics;

/// Who may call a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key.
    Open,
    /// Callers with one of these roles.
    Roles(&'static [Role]),
}

const PORTAL: &[Role] = &[Role::Portal];
const READERS: &[Role] = &[Role::Portal, Role::Moderator, Role::Ops];
const REPORTERS: &[Role] = &[Role::Portal, Role::Moderator];
const MODERATORS: &[Role] = &[Role::Moderator];
const OPS: &[Role] = &[Role::Ops];

/// The role each method needs. A method added to a service later needs that service's role.
pub fn access(path: &str, open_health: bool, open_reflection: bool) -> Access {
    match path {
        "/moderation.v1.CommentService/IssueCaptcha"
        | "/moderation.v1.CommentService/SubmitComment" => Access::Roles(PORTAL),
        "/moderation.v1.CommentService/GetComment" => Access::Roles(READERS),
        "/moderation.v1.ModerationService/ReportComment" => Access::Roles(REPORTERS),
        p if p.starts_with("/moderation.v1.CommentService/") => Access::Roles(PORTAL),
        p if p.starts_with("/moderation.v1.FeedService/") => Access::Roles(PORTAL),
        p if p.starts_with("/moderation.v1.ModerationService/") => Access::Roles(MODERATORS),
        p if p.starts_with("/moderation.v1.ReaderService/") => Access::Roles(MODERATORS),
        p if p.starts_with("/moderation.v1.AdminService/") => Access::Roles(OPS),
        p if p.starts_with("/grpc.health.v1.Health/") => {
            if open_health {
                Access::Open
            } else {
                Access::Roles(READERS)
            }
        }
        p if p.starts_with("/grpc.reflection.") => {
            if open_reflection {
                Access::Open
            } else {
                Access::Roles(OPS)
            }
        }
        // Unknown methods are answered UNIMPLEMENTED, but only to callers with a key.
        _ => Access::Roles(READERS),
    }
}

/// The key a request presents: `authorization: Bearer <key>` or `x-api-key: <key>`.
fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The address of the client that sent a request, as the transport recorded it (plain TCP or
/// TLS over TCP).
fn peer<B>(request: &http::Request<B>) -> Option<IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|t| t.get_ref().remote_addr())
        })
        .map(|a| a.ip().to_canonical())
}

/// The refusal of a client on another machine while the service is in protected mode.
pub fn protected_mode_status() -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    Status::with_error_details(
        Code::PermissionDenied,
        "protected mode: authentication is off, so only clients on this machine are served; \
         turn on auth.enabled (with API keys), or set auth.allow_unauthenticated_network",
        ErrorDetails::with_error_info("PROTECTED_MODE", "moderation.v1", []),
    )
}

/// The checks and counts, shared by every connection.
#[derive(Debug)]
pub struct Gate {
    /// Protected mode: authentication is off, so only loopback clients are served.
    pub protected: bool,
    /// The keys; `None` when authentication is off.
    pub keys: Option<Keys>,
    /// Health checks need no key.
    pub open_health: bool,
    /// Reflection needs no key.
    pub open_reflection: bool,
    /// Where requests are counted.
    pub metrics: Arc<Metrics>,
}

impl Gate {
    /// The caller of a request to `path` from `peer`, or the status refusing it.
    pub fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<Caller>, Status> {
        // A peer the transport did not record (an in-process connection) is local.
        if self.protected && peer.is_some_and(|ip| !ip.is_loopback()) {
            return Err(protected_mode_status());
        }
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        let needed = match access(path, self.open_health, self.open_reflection) {
            Access::Open => return Ok(None),
            Access::Roles(roles) => roles,
        };
        let presented = presented_key(headers).ok_or_else(|| {
            Status::unauthenticated("an API key is required (authorization: Bearer <key>)")
        })?;
        let caller = keys
            .caller(presented)
            .ok_or_else(|| Status::unauthenticated("the API key is not known"))?;
        if needed.iter().any(|r| caller.has(*r)) {
            Ok(Some(caller.clone()))
        } else {
            let roles: Vec<&str> = needed.iter().map(|r| r.name()).collect();
            Err(Status::permission_denied(format!(
                "{path} needs the role {}; the key of {} has {}",
                roles.join(" or "),
                caller.name,
                caller
                    .roles
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

/// The layer.
#[derive(Clone, Debug)]
pub struct EdgeLayer(pub Arc<Gate>);

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            gate: self.0.clone(),
        }
    }
}

/// The service the layer wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
    gate: Arc<Gate>,
}

/// The methods the server has, by path, with their metric label (`CommentService/SubmitComment`):
/// read once from the descriptors, so a label is a static string and unknown paths, counted as
/// `other`, cannot create label values.
static METHODS: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    use prost::Message;
    let mut out = HashMap::new();
    for set in [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(files) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in files.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    let label: &'static str =
                        Box::leak(format!("{}/{}", service.name(), method.name()).into_boxed_str());
                    out.insert(path, label);
                }
            }
        }
    }
    out
});

/// The metric label of a path.
fn method_label(path: &str) -> &'static str {
    METHODS.get(path).copied().unwrap_or("other")
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Edge<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.uri().path());
        let gate = self.gate.clone();
        match gate.admit(request.uri().path(), request.headers(), peer(&request)) {
            Err(status) => {
                gate.metrics
                    .request(method, code_name(status.code()), started.elapsed());
                Box::pin(async move { Ok(status.into_http()) })
            }
            Ok(caller) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                // The ready service answers this request; a fresh clone waits for the next.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    let response = inner.call(request).await?;
                    // Errors come back trailers-only, with the status in the headers; a
                    // response that starts normally is counted as OK.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or(Code::Ok, Code::from_i32);
                    gate.metrics
                        .request(method, code_name(code), started.elapsed());
                    Ok(response)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_labelled_without_letting_paths_make_new_labels() {
        assert_eq!(
            method_label("/moderation.v1.CommentService/SubmitComment"),
            "CommentService/SubmitComment"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Health/Check");
        assert_eq!(
            method_label("/moderation.v1.AdminService/UpdateSettings"),
            "AdminService/UpdateSettings"
        );
        assert_eq!(method_label("/evil/../x"), "other");
        assert_eq!(method_label("/moderation.v1.CommentService/Nope"), "other");
    }

    #[test]
    fn protected_mode_serves_loopback_clients_only() {
        let gate = |protected| Gate {
            protected,
            keys: None,
            open_health: true,
            open_reflection: false,
            metrics: Arc::new(Metrics::new()),
        };
        let headers = http::HeaderMap::new();
        let path = "/moderation.v1.AdminService/UpdateSettings";
        let far: IpAddr = "192.0.2.10".parse().unwrap();
        let refused = gate(true).admit(path, &headers, Some(far)).unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(refused.message().contains("auth.enabled"), "{refused:?}");
        for near in ["127.0.0.1", "::1", "127.9.9.9"] {
            let ip: IpAddr = near.parse().unwrap();
            assert!(gate(true).admit(path, &headers, Some(ip)).is_ok(), "{near}");
        }
        // A peer the transport did not record (an in-process connection) is local.
        assert!(gate(true).admit(path, &headers, None).is_ok());
        // With the opt-in, anyone reaches it.
        assert!(gate(false).admit(path, &headers, Some(far)).is_ok());
    }

    #[test]
    fn keys_are_read_from_either_header() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented_key(&h), Some("abc"));
        let mut h = http::HeaderMap::new();
        h.insert("x-api-key", "def".parse().unwrap());
        assert_eq!(presented_key(&h), Some("def"));
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Basic xyz".parse().unwrap());
        assert_eq!(presented_key(&h), None);
    }
}
