//! The settings ops change while the service runs: thresholds, rate-limit quotas, the CAPTCHA,
//! shadow switches, block and allow lists, and which model scores. The configuration file gives
//! each one's value; what ops set at runtime is stored in Redis, wins over the file, survives
//! restarts and reaches every instance. Settings are read and written as `key = value` pairs
//! (the same text in the API, the command line and the audit log), and every value says where
//! it came from.
//!
//! This module is the domain: the keys and how their values parse, how stored overrides and
//! the file combine, and what makes a set of settings unusable. Storage is in
//! [`crate::store::redis`]; applying settings to the running service in [`live`].

pub mod admin;
pub mod lists;
pub mod live;
pub mod store;

pub use store::{Audit, AuditChange, QueueDepths, SettingsStore, Stats};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::captcha::{CaptchaSettings, Mode};
use crate::comment::Violation;
use crate::decide::Thresholds;
use crate::rate_limit::{Bucket, Buckets, Quota};

/// Everything ops can change at runtime.
#[derive(Clone, Debug, PartialEq)]
pub struct Tunables {
    /// Decision thresholds.
    pub thresholds: Thresholds,
    /// Record what the classifier would decide without letting it decide.
    pub decision_shadow: bool,
    /// Rate limiting on or off.
    pub rate_limit_enabled: bool,
    /// The quotas (each with its shadow switch).
    pub buckets: Buckets,
    /// The CAPTCHA every comment needs, unless its article says otherwise.
    pub captcha_mode: Mode,
    /// Per-article CAPTCHA modes.
    pub captcha_articles: BTreeMap<String, Mode>,
    /// Check CAPTCHA answers and count refusals without refusing.
    pub captcha_shadow: bool,
    /// Block and allow lists.
    pub lists: lists::ListSettings,
    /// The model that scores comments (a file stem in the models directory).
    pub model: String,
    /// A candidate model scored beside the active one, whose decisions are only compared.
    pub model_shadow: Option<String>,
    /// Pre-moderated and closed articles, pre-moderated hours.
    pub articles: crate::articles::ArticleSettings,
    /// Readers' standings, first comments, automatic pre-moderation.
    pub readers: crate::readers::ReaderTunables,
    /// Readers posting near copies that make a campaign (0: off).
    pub campaign_copies: u32,
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The configuration (file, environment or built-in default).
    File,
    /// The active model's recommended value (a threshold the file leaves unset).
    Model,
    /// Set at runtime by ops.
    Runtime {
        /// Who set it.
        by: String,
        /// When (Unix ms).
        at_ms: i64,
    },
}

/// One value ops set at runtime, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// The value, as text.
    pub value: String,
    /// Who set it.
    pub set_by: String,
    /// When (Unix ms).
    pub set_at_ms: i64,
}

/// What ops set at runtime: a version (0 before the first update) and the overrides by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Incremented by every update.
    pub version: u64,
    /// Key → override.
    pub overrides: BTreeMap<String, Override>,
}

/// One change in an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Set `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// The value, as text.
        value: String,
    },
    /// Drop the runtime value of `key`: the file's applies again.
    Reset {
        /// The key.
        key: String,
    },
}

impl Change {
    fn key(&self) -> &str {
        match self {
            Change::Set { key, .. } | Change::Reset { key } => key,
        }
    }
}

/// The settings in force: the values, where each came from, and the version they are at.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    /// The version of the stored overrides.
    pub version: u64,
    /// The values.
    pub tunables: Tunables,
    /// Key → source.
    pub sources: BTreeMap<&'static str, Source>,
}

impl Effective {
    /// Every key with its value, source and description, in the order of [`KEYS`].
    pub fn entries(&self) -> Vec<(&'static Key, String, Source)> {
        KEYS.iter()
            .map(|k| {
                let source = self.sources.get(k.name).cloned().unwrap_or(Source::File);
                (k, (k.get)(&self.tunables), source)
            })
            .collect()
    }
}

/// What a check of settings needs to know about the rest of the configuration.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// `rate_limit.email_hash_key` is configured.
    pub email_hash_key: bool,
    /// The CAPTCHA configuration (secrets and providers).
    pub captcha: CaptchaSettings,
    /// The models available (file stems in the models directory).
    pub models: Vec<String>,
}

