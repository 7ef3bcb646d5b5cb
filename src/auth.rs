//! Who may call what. Callers present an API key; the configuration holds only each key's
//! SHA-256 hash, with a name and roles. The roles are the portal's backend (`portal`),
//! moderators (`moderator`) and operators (`ops`); which role each RPC needs is the table in
//! [`crate::grpc::edge`].

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The portal's backend: CAPTCHAs, submissions, readers' reports.
    Portal,
    /// Moderators: the review queue.
    Moderator,
    /// Operators: settings, models, statistics.
    Ops,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Portal, Role::Moderator, Role::Ops];

    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Role::Portal => "portal",
            Role::Moderator => "moderator",
            Role::Ops => "ops",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One configured key: its hash, whose it is, and its roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Whose key: recorded as the actor in histories and audit records.
    pub name: String,
    /// What it may do.
    pub roles: Vec<Role>,
    /// SHA-256 of the key, hexadecimal (`moderation new-api-key` prints it).
    pub sha256: String,
}

/// Section `[auth]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Require an API key on every RPC (besides the open ones below).
    pub enabled: bool,
    /// Health checks need no key (load balancers probe them).
    pub open_health: bool,
    /// Server reflection needs no key.
    pub open_reflection: bool,
    /// With authentication off, serve clients on other machines too. Off (the default), the
    /// service is in protected mode while authentication is off: only loopback clients are
    /// served on the gRPC and metrics ports, and others are refused (`PERMISSION_DENIED`,
    /// `PROTECTED_MODE`). Turn this on only on a network where everyone who can reach the port
    /// may change thresholds, approve comments and read every reader's text.
    pub allow_unauthenticated_network: bool,
    /// The keys.
    pub keys: Vec<KeySettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: false,
            open_health: true,
            open_reflection: false,
            allow_unauthenticated_network: false,
            keys: Vec::new(),
        }
    }
}

impl AuthSettings {
    /// Whether only loopback clients are served: authentication is off and serving others
    /// without it was not asked for.
    pub fn protected_mode(&self) -> bool {
        !self.enabled && !self.allow_unauthenticated_network
    }
}

impl AuthSettings {
    /// Every problem with these settings, as (setting, description).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.enabled && self.keys.is_empty() {
            out.push((
                "auth.keys".to_owned(),
                "must hold at least one key when auth.enabled is true".to_owned(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (k, key) in self.keys.iter().enumerate() {
            let at = format!("auth.keys[{k}]");
            if crate::review::Moderator::parse(&key.name).is_err() {
                out.push((
                    format!("{at}.name"),
                    "must be 1 to 100 letters, digits and . _ - @".to_owned(),
                ));
            }
            if key.roles.is_empty() {
                out.push((
                    format!("{at}.roles"),
                    "must name at least one role".to_owned(),
                ));
            }
            let hex_ok =
                key.sha256.len() == 64 && key.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_ok {
                out.push((
                    format!("{at}.sha256"),
                    "must be 64 hexadecimal digits (the SHA-256 of the key)".to_owned(),
                ));
            } else if !seen.insert(key.sha256.to_ascii_lowercase()) {
                out.push((
                    format!("{at}.sha256"),
                    "is the hash of another key too".to_owned(),
                ));
            }
        }
        out
    }
}

/// Who is calling, once their key is recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key's name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// Whether the caller has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// SHA-256 of `key`, hexadecimal.
pub fn hash(key: &str) -> String {
    crate::hex::hex(&Sha256::digest(key.as_bytes()))
}

/// A new random key: 256 bits from the operating system, hexadecimal.
pub fn new_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(crate::hex::hex(&bytes))
}

/// The configured keys, by hash.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    by_hash: HashMap<String, Caller>,
}

impl Keys {
    /// The keys of `settings` (assumed checked).
    pub fn new(settings: &AuthSettings) -> Self {
        Keys {
            by_hash: settings
                .keys
                .iter()
                .map(|k| {
                    (
                        k.sha256.to_ascii_lowercase(),
                        Caller {
                            name: k.name.clone(),
                            roles: k.roles.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The caller a presented key belongs to. Only the key's hash is compared, so the time taken
    /// tells nothing about the keys.
    pub fn caller(&self, presented: &str) -> Option<&Caller> {
        self.by_hash.get(&hash(presented))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_recognised_by_their_hash_only() {
        let key = new_key().unwrap();
        assert_eq!(key.len(), 64);
        assert_ne!(key, new_key().unwrap(), "keys are random");
        let settings = AuthSettings {
            enabled: true,
            keys: vec![KeySettings {
                name: "portal-web".into(),
                roles: vec![Role::Portal],
                sha256: hash(&key).to_uppercase(),
            }],
            ..AuthSettings::default()
        };
        assert!(settings.problems().is_empty());
        let keys = Keys::new(&settings);
        assert_eq!(keys.caller(&key).unwrap().name, "portal-web");
        assert!(keys.caller("guess").is_none());
        assert!(
            keys.caller(&hash(&key)).is_none(),
            "the hash itself is not a key"
        );
    }

    #[test]
    fn bad_key_settings_are_named() {
        let settings = AuthSettings {
            enabled: true,
            keys: vec![
                KeySettings {
                    name: "Lan Nguyen".into(),
                    roles: vec![],
                    sha256: "abc".into(),
                },
                KeySettings {
                    name: "a".into(),
                    roles: vec![Role::Ops],
                    sha256: hash("x"),
                },
                KeySettings {
                    name: "b".into(),
                    roles: vec![Role::Ops],
                    sha256: hash("x"),
                },
            ],
            ..AuthSettings::default()
        };
        let names: Vec<String> = settings.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "auth.keys[0].name",
                "auth.keys[0].roles",
                "auth.keys[0].sha256",
                "auth.keys[2].sha256"
            ]
        );
        let empty = AuthSettings {
            enabled: true,
            ..AuthSettings::default()
        };
        assert_eq!(empty.problems()[0].0, "auth.keys");
    }
}
