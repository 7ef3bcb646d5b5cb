//! A submitted comment as the domain sees it: every field a type that can only be built by
//! parsing, so holding a [`NewComment`] proves validation ran. Parsing collects every
//! violation of a submission at once, each naming its field, so the reader's form can show
//! them all.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use unicode_normalization::UnicodeNormalization;

use crate::text::{TextError, clean, is_invisible};

/// One invalid field: which, and why, in words a portal developer can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The request field, as named in the protocol (`author_email`).
    pub field: &'static str,
    /// What is wrong with it.
    pub description: String,
}

impl Violation {
    pub(crate) fn new(field: &'static str, description: impl Into<String>) -> Self {
        Violation {
            field,
            description: description.into(),
        }
    }
}

/// Keeps the value of a parsed field, or its violation.
struct Collector<'a>(&'a mut Vec<Violation>);

impl Collector<'_> {
    fn keep<T>(&mut self, result: Result<T, Violation>) -> Option<T> {
        result.map_err(|v| self.0.push(v)).ok()
    }
}

/// Limits that ops may change (the rest are fixed by the protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest comment body, in characters.
    pub body_max_chars: usize,
    /// How far ahead of this service's clock `form_rendered_at` may be (the portal's clock
    /// running fast); a later time is refused, since it would switch the too-fast check off.
    #[serde(with = "humantime_serde")]
    pub form_clock_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_max_chars: 5_000,
            form_clock_skew: Duration::from_secs(60),
        }
    }
}

/// Cleans a text field and checks its length in characters.
pub(crate) fn text_field(
    field: &'static str,
    raw: &str,
    multiline: bool,
    min: usize,
    max: usize,
) -> Result<String, Violation> {
    let text = clean(raw, multiline).map_err(|TextError::Control(c)| {
        Violation::new(
            field,
            format!("contains the control character U+{:04X}", c as u32),
        )
    })?;
    let chars = text.chars().count();
    if chars < min || chars > max {
        let range = if min == 0 {
            format!("at most {max}")
        } else {
            format!("{min} to {max}")
        };
        return Err(Violation::new(
            field,
            format!("must be {range} characters after trimming, is {chars}"),
        ));
    }
    Ok(text)
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// The portal's id of an article: 1–128 characters, one line.
    ArticleId
);
text_newtype!(
    /// An article's title: up to 300 characters, one line.
    ArticleTitle
);
text_newtype!(
    /// "Họ và tên": the name a reader gives, 1–100 characters, one line.
    AuthorName
);
text_newtype!(
    /// "Lời bình": a comment's text, 1 to the configured maximum of characters, line breaks
    /// kept.
    CommentBody
);
text_newtype!(
    /// A browser's user agent, up to 512 characters.
    UserAgent
);
text_newtype!(
    /// A key the portal chooses per submission: 1–128 characters of letters, digits and
    /// `. _ : -`.
    IdempotencyKey
);

impl ArticleId {
    /// Parses the `article_id` field.
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        text_field("article_id", raw, false, 1, 128).map(ArticleId)
    }
}

impl ArticleTitle {
    /// Parses the `article_title` field; an empty title is no title.
    pub fn parse(raw: &str) -> Result<Option<Self>, Violation> {
        let title = text_field("article_title", raw, false, 0, 300)?;
        Ok((!title.is_empty()).then_some(ArticleTitle(title)))
    }
}

/// True for a character a reader sees: not whitespace, not one of the invisible fillers and
/// formatting characters, not a combining mark standing alone.
fn is_visible(c: char) -> bool {
    !c.is_whitespace() && !is_invisible(c) && !unicode_normalization::char::is_combining_mark(c)
}

impl AuthorName {
    /// Parses the `author_name` field: it must hold a visible letter or digit (a name of
    /// Hangul fillers, tag characters or combining marks alone shows as nothing).
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let name = text_field("author_name", raw, false, 1, 100)?;
        if !name.chars().any(|c| c.is_alphanumeric() && is_visible(c)) {
            return Err(Violation::new(
                "author_name",
                "must contain a visible letter or digit",
            ));
        }
        Ok(AuthorName(name))
    }
}