/// A setting ops can change: its name, what it means, and how its value reads and parses.
pub struct Key {
    /// The key (`decision.accept_below`).
    pub name: &'static str,
    /// What it means and what values it takes.
    pub help: &'static str,
    get: fn(&Tunables) -> String,
    set: fn(&mut Tunables, &str) -> Result<(), String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn probability(raw: &str) -> Result<f32, String> {
    let v: f32 = raw
        .trim()
        .parse()
        .map_err(|_| "must be a number between 0 and 1".to_owned())?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be between 0 and 1, is {v}"))
    }
}

fn boolean(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

/// A quota as text: `5/1m burst 3`, or `off`.
fn format_quota(q: Option<&Quota>) -> String {
    match q {
        None => "off".to_owned(),
        Some(q) => format!(
            "{}/{} burst {}",
            q.rate,
            humantime::format_duration(q.per),
            q.burst
        ),
    }
}

fn parse_quota(raw: &str, shadow: bool) -> Result<Option<Quota>, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || format!("must be RATE/PERIOD [burst N] (e.g. 5/1m burst 3) or off, is {raw:?}");
    let (rate_per, burst) = match raw.split_once("burst") {
        Some((head, burst)) => (head.trim(), Some(burst.trim())),
        None => (raw, None),
    };
    let (rate, per) = rate_per.split_once('/').ok_or_else(bad)?;
    let rate: u32 = rate.trim().parse().map_err(|_| bad())?;
    let per: Duration = humantime::parse_duration(per.trim()).map_err(|_| bad())?;
    let burst: u32 = match burst {
        Some(b) => b.parse().map_err(|_| bad())?,
        None => rate.clamp(1, 10),
    };
    if rate == 0 || burst == 0 || per.is_zero() {
        return Err("rate, period and burst must be more than 0".to_owned());
    }
    Ok(Some(Quota {
        rate,
        per,
        burst,
        shadow,
    }))
}

fn bucket_mut(b: &mut Buckets, bucket: Bucket) -> &mut Option<Quota> {
    match bucket {
        Bucket::Email => &mut b.email,
        Bucket::Ip => &mut b.ip,
        Bucket::Article => &mut b.article,
        Bucket::Global => &mut b.global,
    }
}

fn set_quota(t: &mut Tunables, bucket: Bucket, raw: &str) -> Result<(), String> {
    let slot = bucket_mut(&mut t.buckets, bucket);
    let shadow = slot.as_ref().is_some_and(|q| q.shadow);
    *slot = parse_quota(raw, shadow)?;
    Ok(())
}

fn set_bucket_shadow(t: &mut Tunables, bucket: Bucket, raw: &str) -> Result<(), String> {
    let on = boolean(raw)?;
    match bucket_mut(&mut t.buckets, bucket) {
        Some(q) => {
            q.shadow = on;
            Ok(())
        }
        None if !on => Ok(()),
        None => Err(format!("rate_limit.{bucket} is off: set a quota first")),
    }
}

fn mode(raw: &str) -> Result<Mode, String> {
    let raw = raw.trim().to_ascii_lowercase();
    Mode::ALL
        .into_iter()
        .find(|m| m.name() == raw || (raw == "pow" && *m == Mode::ProofOfWork))
        .ok_or_else(|| {
            let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
            format!("must be one of {}", names.join(", "))
        })
}

fn articles(raw: &str) -> Result<BTreeMap<String, Mode>, String> {
    let mut out = BTreeMap::new();
    for entry in list_items(raw) {
        let (article, m) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} is not ARTICLE=MODE"))?;
        crate::comment::ArticleId::parse(article.trim()).map_err(|v| v.description)?;
        out.insert(article.trim().to_owned(), mode(m)?);
    }
    Ok(out)
}

fn format_articles(a: &BTreeMap<String, Mode>) -> String {
    let mut out = String::new();
    for (article, m) in a {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "{article}={}", m.name());
    }
    out
}

/// The items of a list value: separated by commas or line breaks, trimmed, empty ones dropped.
pub fn list_items(raw: &str) -> impl Iterator<Item = &str> {
    raw.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn model_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(name.to_owned())
    } else {
        Err("must be a model's name (its file name in the models directory, without .model)".into())
    }
}

macro_rules! list_key {
    ($name:literal, $field:ident, $help:literal, $parse:path) => {
        Key {
            name: $name,
            help: $help,
            get: |t| t.lists.$field.join(", "),
            set: |t, v| {
                t.lists.$field = $parse(v)?;
                Ok(())
            },
        }
    };
}

