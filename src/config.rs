//! The service's configuration: typed, with a documented default for every setting, layered
//! as defaults → TOML file → environment (`MODERATION_SECTION__SETTING`) → command-line flags.
//! Start-up fails with the name of the setting that is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::auth::AuthSettings;
use crate::captcha::CaptchaSettings;
use crate::comment::Limits;
use crate::decide::BotRules;
use crate::rate_limit::RateLimitSettings;
use crate::review::ReviewSettings;
use crate::settings::lists::ListSettings;
use crate::store::redis::RedisSettings;

/// Everything the service reads at start-up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: listening, deadlines, logs.
    pub server: ServerSettings,
    /// `[store]`: which backend keeps comments, queues and settings.
    pub store: StoreSettings,
    /// `[redis]`: the Redis backend (several instances share one Redis).
    pub redis: RedisSettings,
    /// `[comments]`: field limits.
    pub comments: Limits,
    /// `[classifier]`: which model scores comments.
    pub classifier: ClassifierSettings,
    /// `[decision]`: thresholds; a threshold left out takes the model's recommended value.
    pub decision: DecisionSettings,
    /// `[rate_limit]`: quotas shared by every instance.
    pub rate_limit: RateLimitSettings,
    /// `[captcha]`: the challenge under the form.
    pub captcha: CaptchaSettings,
    /// `[bots]`: bot signals that need no CAPTCHA.
    pub bots: BotRules,
    /// `[review]`: moderators' claims.
    pub review: ReviewSettings,
    /// `[runtime]`: how runtime settings reach this instance.
    pub runtime: RuntimeSettings,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: MetricsSettings,
    /// `[auth]`: API keys and roles.
    pub auth: AuthSettings,
    /// `[lists]`: block and allow lists (ops may change them at runtime).
    pub lists: ListSettings,
    /// `[http]`: the moderators' and operators' console in the browser.
    pub http: crate::console::HttpSettings,
    /// `[[webhooks]]`: where to POST what happens to comments.
    pub webhooks: Vec<crate::webhooks::WebhookSettings>,
    /// `[coral]`: Coral's external moderation phase.
    pub coral: crate::integrations::coral::CoralSettings,
    /// `[articles]`: pre-moderated and closed articles, pre-moderated hours (ops may change
    /// them at runtime).
    pub articles: crate::articles::ArticleSettings,
    /// `[readers]`: how readers are known; first comments and automatic pre-moderation (ops
    /// may change those at runtime).
    pub readers: crate::readers::ReaderSettings,
    /// `[campaigns]`: near copies of a text from many readers.
    pub campaigns: crate::campaigns::CampaignConfig,
}

/// Which backend keeps everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One SQLite file (`store.path`): nothing else to install; one instance.
    #[default]
    Embedded,
    /// Redis (`[redis]`): several instances share it.
    Redis,
}

/// `[store]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `embedded` or `redis`. Left out, giving a Redis URL (`--redis-url`,
    /// `MODERATION_REDIS__URL` or `[redis] url`) chooses Redis.
    pub backend: Backend,
    /// The embedded store's file, created (with its directory) on first start.
    pub path: PathBuf,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: Backend::Embedded,
            path: PathBuf::from("data/moderation.db"),
        }
    }
}

/// `[runtime]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// How often the stored runtime settings are re-read even without an announcement (a
    /// safety net: announcements arrive within milliseconds).
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            refresh: Duration::from_secs(5),
        }
    }
}

/// `[metrics]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve Prometheus metrics.
    pub enabled: bool,
    /// Address and port of the metrics endpoint (`GET /metrics`), apart from gRPC.
    pub listen: SocketAddr,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[server.tls]`: serve gRPC over TLS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Certificates (PEM) of the authorities client certificates must be signed by; when set,
    /// clients must present one.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: accept clients without a certificate too (they still need an API key
    /// where auth is on).
    #[serde(default)]
    pub client_auth_optional: bool,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address and port the gRPC server listens on.
    pub listen: SocketAddr,
    /// Longest a request may take, from arrival to answer; a client's shorter `grpc-timeout`
    /// wins.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request message accepted, in bytes; larger ones are refused from their length
    /// prefix, before being read.
    pub max_message_bytes: usize,
    /// On SIGTERM/SIGINT, how long the server keeps serving while health reports NOT_SERVING,
    /// so load balancers stop sending before connections are refused.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
    /// After the drain, how long in-flight requests may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// HTTP/2 streams (concurrent requests) one connection may have open
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// Largest header list of a request, in bytes (`SETTINGS_MAX_HEADER_LIST_SIZE`).
    pub max_header_list_bytes: u32,
    /// How often an idle connection is probed with an HTTP/2 PING.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// A connection whose PING is not answered within this is closed.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// TLS; plain HTTP/2 when absent (behind a terminating proxy, or on a private network).
    pub tls: Option<TlsSettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            request_timeout: Duration::from_secs(1),
            max_message_bytes: 64 * 1024,
            drain: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            max_concurrent_streams: 200,
            max_header_list_bytes: 16 * 1024,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            log_format: LogFormat::Text,
            tls: None,
        }
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// `[classifier]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierSettings {
    /// The model file loaded at start-up (ops may activate another at runtime).
    pub model: PathBuf,
    /// Where model versions are kept: `models list` shows them, `models activate` picks one.
    pub models_dir: PathBuf,
}

