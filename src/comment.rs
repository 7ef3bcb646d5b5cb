//! A submitted comment as the domain sees it: every field a type that can only be built by
//! parsing, so holding a [`NewComment`] proves validation ran. Parsing collects every
//! violation of a submission at once, each naming its field, so the reader's form can show
//! them all.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::text::{TextError, clean};

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_max_chars: 5_000,
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

impl AuthorName {
    /// Parses the `author_name` field.
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        text_field("author_name", raw, false, 1, 100).map(AuthorName)
    }
}

impl CommentBody {
    /// Parses the `body` field.
    pub fn parse(raw: &str, limits: &Limits) -> Result<Self, Violation> {
        text_field("body", raw, true, 1, limits.body_max_chars).map(CommentBody)
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

/// A reader's e-mail address: valid syntax (RFC 5322, with a dot in the domain), at most 254
/// characters, domain in lower case.
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
        if trimmed.len() > 254 {
            return Err(Violation::new(
                field,
                format!("must be at most 254 characters, is {}", trimmed.len()),
            ));
        }
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal();
        let address = email_address::EmailAddress::parse_with_options(trimmed, options)
            .map_err(|e| Violation::new(field, format!("is not an e-mail address: {e}")))?;
        let domain = address.domain().to_lowercase();
        Ok(Email(format!("{}@{domain}", address.local_part())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// The reader's IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientIp(IpAddr);

impl ClientIp {
    /// Parses the `client_ip` field (IPv4 or IPv6; an IPv4-mapped IPv6 address is read as the
    /// IPv4 address it maps).
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let ip: IpAddr = raw
            .trim()
            .parse()
            .map_err(|_| Violation::new("client_ip", "must be an IPv4 or IPv6 address"))?;
        Ok(ClientIp(ip.to_canonical()))
    }

    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.0
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

impl NewComment {
    /// Parses a submission, returning every violation at once.
    pub fn parse(raw: &RawSubmission, limits: &Limits) -> Result<Self, Vec<Violation>> {
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
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
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
        let limits = Limits { body_max_chars: 10 };
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
}
