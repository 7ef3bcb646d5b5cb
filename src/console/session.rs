//! Console sessions: signing in with an API key (or, with authentication off, a name, from this
//! machine only), a server-side session behind an HttpOnly, SameSite=Strict cookie (Secure when
//! the console is reached over HTTPS), a CSRF token per session, expiry.
//!
//! Sessions live in this process's memory: a restart signs everyone out, and behind a load
//! balancer a moderator's requests must reach the instance that signed them in (sticky
//! sessions), as the queue's live view needs anyway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

use crate::auth::{Caller, Keys, Role};

/// The session cookie's name.
pub const COOKIE: &str = "mod_session";

/// A signed-in moderator or operator.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who, with the roles of their key.
    pub caller: Caller,
    /// The token every state-changing request must carry.
    pub csrf: String,
    created: Instant,
    seen: Instant,
}

impl Session {
    /// Whether the session may use what `role` may.
    pub fn has(&self, role: Role) -> bool {
        self.caller.has(role)
    }
}

/// Why a sign-in was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInError {
    /// The key is not one of the configured ones.
    UnknownKey,
    /// The key's roles do not include moderator or ops.
    NoConsoleRole,
    /// With authentication off: the name is not a valid moderator name.
    BadName,
}

/// How callers sign in.
pub enum Gatekeeper {
    /// With an API key.
    Keys(Keys),
    /// With a name only (authentication is off): every role. `protected`: only clients on this
    /// machine are served.
    Names {
        /// Loopback clients only.
        protected: bool,
    },
}

impl Gatekeeper {
    /// Who signs in with `presented` (a key, or a name when keys are off).
    pub fn sign_in(&self, presented: &str) -> Result<Caller, SignInError> {
        match self {
            Gatekeeper::Keys(keys) => {
                let caller = keys
                    .caller(presented.trim())
                    .ok_or(SignInError::UnknownKey)?;
                if caller.has(Role::Moderator) || caller.has(Role::Ops) {
                    Ok(caller.clone())
                } else {
                    Err(SignInError::NoConsoleRole)
                }
            }
            Gatekeeper::Names { .. } => {
                let name = crate::review::Moderator::parse(presented.trim())
                    .map_err(|_| SignInError::BadName)?;
                Ok(Caller {
                    name: name.as_str().to_owned(),
                    roles: vec![Role::Moderator, Role::Ops],
                })
            }
        }
    }

    /// Whether a client at `peer` may be served at all.
    pub fn serves(&self, peer: SocketAddr) -> bool {
        match self {
            Gatekeeper::Names { protected: true } => peer.ip().to_canonical().is_loopback(),
            _ => true,
        }
    }

    /// Whether signing in asks for a key (else a name).
    pub fn wants_key(&self) -> bool {
        matches!(self, Gatekeeper::Keys(_))
    }
}

/// The sessions of this instance.
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    lifetime: Duration,
    idle: Duration,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    crate::hex::hex(&bytes)
}

impl Sessions {
    /// Sessions that end `lifetime` after sign-in, or after `idle` without a request.
    pub fn new(lifetime: Duration, idle: Duration) -> Self {
        Sessions {
            by_token: Mutex::new(HashMap::new()),
            lifetime,
            idle,
        }
    }

    /// Starts a session for `caller`; returns its token (the cookie's value).
    pub fn start(&self, caller: Caller) -> String {
        let now = Instant::now();
        let token = random_token();
        let session = Session {
            caller,
            csrf: random_token(),
            created: now,
            seen: now,
        };
        let mut all = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| self.live(s, now));
        all.insert(token.clone(), session);
        token
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.created) < self.lifetime && now.duration_since(s.seen) < self.idle
    }

    /// The live session of `token`, its idle clock restarted; an expired one is ended.
    pub fn get(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut all = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        let session = all.get_mut(token)?;
        if !self.live(session, now) {
            all.remove(token);
            return None;
        }
        session.seen = now;
        Some(session.clone())
    }

    /// Ends the session of `token`.
    pub fn end(&self, token: &str) {
        let mut all = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        all.remove(token);
    }

    /// How long a session lasts at most.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request reached the console over HTTPS (a proxy in front says so).
pub fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value for a session `token` (empty: the cookie removed).
pub fn set_cookie(token: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = if token.is_empty() {
        0
    } else {
        max_age.as_secs()
    };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Whether a state-changing request comes from the console's own pages: when the browser says
/// where it comes from (`Origin`, or `Sec-Fetch-Site`), it must be this host.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn caller() -> Caller {
        Caller {
            name: "lan".into(),
            roles: vec![Role::Moderator],
        }
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_end_on_sign_out() {
        let sessions = Sessions::new(Duration::from_secs(3600), Duration::from_millis(30));
        let token = sessions.start(caller());
        assert_eq!(sessions.get(&token).unwrap().caller.name, "lan");
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&token).is_none(), "idle too long");
        let sessions = Sessions::new(Duration::from_millis(30), Duration::from_secs(60));
        let token = sessions.start(caller());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&token).is_none(), "too old");
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let token = sessions.start(caller());
        sessions.end(&token);
        assert!(sessions.get(&token).is_none());
        assert!(sessions.get("forged").is_none());
    }

    #[test]
    fn cookies_and_origins_are_read_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mod_session=xyz"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        let set = set_cookie("t", Duration::from_secs(60), true);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure")
        );
        assert!(!set_cookie("t", Duration::from_secs(60), false).contains("Secure"));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn only_console_roles_sign_in() {
        let settings = crate::auth::AuthSettings {
            enabled: true,
            keys: vec![
                crate::auth::KeySettings {
                    name: "portal".into(),
                    roles: vec![Role::Portal],
                    sha256: crate::auth::hash("p-key"),
                },
                crate::auth::KeySettings {
                    name: "lan".into(),
                    roles: vec![Role::Moderator],
                    sha256: crate::auth::hash("m-key"),
                },
            ],
            ..Default::default()
        };
        let gate = Gatekeeper::Keys(Keys::new(&settings));
        assert_eq!(gate.sign_in("m-key").unwrap().name, "lan");
        assert_eq!(gate.sign_in("p-key"), Err(SignInError::NoConsoleRole));
        assert_eq!(gate.sign_in("nope"), Err(SignInError::UnknownKey));
        let names = Gatekeeper::Names { protected: true };
        assert!(names.sign_in("lan").unwrap().has(Role::Ops));
        assert_eq!(names.sign_in("<b>"), Err(SignInError::BadName));
        assert!(names.serves("127.0.0.1:1".parse().unwrap()));
        assert!(!names.serves("10.0.0.1:1".parse().unwrap()));
    }
}
