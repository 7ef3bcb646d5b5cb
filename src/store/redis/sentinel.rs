//! Where the primary is, as Redis Sentinel says: the sentinels are asked in turn
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME`), the first that answers is asked first next time, and a
//! node they name is followed only once it says it is the primary (`ROLE`), as the Sentinel
//! client guidelines ask.
//!
//! Written here rather than taken from redis-rs' `sentinel` module: that one resolves the
//! primary once per call, with timeouts of its own and behind `&mut self`, and never learns of
//! a failover; the service needs the address watched (see [`super::connection`]) and every
//! question bounded by the configured timeouts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo, RedisError};

use super::connection::at;
use super::{Address, RedisSettings};

/// How often the sentinels are asked where the primary is. A failover is followed within
/// this of the sentinels naming the new primary (sooner when requests start failing).
pub(super) const POLL: Duration = Duration::from_millis(500);

/// The sentinels of one monitored primary.
pub(super) struct Sentinels {
    master: String,
    sentinels: Vec<(Address, redis::Client)>,
    /// Connections to the sentinels, made when first asked and dropped on failure.
    connections: tokio::sync::Mutex<Vec<Option<MultiplexedConnection>>>,
    /// The sentinel that answered last, asked first.
    preferred: AtomicUsize,
    /// The data nodes' credentials, database and TLS.
    node: ConnectionInfo,
    connect_timeout: Duration,
    response_timeout: Duration,
}

pub(super) fn failure(text: String) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, text))
}

impl Sentinels {
    /// The sentinels at `addresses` watching `master`; `node` is the template of the data
    /// nodes' connections.
    pub(super) fn new(
        settings: &RedisSettings,
        addresses: &[Address],
        master: String,
        node: ConnectionInfo,
        (connect_timeout, response_timeout): (Duration, Duration),
    ) -> Result<Self, RedisError> {
        let scheme = if settings.sentinel_tls {
            "rediss"
        } else {
            "redis"
        };
        let mut auth = redis::RedisConnectionInfo::default();
        if let Some(user) = &settings.sentinel_username {
            auth = auth.set_username(user);
        }
        if let Some(password) = &settings.sentinel_password {
            auth = auth.set_password(password.expose());
        }
        let sentinels = addresses
            .iter()
            .map(|a| {
                let info = format!("{scheme}://{a}")
                    .into_connection_info()?
                    .set_redis_settings(auth.clone())
                    .set_tcp_settings(node.tcp_settings().clone());
                Ok((a.clone(), redis::Client::open(info)?))
            })
            .collect::<Result<Vec<_>, RedisError>>()?;
        Ok(Sentinels {
            master,
            connections: tokio::sync::Mutex::new(vec![None; sentinels.len()]),
            sentinels,
            preferred: AtomicUsize::new(0),
            node,
            connect_timeout,
            response_timeout,
        })
    }

    /// The same sentinels, trusting `ca` (when given) over TLS.
    pub(super) fn trusting(mut self, ca: Option<&[u8]>) -> Result<Self, RedisError> {
        for (_, client) in &mut self.sentinels {
            let info = client.get_connection_info().clone();
            *client = redis::Client::open(super::connection::trusting(info, ca)?)?;
        }
        Ok(self)
    }

    /// The connection settings of the data node at `address`.
    pub(super) fn node(&self, address: &Address) -> ConnectionInfo {
        at(&self.node, address)
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
    }

    /// Where the sentinels say the primary is: the first sentinel that answers, in turn from
    /// the one that answered last.
    pub(super) async fn primary(&self) -> Result<Address, RedisError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut problems = Vec::new();
        for k in 0..self.sentinels.len() {
            let i = (first + k) % self.sentinels.len();
            match self.ask(i).await {
                Ok(address) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(address);
                }
                Err(e) => problems.push(format!("{}: {e}", self.sentinels[i].0)),
            }
        }
        Err(failure(format!(
            "no sentinel named the primary {:?} ({})",
            self.master,
            problems.join("; ")
        )))
    }

    /// Sentinel `i`'s answer, within the timeouts.
    async fn ask(&self, i: usize) -> Result<Address, RedisError> {
        let bound = self.connect_timeout + self.response_timeout;
        let asked = tokio::time::timeout(bound, async {
            let mut connection = self.connection(i).await?;
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.master)
                .query_async::<Option<(String, u16)>>(&mut connection)
                .await
        })
        .await
        .unwrap_or_else(|_| Err(failure("no answer in time".to_owned())));
        match asked {
            Ok(Some((host, port))) => Ok(Address { host, port }),
            Ok(None) => Err(failure("does not monitor that name".to_owned())),
            Err(e) => {
                self.connections.lock().await[i] = None;
                Err(e)
            }
        }
    }

    async fn connection(&self, i: usize) -> Result<MultiplexedConnection, RedisError> {
        let mut connections = self.connections.lock().await;
        if let Some(c) = &connections[i] {
            return Ok(c.clone());
        }
        let made = self.sentinels[i]
            .1
            .get_multiplexed_async_connection_with_config(&self.config())
            .await?;
        connections[i] = Some(made.clone());
        Ok(made)
    }

    /// Whether the node at `address` says it is a primary (`ROLE`), within the timeouts. A
    /// user not allowed `ROLE` (it is an admin command) cannot ask: the sentinels are trusted.
    pub(super) async fn is_primary(&self, address: &Address) -> bool {
        let bound = self.connect_timeout + self.response_timeout;
        let asked = tokio::time::timeout(bound, async {
            let client = redis::Client::open(self.node(address))?;
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&self.config())
                .await?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut connection).await?;
            let first = role.into_iter().next();
            Ok::<_, RedisError>(first.and_then(|v| redis::from_redis_value::<String>(v).ok()))
        })
        .await;
        match asked {
            Ok(Ok(Some(role))) => role == "master",
            Ok(Err(e)) if e.code() == Some("NOPERM") => {
                tracing::debug!(%address, "not allowed ROLE: following the sentinels unchecked");
                true
            }
            _ => false,
        }
    }
}