impl CommentBody {
    /// Parses the `body` field: it must hold at least one visible character.
    pub fn parse(raw: &str, limits: &Limits) -> Result<Self, Violation> {
        let body = text_field("body", raw, true, 1, limits.body_max_chars)?;
        if !body.chars().any(is_visible) {
            return Err(Violation::new("body", "must contain a visible character"));
        }
        Ok(CommentBody(body))
    }
}

impl UserAgent {
    /// Parses the `user_agent` field (may be empty).
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        text_field("user_agent", raw, false, 0, 512).map(UserAgent)
    }
}

impl IdempotencyKey {
    /// Parses the `idempotency_key` field.
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
        if ok {
            Ok(IdempotencyKey(raw.to_owned()))
        } else {
            Err(Violation::new(
                "idempotency_key",
                "must be 1 to 128 characters of letters, digits and . _ : -",
            ))
        }
    }
}

/// A reader's e-mail address in its one canonical form, the same for every way of writing it:
/// compatibility-folded (NFKC: full-width letters and `＠` become ASCII, decomposed accents are
/// composed), lower-cased, and its domain IDNA-mapped to ASCII (`bücher.de` and
/// `xn--bcher-kva.de` are one address). Invisible and bidi characters are refused, not removed:
/// an address that hides characters is not typed by a reader. Valid syntax (RFC 5322, with a
/// dot in the domain), at most 254 characters. Rate-limit buckets, block lists and reader
/// identity all read this form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses the `author_email` field.
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let field = "author_email";
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Violation::new(field, "is required"));
        }
        if let Some(c) = trimmed
            .chars()
            .find(|&c| is_invisible(c) || c.is_control() || c.is_whitespace())
        {
            return Err(Violation::new(
                field,
                format!(
                    "contains the invisible, control or space character U+{:04X}",
                    c as u32
                ),
            ));
        }
        // Most addresses are ASCII, which NFKC leaves as it is.
        let folded = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            trimmed.nfkc().collect::<String>().to_lowercase()
        };
        let Some((local, domain)) = folded.rsplit_once('@') else {
            return Err(Violation::new(field, "is not an e-mail address: no @"));
        };
        let domain = idna::domain_to_ascii(domain)
            .map_err(|_| Violation::new(field, "has a domain that is not a valid domain name"))?;
        let canonical = format!("{local}@{domain}");
        if canonical.len() > 254 {
            return Err(Violation::new(
                field,
                format!("must be at most 254 characters, is {}", canonical.len()),
            ));
        }
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal();
        email_address::EmailAddress::parse_with_options(&canonical, options)
            .map_err(|e| Violation::new(field, format!("is not an e-mail address: {e}")))?;
        Ok(Email(canonical))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (ASCII, IDNA-mapped).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// The reader's IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientIp(IpAddr);

/// The IPv4 address an IPv6 address stands for, where it is only another way of writing one:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`,
/// RFC 6052's well-known prefix).
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        _ => None,
    }
}

impl ClientIp {
    /// Parses the `client_ip` field (IPv4 or IPv6). An IPv6 address that only writes an IPv4
    /// address another way (mapped, compatible, NAT64) is read as that IPv4 address.
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let ip: IpAddr = raw
            .trim()
            .parse()
            .map_err(|_| Violation::new("client_ip", "must be an IPv4 or IPv6 address"))?;
        Ok(ClientIp(match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
            v4 => v4,
        }))
    }

    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.0
    }

    /// The network one subscriber has, which rate limits and throttles count by: an IPv4
    /// address alone; an IPv6 address's /64; a 6to4 address (`2002:AABB:CCDD::/48`) counts as
    /// the IPv4 address its site is behind.
    pub fn group(&self) -> ipnet::IpNet {
        match self.0 {
            IpAddr::V4(v4) => ipnet::IpNet::from(ipnet::Ipv4Net::from(v4)),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                if s[0] == 0x2002 {
                    let v4 =
                        Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
                    return ipnet::IpNet::from(ipnet::Ipv4Net::from(v4));
                }
                ipnet::Ipv6Net::new(v6, 64)
                    .map(|n| ipnet::IpNet::from(n.trunc()))
                    .unwrap_or_else(|_| ipnet::IpNet::from(ipnet::Ipv6Net::from(v6)))
            }
        }
    }
}

