//! How the command line reaches a running server: its address, the API key to present, and TLS
//! (the server's CA, and a client certificate where the server asks for one).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt;

/// Where the server is and how to talk to it.
#[derive(Debug, Args)]
pub struct Connection {
    /// The server's gRPC address (https://... for TLS).
    #[arg(
        long,
        env = "MODERATION_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,
    /// The API key to present (when the server has auth.enabled).
    #[arg(
        long,
        env = "MODERATION_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub api_key: Option<String>,
    /// The CA certificate (PEM) the server's certificate is checked against, for https.
    #[arg(long, env = "MODERATION_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// A client certificate (PEM), where the server asks for one.
    #[arg(
        long,
        env = "MODERATION_CLIENT_CERT",
        global = true,
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "MODERATION_CLIENT_KEY", global = true)]
    pub client_key: Option<PathBuf>,
}

/// Adds the API key to every call.
#[derive(Clone, Debug)]
pub struct ApiKey(Option<MetadataValue<Ascii>>);

impl Interceptor for ApiKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("authorization", key.clone());
        }
        Ok(request)
    }
}

/// A channel that presents the API key.
pub type Client = InterceptedService<Channel, ApiKey>;

impl Connection {
    /// Connects.
    pub async fn connect(&self) -> Result<Client> {
        let mut endpoint = Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("--server {} is not a URL", self.server))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        if self.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &self.ca_cert {
                let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                let read = |p: &PathBuf| {
                    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
                };
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint.tls_config(tls).context("configuring TLS")?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.server))?;
        let key = match &self.api_key {
            Some(k) => Some(
                format!("Bearer {}", k.trim())
                    .parse()
                    .context("the API key is not printable ASCII")?,
            ),
            None => None,
        };
        Ok(InterceptedService::new(channel, ApiKey(key)))
    }
}

/// A status as a readable error, with the field violations and reasons it carries.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    let details = status.get_error_details();
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    if let Some(info) = details.error_info() {
        let mut metadata: Vec<String> = info
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        metadata.sort();
        text.push_str(&format!("\n  {} {}", info.reason, metadata.join(" ")));
    }
    anyhow::anyhow!(text)
}

/// A runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