/// Every key, in the order they are shown and applied (a bucket's quota before its shadow
/// switch).
pub static KEYS: &[Key] = &[
    Key {
        name: "decision.accept_below",
        help: "spam probability below which a comment is accepted (0 to 1)",
        get: |t| t.thresholds.accept_below.to_string(),
        set: |t, v| {
            t.thresholds.accept_below = probability(v)?;
            Ok(())
        },
    },
    Key {
        name: "decision.reject_at",
        help: "spam probability at or above which a comment is rejected (0 to 1)",
        get: |t| t.thresholds.reject_at.to_string(),
        set: |t, v| {
            t.thresholds.reject_at = probability(v)?;
            Ok(())
        },
    },
    Key {
        name: "decision.review_toxic_at",
        help: "toxic probability at or above which a comment goes to review (0 to 1)",
        get: |t| t.thresholds.review_toxic_at.to_string(),
        set: |t, v| {
            t.thresholds.review_toxic_at = probability(v)?;
            Ok(())
        },
    },
    Key {
        name: "decision.shadow",
        help: "true: the classifier only records what it would decide; comments pass as if it were off",
        get: |t| t.decision_shadow.to_string(),
        set: |t, v| {
            t.decision_shadow = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "rate_limit.enabled",
        help: "rate limiting on or off",
        get: |t| t.rate_limit_enabled.to_string(),
        set: |t, v| {
            t.rate_limit_enabled = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "rate_limit.ip",
        help: "per client IP (IPv6 by /64): RATE/PERIOD [burst N], or off",
        get: |t| format_quota(t.buckets.ip.as_ref()),
        set: |t, v| set_quota(t, Bucket::Ip, v),
    },
    Key {
        name: "rate_limit.email",
        help: "per author e-mail address: RATE/PERIOD [burst N], or off",
        get: |t| format_quota(t.buckets.email.as_ref()),
        set: |t, v| set_quota(t, Bucket::Email, v),
    },
    Key {
        name: "rate_limit.article",
        help: "per article: RATE/PERIOD [burst N], or off",
        get: |t| format_quota(t.buckets.article.as_ref()),
        set: |t, v| set_quota(t, Bucket::Article, v),
    },
    Key {
        name: "rate_limit.global",
        help: "for the whole service: RATE/PERIOD [burst N], or off",
        get: |t| format_quota(t.buckets.global.as_ref()),
        set: |t, v| set_quota(t, Bucket::Global, v),
    },
    Key {
        name: "rate_limit.ip.shadow",
        help: "true: the IP bucket counts what it would refuse without refusing",
        get: |t| t.buckets.ip.as_ref().is_some_and(|q| q.shadow).to_string(),
        set: |t, v| set_bucket_shadow(t, Bucket::Ip, v),
    },
    Key {
        name: "rate_limit.email.shadow",
        help: "true: the e-mail bucket counts what it would refuse without refusing",
        get: |t| {
            t.buckets
                .email
                .as_ref()
                .is_some_and(|q| q.shadow)
                .to_string()
        },
        set: |t, v| set_bucket_shadow(t, Bucket::Email, v),
    },
    Key {
        name: "rate_limit.article.shadow",
        help: "true: the article bucket counts what it would refuse without refusing",
        get: |t| {
            t.buckets
                .article
                .as_ref()
                .is_some_and(|q| q.shadow)
                .to_string()
        },
        set: |t, v| set_bucket_shadow(t, Bucket::Article, v),
    },
    Key {
        name: "rate_limit.global.shadow",
        help: "true: the global bucket counts what it would refuse without refusing",
        get: |t| {
            t.buckets
                .global
                .as_ref()
                .is_some_and(|q| q.shadow)
                .to_string()
        },
        set: |t, v| set_bucket_shadow(t, Bucket::Global, v),
    },
    Key {
        name: "captcha.mode",
        help: "the CAPTCHA every comment needs: off, image, proof_of_work, turnstile, hcaptcha, recaptcha_v2, recaptcha_v3",
        get: |t| t.captcha_mode.name().to_owned(),
        set: |t, v| {
            t.captcha_mode = mode(v)?;
            Ok(())
        },
    },
    Key {
        name: "captcha.articles",
        help: "per-article modes: ARTICLE=MODE, comma-separated",
        get: |t| format_articles(&t.captcha_articles),
        set: |t, v| {
            t.captcha_articles = articles(v)?;
            Ok(())
        },
    },
    Key {
        name: "captcha.shadow",
        help: "true: answers are checked and refusals counted, but nobody is refused",
        get: |t| t.captcha_shadow.to_string(),
        set: |t, v| {
            t.captcha_shadow = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "articles.premoderated",
        help: "articles whose every comment waits for an editor (ids, comma-separated)",
        get: |t| t.articles.premoderated.join(", "),
        set: |t, v| {
            t.articles.premoderated = list_items(v).map(str::to_owned).collect();
            Ok(())
        },
    },
    Key {
        name: "articles.closed",
        help: "articles closed to comments: submissions are refused with ARTICLE_CLOSED (ids, comma-separated)",
        get: |t| t.articles.closed.join(", "),
        set: |t, v| {
            t.articles.closed = list_items(v).map(str::to_owned).collect();
            Ok(())
        },
    },
    Key {
        name: "articles.premoderation_hours",
        help: "hours when every comment waits for an editor, HH:MM-HH:MM in articles.timezone (22:00-06:00); empty for none",
        get: |t| t.articles.premoderation_hours.clone(),
        set: |t, v| {
            crate::articles::hours(v)?;
            t.articles.premoderation_hours = v.trim().to_owned();
            Ok(())
        },
    },
    Key {
        name: "articles.premoderation_days",
        help: "whole days when every comment waits for an editor: mon … sun, comma-separated",
        get: |t| t.articles.premoderation_days.join(", "),
        set: |t, v| {
            let names: Vec<String> = list_items(v).map(str::to_owned).collect();
            crate::articles::days(&names)?;
            t.articles.premoderation_days = names;
            Ok(())
        },
    },
    Key {
        name: "articles.timezone",
        help: "the newsroom's time zone for articles.premoderation_hours and _days (Asia/Ho_Chi_Minh)",
        get: |t| t.articles.timezone.clone(),
        set: |t, v| {
            crate::articles::timezone(v)?;
            t.articles.timezone = v.trim().to_owned();
            Ok(())
        },
    },
    list_key!(
        "lists.blocked_words",
        blocked_words,
        "words or phrases that reject a comment (written without diacritics, they match either way)",
        lists::phrases
    ),
    list_key!(
        "lists.allowed_words",
        allowed_words,
        "phrases that contain a blocked word but are fine (they are not matched)",
        lists::phrases
    ),
    list_key!(
        "lists.blocked_link_domains",
        blocked_link_domains,
        "a link to one of these registered domains (abc.com.vn), or under a suffix (com.vn), rejects a comment",
        lists::link_domains
    ),
    list_key!(
        "lists.allowed_link_domains",
        allowed_link_domains,
        "exceptions to blocked_link_domains (registered domains)",
        lists::link_domains
    ),
    list_key!(
        "lists.blocked_ips",
        blocked_ips,
        "addresses and networks (CIDR) whose comments are rejected",
        lists::networks
    ),
    list_key!(
        "lists.allowed_ips",
        allowed_ips,
        "addresses and networks (the newsroom) that skip rate limits, the CAPTCHA and blocked_ips (not the other block lists)",
        lists::networks
    ),
    list_key!(
        "lists.blocked_email_domains",
        blocked_email_domains,
        "e-mail domains (and their subdomains) whose comments are rejected",
        lists::domains
    ),
    list_key!(
        "lists.allowed_email_domains",
        allowed_email_domains,
        "exceptions to blocked_email_domains and block_disposable_email",
        lists::domains
    ),
    Key {
        name: "lists.block_disposable_email",
        help: "true: addresses at known disposable-mail domains are rejected too",
        get: |t| t.lists.block_disposable_email.to_string(),
        set: |t, v| {
            t.lists.block_disposable_email = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "readers.hold_first_comment",
        help: "true: a reader's first comment waits for a moderator (FIRST_COMMENT); costs that submission one storage read",
        get: |t| t.readers.hold_first_comment.to_string(),
        set: |t, v| {
            t.readers.hold_first_comment = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "readers.auto_premoderate",
        help: "when a reader's rejections pre-moderate them: `3 of 10 for 7d` (rejections of their latest decided comments, for how long), or `off`",
        get: |t| t.readers.auto_premoderate.to_string(),
        set: |t, v| {
            t.readers.auto_premoderate = crate::readers::AutoPremoderation::parse(v)?;
            Ok(())
        },
    },
    Key {
        name: "campaigns.copies",
        help: "readers posting near copies of a text within campaigns.window that make a campaign (DUPLICATE_CAMPAIGN); 0 turns detection off",
        get: |t| t.campaign_copies.to_string(),
        set: |t, v| {
            let copies: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("{v:?} is not a whole number"))?;
            if copies == 1 || copies > 1000 {
                return Err("must be 0 (off) or 2 to 1000".into());
            }
            t.campaign_copies = copies;
            Ok(())
        },
    },
    Key {
        name: "model.active",
        help: "the model that scores comments (see `models list`)",
        get: |t| t.model.clone(),
        set: |t, v| {
            t.model = model_name(v)?;
            Ok(())
        },
    },
    Key {
        name: "model.shadow",
        help: "a candidate model scored beside the active one, its decisions only compared; empty for none",
        get: |t| t.model_shadow.clone().unwrap_or_default(),
        set: |t, v| {
            t.model_shadow = if v.trim().is_empty() {
                None
            } else {
                Some(model_name(v)?)
            };
            Ok(())
        },
    },
];

/// The key named `name`.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

fn position(name: &str) -> usize {
    KEYS.iter()
        .position(|k| k.name == name)
        .unwrap_or(usize::MAX)
}

/// The settings in force: `base` (from the file, with the model's thresholds where the file
/// has none) with `stored` on top. An override that no longer parses (written by another
/// version of the service) is skipped and returned as a warning.
pub fn resolve(
    base: &Tunables,
    base_sources: &BTreeMap<&'static str, Source>,
    stored: &Stored,
) -> (Effective, Vec<String>) {
    let mut tunables = base.clone();
    let mut sources = base_sources.clone();
    let mut warnings = Vec::new();
    let mut ordered: Vec<(&String, &Override)> = stored.overrides.iter().collect();
    ordered.sort_by_key(|(k, _)| position(k));
    for (name, o) in ordered {
        match key(name) {
            Some(k) => match (k.set)(&mut tunables, &o.value) {
                Ok(()) => {
                    sources.insert(
                        k.name,
                        Source::Runtime {
                            by: o.set_by.clone(),
                            at_ms: o.set_at_ms,
                        },
                    );
                }
                Err(e) => warnings.push(format!("stored {name} = {:?} is skipped: {e}", o.value)),
            },
            None => match reader_status(name, &o.value) {
                Some(Ok((id, status))) => {
                    let directory = &mut tunables.readers.directory;
                    directory.insert(id, status, &o.set_by, o.set_at_ms)
                }
                Some(Err(e)) => {
                    warnings.push(format!("stored {name} = {:?} is skipped: {e}", o.value))
                }
                None => warnings.push(format!("stored {name} is not a setting; skipped")),
            },
        }
    }
    (
        Effective {
            version: stored.version,
            tunables,
            sources,
        },
        warnings,
    )
}

/// Applies `changes` to `stored` as `by` at `at_ms`, and checks the result as a whole against
/// `base` and `context`. Returns the new overrides, or every violation (each naming its key).
pub fn apply(
    base: &Tunables,
    base_sources: &BTreeMap<&'static str, Source>,
    stored: &Stored,
    changes: &[Change],
    by: &str,
    at_ms: i64,
    context: &Context,
) -> Result<Stored, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut next = stored.clone();
    if changes.is_empty() {
        violations.push(Violation::new("changes", "name at least one setting"));
    }
    // Each value is parsed on top of the others, in key order (a bucket's quota before its
    // shadow switch), so an update may set both.
    let mut ordered: Vec<&Change> = changes.iter().collect();
    ordered.sort_by_key(|c| position(c.key()));
    let mut working = resolve(base, base_sources, stored).0.tunables;
    for change in ordered {
        let name = change.key();
        if name.starts_with(crate::readers::KEY_PREFIX) {
            if let Err(e) = apply_reader(&mut next, change, by, at_ms) {
                violations.push(Violation::new("changes", format!("{name}: {e}")));
            }
            continue;
        }
        let Some(k) = key(name) else {
            violations.push(Violation::new(
                "changes",
                format!("{name:?} is not a setting (see `settings get` for the keys)"),
            ));
            continue;
        };
        match change {
            Change::Set { value, .. } => {
                if let Err(e) = (k.set)(&mut working, value) {
                    violations.push(Violation::new(k.name, e));
                    continue;
                }
                next.overrides.insert(
                    k.name.to_owned(),
                    Override {
                        value: value.trim().to_owned(),
                        set_by: by.to_owned(),
                        set_at_ms: at_ms,
                    },
                );
            }
            Change::Reset { .. } => {
                next.overrides.remove(k.name);
            }
        }
    }
    // The values that parsed are checked together too, so one answer names every problem.
    let (effective, warnings) = resolve(base, base_sources, &next);
    // A new value that depends on another (a bucket's shadow switch on its quota) fails here.
    violations.extend(warnings.into_iter().map(|w| Violation::new("changes", w)));
    violations.extend(problems(&effective.tunables, context));
    if violations.is_empty() {
        next.version = stored.version + 1;
        Ok(next)
    } else {
        Err(violations)
    }
}

/// A reader's standing from a stored `reader.<id>` key: `None` when `name` is not one.
fn reader_status(
    name: &str,
    value: &str,
) -> Option<Result<(crate::readers::ReaderId, crate::readers::Status), String>> {
    let id = name.strip_prefix(crate::readers::KEY_PREFIX)?;
    Some(
        crate::readers::ReaderId::parse("reader", id)
            .map_err(|v| v.description)
            .and_then(|id| Ok((id, crate::readers::Status::parse(value)?))),
    )
}

/// Sets or resets one reader's standing in `next`.
fn apply_reader(next: &mut Stored, change: &Change, by: &str, at_ms: i64) -> Result<(), String> {
    match change {
        Change::Set { key, value } => {
            let (id, status) = reader_status(key, value).expect("a reader's key")?;
            next.overrides.insert(
                crate::readers::status_key(&id),
                Override {
                    value: status.to_string(),
                    set_by: by.to_owned(),
                    set_at_ms: at_ms,
                },
            );
        }
        Change::Reset { key } => {
            let id = key.strip_prefix(crate::readers::KEY_PREFIX).unwrap_or(key);
            let id = crate::readers::ReaderId::parse("reader", id).map_err(|v| v.description)?;
            next.overrides.remove(&crate::readers::status_key(&id));
        }
    }
    Ok(())
}

/// Puts `recommended` (the active model's recommended thresholds) in place of the thresholds
/// that come from the model, so they follow the model ops switch to.
pub fn follow_model(effective: &mut Effective, recommended: Thresholds) {
    let from_model = |key: &str| effective.sources.get(key) == Some(&Source::Model);
    let t = &mut effective.tunables.thresholds;
    if from_model("decision.accept_below") {
        t.accept_below = recommended.accept_below;
    }
    if from_model("decision.reject_at") {
        t.reject_at = recommended.reject_at;
    }
    if from_model("decision.review_toxic_at") {
        t.review_toxic_at = recommended.review_toxic_at;
    }
}

/// What makes a set of settings unusable, each naming the key to change.
pub fn problems(t: &Tunables, context: &Context) -> Vec<Violation> {
    let mut out = Vec::new();
    let th = &t.thresholds;
    if th.accept_below > th.reject_at {
        out.push(Violation::new(
            "decision.accept_below",
            format!(
                "must not be above decision.reject_at ({} > {})",
                th.accept_below, th.reject_at
            ),
        ));
    }
    if t.rate_limit_enabled && t.buckets.email.is_some() && !context.email_hash_key {
        out.push(Violation::new(
            "rate_limit.email",
            "needs rate_limit.email_hash_key in the configuration file (the same secret on every instance)",
        ));
    }
    let captcha = CaptchaSettings {
        mode: t.captcha_mode,
        articles: t.captcha_articles.clone(),
        ..context.captcha.clone()
    };
    for (name, problem) in captcha.problems() {
        let key = if captcha.articles.values().any(|&m| m != Mode::Off)
            && !captcha_uses(t.captcha_mode, &name)
        {
            "captcha.articles"
        } else {
            "captcha.mode"
        };
        out.push(Violation::new(
            key,
            format!("{name} {problem} (set it in the configuration file)"),
        ));
    }
    for (key, model) in [
        ("model.active", Some(&t.model)),
        ("model.shadow", t.model_shadow.as_ref()),
    ] {
        if let Some(m) = model
            && !context.models.iter().any(|x| x == m)
        {
            out.push(Violation::new(
                key,
                format!(
                    "no model {m:?} in the models directory (there are: {})",
                    context.models.join(", ")
                ),
            ));
        }
    }
    if t.model_shadow.as_ref() == Some(&t.model) {
        out.push(Violation::new(
            "model.shadow",
            "is the active model: a candidate must be another one",
        ));
    }
    out
}

/// Whether the global `mode` needs the configuration section a CAPTCHA problem names.
fn captcha_uses(mode: Mode, setting: &str) -> bool {
    match mode {
        Mode::Off => false,
        Mode::Image | Mode::ProofOfWork => setting == "captcha.secret",
        Mode::Turnstile => setting == "captcha.turnstile",
        Mode::Hcaptcha => setting == "captcha.hcaptcha",
        Mode::RecaptchaV2 | Mode::RecaptchaV3 => setting == "captcha.recaptcha",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> (Tunables, BTreeMap<&'static str, Source>) {
        let t = Tunables {
            thresholds: Thresholds {
                accept_below: 0.36,
                reject_at: 0.79,
                review_toxic_at: 0.42,
            },
            decision_shadow: false,
            rate_limit_enabled: true,
            buckets: Buckets::default(),
            captcha_mode: Mode::Off,
            captcha_articles: BTreeMap::new(),
            captcha_shadow: false,
            lists: lists::ListSettings::default(),
            model: "vi-en-20261127".into(),
            model_shadow: None,
            articles: crate::articles::ArticleSettings::default(),
            readers: crate::readers::ReaderTunables::default(),
            campaign_copies: 3,
        };
        let sources = [("decision.accept_below", Source::Model)]
            .into_iter()
            .collect();
        (t, sources)
    }

    fn context() -> Context {
        Context {
            email_hash_key: false,
            captcha: CaptchaSettings::default(),
            models: vec!["vi-en-20261127".into(), "vi-en-20261215".into()],
        }
    }

    fn set(key: &str, value: &str) -> Change {
        Change::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn the_readme_documents_every_key() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let missing: Vec<&str> = KEYS
            .iter()
            .map(|k| k.name)
            .filter(|name| !readme.contains(&format!("`{name}`")))
            .collect();
        assert!(missing.is_empty(), "not in README.md: {missing:?}");
    }

    #[test]
    fn every_value_reads_back_as_it_was_set() {
        let (base, _) = base();
        for (key_name, value) in [
            ("decision.accept_below", "0.3"),
            ("decision.shadow", "true"),
            ("rate_limit.ip", "5/1m burst 3"),
            ("rate_limit.global", "1000/1s burst 200"),
            ("captcha.mode", "proof_of_work"),
            ("captcha.articles", "bai-1=image, bai-2=off"),
            ("lists.blocked_words", "nha cai, lô đề"),
            ("lists.blocked_ips", "203.0.113.0/24, 2001:db8::1/128"),
            ("lists.blocked_link_domains", "bit.ly, example.xyz"),
            ("model.shadow", "vi-en-20261215"),
        ] {
            let k = key(key_name).unwrap();
            let mut t = base.clone();
            (k.set)(&mut t, value).unwrap();
            assert_eq!((k.get)(&t), value, "{key_name}");
        }
        let mut t = base.clone();
        (key("rate_limit.ip").unwrap().set)(&mut t, "10/1h").unwrap();
        assert_eq!(
            t.buckets.ip.unwrap().burst,
            10,
            "burst defaults to the rate, up to 10"
        );
        assert!((key("decision.reject_at").unwrap().set)(&mut t, "1.5").is_err());
        assert!((key("rate_limit.ip").unwrap().set)(&mut t, "5 per minute").is_err());
        assert!((key("captcha.mode").unwrap().set)(&mut t, "sudoku").is_err());
        assert!((key("lists.blocked_ips").unwrap().set)(&mut t, "10.0.0.300").is_err());
    }

    #[test]
    fn readers_standings_are_settings_of_their_own() {
        use crate::readers::{ReaderKey, Standing};
        let (base, sources) = base();
        let lan = ReaderKey::new(&crate::secret::Secret::new("k")).id("lan@example.vn");
        let name = crate::readers::status_key(&lan);
        let stored = apply(
            &base,
            &sources,
            &Stored::default(),
            &[
                set(&name, "banned because insults"),
                set("readers.hold_first_comment", "true"),
            ],
            "mod-minh",
            1_000,
            &context(),
        )
        .unwrap();
        let (effective, warnings) = resolve(&base, &sources, &stored);
        assert!(warnings.is_empty(), "{warnings:?}");
        let readers = &effective.tunables.readers;
        assert!(readers.hold_first_comment);
        let status = readers.directory.get(&lan).unwrap();
        assert_eq!(
            (status.standing, status.reason.as_str()),
            (Standing::Banned, "insults")
        );
        assert_eq!(stored.overrides[&name].set_by, "mod-minh");
        let bad = apply(
            &base,
            &sources,
            &stored,
            &[set(&name, "exiled"), set("reader.lan@example.vn", "banned")],
            "mod-minh",
            2_000,
            &context(),
        )
        .unwrap_err();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].description.contains("not a standing"), "{bad:?}");
        assert!(
            bad[1].description.contains("32 hexadecimal digits"),
            "{bad:?}"
        );
        let lifted = apply(
            &base,
            &sources,
            &stored,
            &[Change::Reset { key: name.clone() }],
            "mod-minh",
            3_000,
            &context(),
        )
        .unwrap();
        let (effective, _) = resolve(&base, &sources, &lifted);
        assert!(effective.tunables.readers.directory.is_empty());
    }

    #[test]
    fn runtime_values_win_and_say_who_set_them() {
        let (base, sources) = base();
        let stored = apply(
            &base,
            &sources,
            &Stored::default(),
            &[
                set("decision.reject_at", "0.9"),
                set("rate_limit.ip", "5/1m"),
            ],
            "ops-lan",
            1_000,
            &context(),
        )
        .unwrap();
        assert_eq!(stored.version, 1);
        let (effective, warnings) = resolve(&base, &sources, &stored);
        assert!(warnings.is_empty());
        assert_eq!(effective.tunables.thresholds.reject_at, 0.9);
        let entries = effective.entries();
        let source = |name: &str| entries.iter().find(|e| e.0.name == name).unwrap().2.clone();
        assert_eq!(
            source("decision.reject_at"),
            Source::Runtime {
                by: "ops-lan".into(),
                at_ms: 1_000
            }
        );
        assert_eq!(source("decision.accept_below"), Source::Model);
        assert_eq!(source("captcha.mode"), Source::File);

        // A reset brings the file's value back.
        let reset = apply(
            &base,
            &sources,
            &stored,
            &[Change::Reset {
                key: "decision.reject_at".into(),
            }],
            "ops-lan",
            2_000,
            &context(),
        )
        .unwrap();
        assert_eq!(reset.version, 2);
        assert_eq!(
            resolve(&base, &sources, &reset)
                .0
                .tunables
                .thresholds
                .reject_at,
            0.79
        );
    }

    #[test]
    fn an_update_is_checked_as_a_whole_and_every_violation_named() {
        let (base, sources) = base();
        let refused = |changes: &[Change]| -> Vec<&'static str> {
            apply(
                &base,
                &sources,
                &Stored::default(),
                changes,
                "ops",
                0,
                &context(),
            )
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect()
        };
        assert_eq!(
            refused(&[set("decision.accept_below", "0.9")]),
            ["decision.accept_below"],
            "above reject_at"
        );
        assert_eq!(
            refused(&[set("decision.reject_at", "2"), set("rate_limit.ip", "fast")]),
            ["decision.reject_at", "rate_limit.ip"]
        );
        assert_eq!(
            refused(&[set("rate_limit.email", "3/1m")]),
            ["rate_limit.email"]
        );
        assert_eq!(
            refused(&[set("captcha.mode", "turnstile")]),
            ["captcha.mode"]
        );
        assert_eq!(
            refused(&[set("captcha.articles", "hot=image")]),
            ["captcha.articles"]
        );
        assert_eq!(
            refused(&[set("model.active", "vi-en-1999")]),
            ["model.active"]
        );
        assert_eq!(
            refused(&[set("model.shadow", "vi-en-20261127")]),
            ["model.shadow"]
        );
        assert_eq!(
            refused(&[set("rate_limit.ip.shadow", "true")]),
            ["rate_limit.ip.shadow"]
        );
        assert_eq!(refused(&[set("decision.nonsense", "1")]), ["changes"]);
        assert_eq!(refused(&[]), ["changes"]);
        // In one update, a quota and its shadow switch go together.
        let ok = apply(
            &base,
            &sources,
            &Stored::default(),
            &[
                set("rate_limit.ip.shadow", "true"),
                set("rate_limit.ip", "5/1m"),
            ],
            "ops",
            0,
            &context(),
        )
        .unwrap();
        let t = resolve(&base, &sources, &ok).0.tunables;
        assert!(t.buckets.ip.unwrap().shadow);
    }
}