impl ClientIp {
    /// [`ClientIp::group`] as a key: the IPv4 address alone (`203.0.113.7`), an IPv6 network
    /// with its length (`2001:db8:1:2::/64`).
    pub fn group_key(&self) -> String {
        match self.group() {
            ipnet::IpNet::V4(v4) => v4.addr().to_string(),
            v6 => v6.to_string(),
        }
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A comment's id: a UUIDv7, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommentId(uuid::Uuid);

impl CommentId {
    /// A new id for a comment created now.
    pub fn new() -> Self {
        CommentId(uuid::Uuid::now_v7())
    }

    /// Parses an id in `field`.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, Violation> {
        uuid::Uuid::parse_str(raw.trim())
            .map(CommentId)
            .map_err(|_| Violation::new(field, "must be a comment id (a UUID)"))
    }
}

impl Default for CommentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CommentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The reader's CAPTCHA answer, of one of the kinds the service offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptchaAnswer {
    /// Characters read off an image challenge.
    Image {
        /// The challenge id.
        challenge_id: String,
        /// What the reader typed.
        answer: String,
    },
    /// A proof-of-work solution.
    ProofOfWork {
        /// The signed challenge as issued.
        challenge: String,
        /// The number found.
        solution: u64,
    },
    /// A hosted provider's token.
    Provider {
        /// The token.
        token: String,
    },
}

/// A submission as it arrives, before parsing: what the gRPC layer hands the pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawSubmission {
    /// `article_id`.
    pub article_id: String,
    /// `article_title`.
    pub article_title: Option<String>,
    /// `parent_id`.
    pub parent_id: Option<String>,
    /// `author_name`.
    pub author_name: String,
    /// `author_email`.
    pub author_email: String,
    /// `body`.
    pub body: String,
    /// `client_ip`.
    pub client_ip: String,
    /// `user_agent`.
    pub user_agent: String,
    /// `idempotency_key`.
    pub idempotency_key: String,
    /// `captcha`.
    pub captcha: Option<CaptchaAnswer>,
    /// `honeypot`.
    pub honeypot: String,
    /// `form_rendered_at`, as Unix milliseconds.
    pub form_rendered_at_ms: Option<i64>,
}

/// A validated, normalised comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewComment {
    /// The article.
    pub article_id: ArticleId,
    /// The article's title, if sent.
    pub article_title: Option<ArticleTitle>,
    /// The comment replied to.
    pub parent_id: Option<CommentId>,
    /// The reader's name.
    pub author_name: AuthorName,
    /// The reader's e-mail address.
    pub author_email: Email,
    /// The text.
    pub body: CommentBody,
    /// The reader's IP address.
    pub client_ip: ClientIp,
    /// The reader's user agent.
    pub user_agent: UserAgent,
    /// The portal's idempotency key.
    pub idempotency_key: IdempotencyKey,
    /// The CAPTCHA answer, if any.
    pub captcha: Option<CaptchaAnswer>,
    /// Whether the honeypot field was filled.
    pub honeypot_filled: bool,
    /// When the form was rendered (Unix milliseconds), if the portal said.
    pub form_rendered_at_ms: Option<i64>,
}

/// Checks `form_rendered_at` against the clock: not before 1970, not further ahead of `now_ms`
/// than the allowed skew (a render time in the future would switch the too-fast check off).
fn form_time(rendered_ms: Option<i64>, now_ms: i64, limits: &Limits) -> Result<(), Violation> {
    let Some(rendered) = rendered_ms else {
        return Ok(());
    };
    let skew = i64::try_from(limits.form_clock_skew.as_millis()).unwrap_or(i64::MAX);
    if rendered < 0 {
        return Err(Violation::new("form_rendered_at", "must be after 1970"));
    }
    if rendered > now_ms.saturating_add(skew) {
        return Err(Violation::new(
            "form_rendered_at",
            format!(
                "is more than {} ahead of the service's clock",
                humantime::format_duration(limits.form_clock_skew)
            ),
        ));
    }
    Ok(())
}