impl Default for ClassifierSettings {
    fn default() -> Self {
        ClassifierSettings {
            model: PathBuf::from(crate::classifier::DEFAULT_MODEL),
            models_dir: PathBuf::from("models"),
        }
    }
}

/// `[decision]`: each threshold is optional; unset ones come from the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionSettings {
    /// Spam probability below which a comment is accepted.
    pub accept_below: Option<f32>,
    /// Spam probability at or above which a comment is rejected.
    pub reject_at: Option<f32>,
    /// Toxic probability at or above which a comment goes at least to review.
    pub review_toxic_at: Option<f32>,
    /// Record what the classifier would decide without letting it decide.
    pub shadow: bool,
}

/// Command-line overrides, applied last.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--redis-url`.
    pub redis_url: Option<String>,
    /// `--model`.
    pub model: Option<PathBuf>,
}

impl Config {
    /// Loads the configuration: defaults, then `file` if given (it must exist), then
    /// `MODERATION_*` environment variables, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        // What the file, the environment and the flags say, apart from the defaults.
        let mut given = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                bail!("configuration file {} does not exist", path.display());
            }
            given = given.merge(Toml::file(path));
        }
        given = given.merge(Env::prefixed("MODERATION_").split("__"));
        if let Some(listen) = overrides.listen {
            given = given.merge(("server.listen", listen));
        }
        if let Some(url) = &overrides.redis_url {
            given = given.merge(("redis.url", url));
        }
        if let Some(model) = &overrides.model {
            given = given.merge(("classifier.model", model));
        }
        // A Redis URL, sentinels or cluster nodes given anywhere choose Redis, unless the
        // backend is named.
        let says = |key: &str| given.find_value(key).is_ok();
        let redis_chosen = ["redis.url", "redis.sentinels", "redis.cluster_nodes"]
            .iter()
            .any(|key| says(key))
            && !says("store.backend");
        let mut figment = Figment::from(Serialized::defaults(Config::default())).merge(given);
        if redis_chosen {
            figment = figment.merge(("store.backend", Backend::Redis));
        }
        let config: Config = figment
            .extract()
            // figment names keys under its profile ("default."), which no setting has.
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("key \"default.", "key \"")))
            .context("reading the configuration")?;
        config.check()?;
        Ok(config)
    }

    /// Rejects settings that parse but cannot work, naming them.
    pub fn check(&self) -> Result<()> {
        let s = &self.server;
        if s.request_timeout.is_zero() {
            bail!("server.request_timeout must be more than 0");
        }
        if s.max_message_bytes < 1024 {
            bail!("server.max_message_bytes must be at least 1024");
        }
        if s.max_concurrent_streams == 0 {
            bail!("server.max_concurrent_streams must be at least 1");
        }
        if s.max_header_list_bytes < 1024 {
            bail!("server.max_header_list_bytes must be at least 1024");
        }
        if s.keepalive_interval.is_zero() || s.keepalive_timeout.is_zero() {
            bail!("server.keepalive_interval and server.keepalive_timeout must be more than 0");
        }
        if self.comments.body_max_chars == 0 {
            bail!("comments.body_max_chars must be more than 0");
        }
        if self.redis.prefix.is_empty() {
            bail!("redis.prefix must not be empty");
        }
        if self.redis.consumer_group.is_empty() {
            bail!("redis.consumer_group must not be empty");
        }
        if let Err(problem) = self.redis.topology() {
            bail!("{problem}");
        }
        let r = &self.review;
        if r.lease.is_zero() || r.lease > r.max_lease {
            bail!("review.lease must be more than 0 and at most review.max_lease");
        }
        if r.max_claim == 0 {
            bail!("review.max_claim must be more than 0");
        }
        if self.runtime.refresh.is_zero() {
            bail!("runtime.refresh must be more than 0");
        }
        let problems = self.rate_limit.problems().into_iter();
        if let Some((name, problem)) = problems
            .chain(self.captcha.problems())
            .chain(self.auth.problems())
            .chain(self.lists.problems())
            .chain(self.articles.problems())
            .chain(
                self.webhooks
                    .iter()
                    .enumerate()
                    .flat_map(|(k, w)| w.problems(&format!("webhooks[{k}]"))),
            )
            .next()
        {
            bail!("{name} {problem}");
        }
        for (name, value) in [
            ("decision.accept_below", self.decision.accept_below),
            ("decision.reject_at", self.decision.reject_at),
            ("decision.review_toxic_at", self.decision.review_toxic_at),
        ] {
            if let Some(v) = value
                && !(0.0..=1.0).contains(&v)
            {
                bail!("{name} must be between 0 and 1, is {v}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's test jail returns its own (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = Config::default();
        c.check().unwrap();
        assert_eq!(c.server.listen.port(), 50051);
        assert_eq!(c.server.request_timeout, Duration::from_secs(1));
        assert_eq!(c.server.max_message_bytes, 65_536);
        assert_eq!(c.comments.body_max_chars, 5_000);
        assert_eq!(c.redis.prefix, "{moderation}:");
    }

    #[test]
    fn file_then_environment_then_flags_win_in_that_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "moderation.toml",
                r#"
                [server]
                request_timeout = "250ms"
                listen = "127.0.0.1:7000"
                [comments]
                body_max_chars = 2000
                [decision]
                reject_at = 0.9
                "#,
            )?;
            jail.set_env("MODERATION_SERVER__LISTEN", "127.0.0.1:7001");
            jail.set_env("MODERATION_REDIS__PREFIX", "{test}:");
            let overrides = Overrides {
                redis_url: Some("redis://10.0.0.1:6379".into()),
                ..Overrides::default()
            };
            let c = Config::load(Some(Path::new("moderation.toml")), &overrides).unwrap();
            assert_eq!(c.server.request_timeout, Duration::from_millis(250));
            assert_eq!(c.server.listen.port(), 7001);
            assert_eq!(c.comments.body_max_chars, 2000);
            assert_eq!(c.decision.reject_at, Some(0.9));
            assert_eq!(c.decision.accept_below, None);
            assert_eq!(c.redis.prefix, "{test}:");
            assert_eq!(c.redis.url.expose(), "redis://10.0.0.1:6379");
            assert_eq!(
                c.store.backend,
                Backend::Redis,
                "a Redis URL given chooses Redis"
            );
            Ok(())
        });
    }

    #[test]
    fn the_embedded_store_is_the_default_and_a_named_backend_wins() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.store.backend, Backend::Embedded);
            assert_eq!(c.store.path, PathBuf::from("data/moderation.db"));
            jail.set_env("MODERATION_REDIS__URL", "redis://127.0.0.1:6390");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.store.backend, Backend::Redis);
            jail.set_env("MODERATION_STORE__BACKEND", "embedded");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.store.backend, Backend::Embedded);
            Ok(())
        });
    }

    #[test]
    fn sentinels_or_cluster_nodes_choose_redis_and_wrong_ones_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "MODERATION_REDIS__SENTINELS",
                r#"["10.0.0.5:26379","10.0.0.6:26379"]"#,
            );
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.store.backend, Backend::Redis);
            assert_eq!(c.redis.sentinels.len(), 2);
            jail.set_env("MODERATION_REDIS__CLUSTER_NODES", r#"["10.0.0.9:6379"]"#);
            let e = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(format!("{e:#}").contains("exclude each other"), "{e:#}");
            jail.set_env("MODERATION_REDIS__SENTINELS", "[]");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.store.backend, Backend::Redis);
            jail.set_env("MODERATION_REDIS__PREFIX", "moderation:");
            let e = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(format!("{e:#}").contains("hash tag"), "{e:#}");
            Ok(())
        });
    }

    #[test]
    fn the_example_file_documents_exactly_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/moderation.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let from_file: Config = toml::from_str(&text).unwrap();
        assert_eq!(from_file, Config::default());
        // And every setting that has a default is written out in it, not left to the default.
        fn missing(defaults: &toml::Value, file: &toml::Value, at: &str, out: &mut Vec<String>) {
            if let (toml::Value::Table(d), toml::Value::Table(f)) = (defaults, file) {
                for (k, v) in d {
                    let path = format!("{at}{k}");
                    match f.get(k) {
                        Some(fv) => missing(v, fv, &format!("{path}."), out),
                        None => out.push(path),
                    }
                }
            }
        }
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let file: toml::Value = toml::from_str(&text).unwrap();
        let mut absent = Vec::new();
        missing(&defaults, &file, "", &mut absent);
        assert!(absent.is_empty(), "not in the example file: {absent:?}");
    }

    #[test]
    fn a_wrong_setting_is_named_in_the_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[server]\nrequest_timout = \"1s\"\n")?;
            let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains("request_timout"), "{err:#}");
            jail.create_file("range.toml", "[decision]\nreject_at = 1.5\n")?;
            let err =
                Config::load(Some(Path::new("range.toml")), &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains("decision.reject_at"), "{err:#}");
            let err =
                Config::load(Some(Path::new("missing.toml")), &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains("missing.toml"), "{err:#}");
            Ok(())
        });
    }
}