impl NewComment {
    /// Parses a submission, returning every violation at once.
    pub fn parse(raw: &RawSubmission, limits: &Limits) -> Result<Self, Vec<Violation>> {
        Self::parse_at(raw, limits, jiff::Timestamp::now().as_millisecond())
    }

    /// [`NewComment::parse`] with the clock read as `now_ms`.
    pub fn parse_at(
        raw: &RawSubmission,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        let mut check = Collector(&mut violations);
        let article_id = check.keep(ArticleId::parse(&raw.article_id));
        let article_title = check.keep(ArticleTitle::parse(
            raw.article_title.as_deref().unwrap_or(""),
        ));
        let parent_id = check.keep(match raw.parent_id.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(id) => CommentId::parse("parent_id", id).map(Some),
        });
        let author_name = check.keep(AuthorName::parse(&raw.author_name));
        let author_email = check.keep(Email::parse(&raw.author_email));
        let body = check.keep(CommentBody::parse(&raw.body, limits));
        let client_ip = check.keep(ClientIp::parse(&raw.client_ip));
        let user_agent = check.keep(UserAgent::parse(&raw.user_agent));
        let idempotency_key = check.keep(IdempotencyKey::parse(&raw.idempotency_key));
        let honeypot_ok = check.keep(if raw.honeypot.len() <= 1_000 {
            Ok(())
        } else {
            Err(Violation::new("honeypot", "must be at most 1000 bytes"))
        });
        check.keep(form_time(raw.form_rendered_at_ms, now_ms, limits));
        match (
            article_id,
            article_title,
            parent_id,
            author_name,
            author_email,
            body,
            client_ip,
            user_agent,
            idempotency_key,
            honeypot_ok,
        ) {
            (
                Some(article_id),
                Some(article_title),
                Some(parent_id),
                Some(author_name),
                Some(author_email),
                Some(body),
                Some(client_ip),
                Some(user_agent),
                Some(idempotency_key),
                Some(()),
            ) if violations.is_empty() => Ok(NewComment {
                article_id,
                article_title,
                parent_id,
                author_name,
                author_email,
                body,
                client_ip,
                user_agent,
                idempotency_key,
                captcha: raw.captcha.clone(),
                honeypot_filled: !raw.honeypot.trim().is_empty(),
                form_rendered_at_ms: raw.form_rendered_at_ms,
            }),
            _ => Err(violations),
        }
    }

    /// A digest of everything the reader submitted, to tell a retry of this submission from a
    /// different submission that reuses its idempotency key.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        let parent = self.parent_id.map(|p| p.to_string()).unwrap_or_default();
        let title = self.article_title.as_ref().map_or("", |t| t.as_str());
        for part in [
            self.article_id.as_str(),
            title,
            &parent,
            self.author_name.as_str(),
            self.author_email.as_str(),
            self.body.as_str(),
        ] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        crate::hex::hex(&hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> RawSubmission {
        RawSubmission {
            article_id: "bai-viet-123".into(),
            article_title: Some("Giá xăng tăng".into()),
            parent_id: None,
            author_name: "Nguyễn Văn An".into(),
            author_email: "an.nguyen@Example.COM".into(),
            body: "Bài viết rất hay.".into(),
            client_ip: "203.0.113.7".into(),
            user_agent: "Mozilla/5.0".into(),
            idempotency_key: "sub-1".into(),
            ..RawSubmission::default()
        }
    }

    #[test]
    fn a_valid_submission_parses_and_is_normalised() {
        let mut raw = valid();
        raw.body = "  Bài viết\r\nrất hay\u{200B}!  ".into();
        raw.client_ip = "::ffff:203.0.113.7".into();
        let c = NewComment::parse(&raw, &Limits::default()).unwrap();
        assert_eq!(c.body.as_str(), "Bài viết\nrất hay!");
        assert_eq!(c.author_email.as_str(), "an.nguyen@example.com");
        assert_eq!(c.client_ip.to_string(), "203.0.113.7");
        assert!(!c.honeypot_filled);
    }

    /// (field, how to break it, the field the violation must name)
    type Case = (&'static str, fn(&mut RawSubmission));

    #[test]
    fn each_rule_gives_a_violation_naming_its_field() {
        let cases: Vec<Case> = vec![
            ("article_id", |r| r.article_id = "  ".into()),
            ("article_id", |r| r.article_id = "x".repeat(129)),
            ("article_id", |r| r.article_id = "a\nb".into()),
            ("article_title", |r| r.article_title = Some("t".repeat(301))),
            ("parent_id", |r| r.parent_id = Some("not-an-id".into())),
            ("author_name", |r| r.author_name = "".into()),
            ("author_name", |r| r.author_name = "\u{200B} ".into()),
            ("author_name", |r| r.author_name = "a".repeat(101)),
            ("author_name", |r| r.author_name = "An\u{7}".into()),
            ("author_email", |r| r.author_email = "".into()),
            ("author_email", |r| r.author_email = "not an email".into()),
            ("author_email", |r| r.author_email = "a@localhost".into()),
            ("author_email", |r| {
                r.author_email = format!("{}@example.com", "a".repeat(250))
            }),
            ("body", |r| r.body = " \n ".into()),
            ("body", |r| r.body = "b".repeat(5_001)),
            ("body", |r| r.body = "xin chào\u{1B}[31m".into()),
            ("client_ip", |r| r.client_ip = "".into()),
            ("client_ip", |r| r.client_ip = "300.1.1.1".into()),
            ("user_agent", |r| r.user_agent = "u".repeat(513)),
            ("idempotency_key", |r| r.idempotency_key = "".into()),
            ("idempotency_key", |r| {
                r.idempotency_key = "has space".into()
            }),
            ("idempotency_key", |r| r.idempotency_key = "k".repeat(129)),
            ("honeypot", |r| r.honeypot = "h".repeat(1_001)),
        ];
        for (field, breaks) in cases {
            let mut raw = valid();
            breaks(&mut raw);
            let violations = NewComment::parse(&raw, &Limits::default()).unwrap_err();
            assert_eq!(violations.len(), 1, "{field}: {violations:?}");
            assert_eq!(violations[0].field, field, "{violations:?}");
            assert!(!violations[0].description.is_empty());
        }
    }

    #[test]
    fn all_violations_of_a_submission_come_back_together() {
        let raw = RawSubmission::default();
        let violations = NewComment::parse(&raw, &Limits::default()).unwrap_err();
        let fields: Vec<&str> = violations.iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            [
                "article_id",
                "author_name",
                "author_email",
                "body",
                "client_ip",
                "idempotency_key"
            ]
        );
    }

    #[test]
    fn the_body_limit_is_configurable_and_counts_characters_not_bytes() {
        let mut raw = valid();
        raw.body = "ệ".repeat(10);
        let limits = Limits {
            body_max_chars: 10,
            ..Limits::default()
        };
        assert!(NewComment::parse(&raw, &limits).is_ok());
        raw.body = "ệ".repeat(11);
        assert!(NewComment::parse(&raw, &limits).is_err());
    }

    #[test]
    fn the_fingerprint_tells_a_retry_from_a_different_comment() {
        let a = NewComment::parse(&valid(), &Limits::default()).unwrap();
        let mut retry = valid();
        retry.client_ip = "198.51.100.1".into();
        let b = NewComment::parse(&retry, &Limits::default()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut other = valid();
        other.body = "Một bình luận khác".into();
        let c = NewComment::parse(&other, &Limits::default()).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn every_way_of_writing_an_address_gives_one_canonical_form() {
        let canonical = |raw: &str| Email::parse(raw).map(|e| e.as_str().to_owned());
        let plain = canonical("an.nguyen@example.com").unwrap();
        for same in [
            "An.Nguyen@Example.COM",
            "ａｎ.ｎｇｕｙｅｎ＠ｅｘａｍｐｌｅ.ｃｏｍ",
            "  an.nguyen@example.com ",
        ] {
            assert_eq!(canonical(same).unwrap(), plain, "{same:?}");
        }
        // IDN and punycode are one domain; decomposed accents compose.
        let idn = canonical("ban@bücher.de").unwrap();
        assert_eq!(idn, "ban@xn--bcher-kva.de");
        assert_eq!(canonical("ban@xn--bcher-kva.de").unwrap(), idn);
        assert_eq!(canonical("ban@bu\u{0308}cher.de").unwrap(), idn);
        assert_eq!(
            Email::parse("ban@BÜCHER.de").unwrap().domain(),
            "xn--bcher-kva.de"
        );
    }

    #[test]
    fn addresses_hiding_characters_are_refused_not_cleaned() {
        for hidden in [
            "an\u{200B}.nguyen@example.com",
            "an.nguyen@exa\u{00AD}mple.com",
            "an.nguyen@example.com\u{202E}",
            "an\u{2066}@example.com",
            "an nguyen@example.com",
        ] {
            let v = Email::parse(hidden).unwrap_err();
            assert_eq!(v.field, "author_email");
            assert!(
                v.description.contains("U+"),
                "{hidden:?}: {}",
                v.description
            );
        }
    }

    #[test]
    fn names_and_bodies_must_show_something() {
        for invisible in [
            "\u{3164}",
            "\u{0301}\u{0301}",
            "\u{E0041}\u{E0042}",
            "\u{115F}\u{3164}",
        ] {
            let v = AuthorName::parse(invisible).unwrap_err();
            assert_eq!(v.field, "author_name", "{invisible:?}");
            let v = CommentBody::parse(invisible, &Limits::default()).unwrap_err();
            assert_eq!(v.field, "body", "{invisible:?}");
        }
        assert!(AuthorName::parse("Lê Thị Hồng").is_ok());
        assert!(AuthorName::parse("李小龍").is_ok());
        assert!(CommentBody::parse("👍", &Limits::default()).is_ok());
    }

    #[test]
    fn a_render_time_ahead_of_the_clock_or_before_1970_is_refused() {
        let now = 1_764_252_147_958;
        let at = |rendered: Option<i64>| {
            let mut raw = valid();
            raw.form_rendered_at_ms = rendered;
            NewComment::parse_at(&raw, &Limits::default(), now).map_err(|v| v[0].field)
        };
        assert!(at(None).is_ok());
        assert!(at(Some(now - 10_000)).is_ok());
        assert!(at(Some(now + 30_000)).is_ok(), "within the allowed skew");
        assert_eq!(at(Some(now + 61_000)).unwrap_err(), "form_rendered_at");
        assert_eq!(at(Some(i64::MAX)).unwrap_err(), "form_rendered_at");
        assert_eq!(at(Some(-1)).unwrap_err(), "form_rendered_at");
    }

    #[test]
    fn ipv4_addresses_written_as_ipv6_are_read_as_ipv4() {
        for written in [
            "::ffff:203.0.113.7",
            "::203.0.113.7",
            "64:ff9b::203.0.113.7",
            "64:ff9b::cb00:7107",
        ] {
            let ip = ClientIp::parse(written).unwrap();
            assert_eq!(ip.to_string(), "203.0.113.7", "{written}");
            assert_eq!(ip.group().to_string(), "203.0.113.7/32");
        }
        assert_eq!(ClientIp::parse("::1").unwrap().to_string(), "::1");
        // A 6to4 site counts as the IPv4 address it is behind.
        let six_to_four = ClientIp::parse("2002:cb00:7107:1::5").unwrap();
        assert_eq!(six_to_four.group().to_string(), "203.0.113.7/32");
        // Other IPv6 addresses count by their /64.
        let a = ClientIp::parse("2001:db8:1:2:aaaa::1").unwrap().group();
        let b = ClientIp::parse("2001:db8:1:2:bbbb::9").unwrap().group();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
    }
}
