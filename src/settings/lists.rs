//! Block and allow lists ops keep at runtime: phrases, link domains, client addresses and
//! e-mail domains. A comment matching a block list is rejected without being scored; an allowed
//! address skips rate limits and the CAPTCHA. Matching reads the comment the way the
//! classifier does ([`crate::classifier::analyze`]), so "n h à c á i", "nhà cái" and "nha cai"
//! meet the same entries, and obfuscated links ("bit(.)ly") still name their domain. Links are
//! compared by the domain their owner registered (`shop.abc.com.vn` → `abc.com.vn`), so an
//! entry blocks that domain or everything under a suffix (`com.vn`), with allowed domains as
//! exceptions.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::classifier::analyze::{TokenKind, analyze};
use crate::comment::NewComment;
use crate::decide::ReasonCode;

/// The lists as ops set them (section `[lists]` of the configuration gives their starting
/// values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListSettings {
    /// Phrases that reject a comment.
    pub blocked_words: Vec<String>,
    /// Phrases containing a blocked one that are fine.
    pub allowed_words: Vec<String>,
    /// Link domains that reject a comment.
    pub blocked_link_domains: Vec<String>,
    /// Exceptions to `blocked_link_domains`.
    pub allowed_link_domains: Vec<String>,
    /// Addresses and networks whose comments are rejected.
    pub blocked_ips: Vec<String>,
    /// Addresses and networks that skip rate limits, the CAPTCHA and `blocked_ips` (the other
    /// block lists still apply).
    pub allowed_ips: Vec<String>,
    /// E-mail domains whose comments are rejected.
    pub blocked_email_domains: Vec<String>,
    /// Exceptions to the e-mail blocks.
    pub allowed_email_domains: Vec<String>,
    /// Reject addresses at known disposable-mail domains.
    pub block_disposable_email: bool,
}

impl ListSettings {
    /// Every entry that does not parse, as (setting, description).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut check =
            |name: &str, entries: &[String], parse: fn(&str) -> Result<Vec<String>, String>| {
                for e in entries {
                    if let Err(why) = parse(e) {
                        out.push((format!("lists.{name}"), why));
                    }
                }
            };
        check("blocked_words", &self.blocked_words, phrases);
        check("allowed_words", &self.allowed_words, phrases);
        check(
            "blocked_link_domains",
            &self.blocked_link_domains,
            link_domains,
        );
        check(
            "allowed_link_domains",
            &self.allowed_link_domains,
            link_domains,
        );
        check("blocked_ips", &self.blocked_ips, networks);
        check("allowed_ips", &self.allowed_ips, networks);
        check(
            "blocked_email_domains",
            &self.blocked_email_domains,
            domains,
        );
        check(
            "allowed_email_domains",
            &self.allowed_email_domains,
            domains,
        );
        out
    }

    /// The same lists as their parsers write them (lower case, whitespace collapsed).
    pub fn normalized(&self) -> Self {
        let norm = |entries: &[String], parse: fn(&str) -> Result<Vec<String>, String>| {
            entries
                .iter()
                .filter_map(|e| parse(e).ok())
                .flatten()
                .collect()
        };
        ListSettings {
            blocked_words: norm(&self.blocked_words, phrases),
            allowed_words: norm(&self.allowed_words, phrases),
            blocked_link_domains: norm(&self.blocked_link_domains, link_domains),
            allowed_link_domains: norm(&self.allowed_link_domains, link_domains),
            blocked_ips: norm(&self.blocked_ips, networks),
            allowed_ips: norm(&self.allowed_ips, networks),
            blocked_email_domains: norm(&self.blocked_email_domains, domains),
            allowed_email_domains: norm(&self.allowed_email_domains, domains),
            block_disposable_email: self.block_disposable_email,
        }
    }
}

/// Parses a list of phrases: each 1–200 characters, lower-cased, whitespace collapsed.
pub fn phrases(raw: &str) -> Result<Vec<String>, String> {
    super::list_items(raw)
        .map(|p| {
            let p: String = p
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if p.chars().count() > 200 {
                Err(format!("{p:?} is longer than 200 characters"))
            } else if words(&p).is_empty() {
                Err(format!("{p:?} has no words"))
            } else {
                Ok(p)
            }
        })
        .collect()
}

/// Parses a list of e-mail domains (`spam.vn`, `bücher.de`), in the form e-mail addresses are
/// compared in: lower-cased and IDNA-mapped to ASCII (`xn--bcher-kva.de`).
pub fn domains(raw: &str) -> Result<Vec<String>, String> {
    super::list_items(raw)
        .map(|d| {
            let d = d.trim_start_matches("*.").trim_end_matches('.');
            let d = idna::domain_to_ascii(d).unwrap_or_else(|_| d.to_lowercase());
            let ok = d.contains('.')
                && d.len() <= 253
                && d.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                });
            if ok {
                Ok(d)
            } else {
                Err(format!("{d:?} is not a domain"))
            }
        })
        .collect()
}

/// Parses a list of link domains: each must be a domain as its owner registered it
/// (`abc.com.vn`, `bit.ly`) or a suffix of such domains (`com.vn`), because links are compared
/// by their registered domain.
pub fn link_domains(raw: &str) -> Result<Vec<String>, String> {
    domains(raw)?
        .into_iter()
        .map(|d| {
            let registered = crate::classifier::analyze::registrable(&d);
            if registered == d {
                Ok(d)
            } else {
                Err(format!(
                    "{d:?}: links are compared by the domain their owner registered; list {registered:?} (all of it) instead"
                ))
            }
        })
        .collect()
}

/// Parses a list of addresses and networks (`203.0.113.5`, `10.0.0.0/8`, `2001:db8::/32`).
pub fn networks(raw: &str) -> Result<Vec<String>, String> {
    super::list_items(raw)
        .map(|n| {
            parse_network(n)
                .map(|_| n.to_owned())
                .ok_or_else(|| format!("{n:?} is not an IP address or network"))
        })
        .collect()
}

fn parse_network(entry: &str) -> Option<ipnet::IpNet> {
    entry
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

/// A phrase as the words the analyser reads in it: (lower-cased, folded).
fn words(text: &str) -> Vec<(String, String)> {
    let a = analyze(text);
    a.tokens
        .iter()
        .filter(|t| matches!(t.kind, TokenKind::Word | TokenKind::Number))
        .map(|t| (a.text(t).to_owned(), a.folded(t).to_owned()))
        .collect()
}

/// A phrase to look for: its words, and whether it was written without diacritics (then it
/// matches the folded text too).
#[derive(Clone, Debug)]
struct Phrase {
    text: String,
    words: Vec<String>,
    folded: bool,
}

impl Phrase {
    fn new(text: &str) -> Self {
        let w = words(text);
        let folded = w.iter().all(|(t, f)| t == f);
        Phrase {
            text: text.to_owned(),
            words: w
                .into_iter()
                .map(|(t, f)| if folded { f } else { t })
                .collect(),
            folded,
        }
    }
}

/// Phrases indexed by their first word (and, for phrases of several words, by all of them run
/// together), so a comment is read once whatever the number of phrases.
#[derive(Clone, Debug, Default)]
struct PhraseSet {
    phrases: Vec<Phrase>,
    /// Word (as written, or folded for phrases without diacritics) → phrases starting with it.
    exact_first: HashMap<String, Vec<usize>>,
    folded_first: HashMap<String, Vec<usize>>,
    /// All the words run together ("nhacai", or "n h à c á i" read as one word).
    exact_joined: HashMap<String, Vec<usize>>,
    folded_joined: HashMap<String, Vec<usize>>,
}

impl PhraseSet {
    fn new(texts: &[String]) -> Self {
        let mut set = PhraseSet::default();
        for text in texts {
            let phrase = Phrase::new(text);
            let Some(first) = phrase.words.first().cloned() else {
                continue;
            };
            let k = set.phrases.len();
            let (firsts, joined) = if phrase.folded {
                (&mut set.folded_first, &mut set.folded_joined)
            } else {
                (&mut set.exact_first, &mut set.exact_joined)
            };
            firsts.entry(first).or_default().push(k);
            if phrase.words.len() > 1 {
                joined.entry(phrase.words.concat()).or_default().push(k);
            }
            set.phrases.push(phrase);
        }
        set
    }

    fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Every occurrence in `comment` (words as (written, folded)), as (phrase, first word,
    /// word count).
    fn find(&self, comment: &[(String, String)]) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (i, (text, folded)) in comment.iter().enumerate() {
            for (map, word) in [(&self.exact_joined, text), (&self.folded_joined, folded)] {
                for &k in map.get(word).into_iter().flatten() {
                    out.push((k, i, 1));
                }
            }
            for (map, word) in [(&self.exact_first, text), (&self.folded_first, folded)] {
                for &k in map.get(word).into_iter().flatten() {
                    let phrase = &self.phrases[k];
                    let n = phrase.words.len();
                    let fits = i + n <= comment.len()
                        && phrase.words.iter().enumerate().skip(1).all(|(j, w)| {
                            let (t, f) = &comment[i + j];
                            if phrase.folded { f == w } else { t == w }
                        });
                    if fits {
                        out.push((k, i, n));
                    }
                }
            }
        }
        out
    }
}

/// The known disposable-mail domains (from the `mailchecker` crate's list), in a set: the
/// crate looks them up one by one in a slice.
static DISPOSABLE: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| mailchecker::blacklist().into_iter().collect());

/// The lists, ready to match.
#[derive(Clone, Debug, Default)]
pub struct Lists {
    blocked_words: PhraseSet,
    allowed_words: PhraseSet,
    blocked_links: Vec<String>,
    allowed_links: Vec<String>,
    blocked_ips: Vec<ipnet::IpNet>,
    allowed_ips: Vec<ipnet::IpNet>,
    blocked_email: Vec<String>,
    allowed_email: Vec<String>,
    block_disposable: bool,
}

/// What the lists say about a comment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Sent from an allowed address: no rate limits, no CAPTCHA.
    pub allowed_ip: bool,
    /// The block it matches, with a message naming the entry.
    pub blocked: Option<(ReasonCode, String)>,
}

/// `domain` is `entry` or one of its subdomains.
fn under(domain: &str, entry: &str) -> bool {
    domain == entry
        || (domain.len() > entry.len()
            && domain.ends_with(entry)
            && domain.as_bytes()[domain.len() - entry.len() - 1] == b'.')
}

impl Lists {
    /// Compiles `settings` (assumed parsed).
    pub fn new(settings: &ListSettings) -> Self {
        let nets = |v: &[String]| v.iter().filter_map(|n| parse_network(n)).collect();
        Lists {
            blocked_words: PhraseSet::new(&settings.blocked_words),
            allowed_words: PhraseSet::new(&settings.allowed_words),
            blocked_links: settings.blocked_link_domains.clone(),
            allowed_links: settings.allowed_link_domains.clone(),
            blocked_ips: nets(&settings.blocked_ips),
            allowed_ips: nets(&settings.allowed_ips),
            blocked_email: settings.blocked_email_domains.clone(),
            allowed_email: settings.allowed_email_domains.clone(),
            block_disposable: settings.block_disposable_email,
        }
    }

    /// True when no list can match anything.
    pub fn is_empty(&self) -> bool {
        self.blocked_words.is_empty()
            && self.blocked_links.is_empty()
            && self.blocked_ips.is_empty()
            && self.allowed_ips.is_empty()
            && self.blocked_email.is_empty()
            && !self.block_disposable
    }

    /// Checks a comment: the address first (an allowed one is never blocked for its address),
    /// then the e-mail domain, the links and the phrases.
    pub fn check(&self, comment: &NewComment) -> Listing {
        if self.is_empty() {
            return Listing::default();
        }
        // A 6to4 address is also listed under the IPv4 address its site is behind.
        let ip = comment.client_ip.addr();
        let behind = comment.client_ip.group().addr();
        let listed = |nets: &[ipnet::IpNet]| {
            nets.iter()
                .find(|n| n.contains(&ip) || (behind.is_ipv4() && n.contains(&behind)))
                .copied()
        };
        let allowed_ip = listed(&self.allowed_ips).is_some();
        let ip_block = if allowed_ip {
            None
        } else {
            listed(&self.blocked_ips).map(|net| {
                (
                    ReasonCode::BlockedIp,
                    format!("sent from blocked network {net}"),
                )
            })
        };
        let blocked = ip_block
            .or_else(|| self.email_block(comment.author_email.as_str()))
            .or_else(|| self.text_block(comment.body.as_str()));
        Listing {
            allowed_ip,
            blocked,
        }
    }

    fn email_block(&self, email: &str) -> Option<(ReasonCode, String)> {
        let domain = email.rsplit_once('@')?.1;
        if self.allowed_email.iter().any(|e| under(domain, e)) {
            return None;
        }
        if let Some(entry) = self.blocked_email.iter().find(|e| under(domain, e)) {
            return Some((
                ReasonCode::BlockedEmail,
                format!("e-mail domain {entry} is blocked"),
            ));
        }
        // Every suffix of the domain, so "x.mailinator.com" is caught by "mailinator.com".
        let disposable = self.block_disposable
            && domain
                .match_indices('.')
                .map(|(i, _)| &domain[i + 1..])
                .chain(std::iter::once(domain))
                .any(|d| DISPOSABLE.contains(d));
        disposable.then(|| {
            (
                ReasonCode::BlockedEmail,
                format!("{domain} is a disposable-mail domain"),
            )
        })
    }

    fn text_block(&self, body: &str) -> Option<(ReasonCode, String)> {
        if self.blocked_words.is_empty() && self.blocked_links.is_empty() {
            return None;
        }
        let a = analyze(body);
        for t in a.tokens.iter().filter(|t| t.kind == TokenKind::Url) {
            let domain = a.text(t);
            if self.allowed_links.iter().any(|e| under(domain, e)) {
                continue;
            }
            if let Some(entry) = self.blocked_links.iter().find(|e| under(domain, e)) {
                return Some((ReasonCode::BlockedLink, format!("links to {entry}")));
            }
        }
        if self.blocked_words.is_empty() {
            return None;
        }
        let comment: Vec<(String, String)> = a
            .tokens
            .iter()
            .filter(|t| matches!(t.kind, TokenKind::Word | TokenKind::Number))
            .map(|t| (a.text(t).to_owned(), a.folded(t).to_owned()))
            .collect();
        // Word positions covered by an allowed phrase do not count.
        let mut allowed = vec![false; comment.len()];
        for (_, start, len) in self.allowed_words.find(&comment) {
            for slot in &mut allowed[start..start + len] {
                *slot = true;
            }
        }
        let hit = self
            .blocked_words
            .find(&comment)
            .into_iter()
            .find(|&(_, start, len)| !allowed[start..start + len].iter().all(|&a| a));
        if let Some((k, _, _)) = hit {
            return Some((
                ReasonCode::BlockedWord,
                format!(
                    "contains the blocked phrase \"{}\"",
                    self.blocked_words.phrases[k].text
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::{Limits, RawSubmission};

    fn comment(body: &str, ip: &str, email: &str) -> NewComment {
        NewComment::parse(
            &RawSubmission {
                article_id: "bai-1".into(),
                author_name: "Bạn đọc".into(),
                author_email: email.into(),
                body: body.into(),
                client_ip: ip.into(),
                idempotency_key: "k".into(),
                ..RawSubmission::default()
            },
            &Limits::default(),
        )
        .unwrap()
    }

    fn lists(f: impl FnOnce(&mut ListSettings)) -> Lists {
        let mut s = ListSettings::default();
        f(&mut s);
        Lists::new(&s)
    }

    fn code(l: &Lists, body: &str, ip: &str, email: &str) -> Option<ReasonCode> {
        l.check(&comment(body, ip, email)).blocked.map(|b| b.0)
    }

    const IP: &str = "198.51.100.7";
    const EMAIL: &str = "ban.doc@example.vn";

    #[test]
    fn phrases_match_however_they_are_written() {
        let l = lists(|s| s.blocked_words = phrases("nha cai, lô đề").unwrap());
        for body in [
            "Vào nhà cái uy tín nhé",
            "vao NHA CAI uy tin",
            "n h à c á i số một",
            "chơi lô đề online",
        ] {
            assert_eq!(
                code(&l, body, IP, EMAIL),
                Some(ReasonCode::BlockedWord),
                "{body}"
            );
        }
        // Written with diacritics, a phrase matches only with them: "lo de" is other words.
        assert_eq!(code(&l, "đừng lo dễ thôi", IP, EMAIL), None);
        // Run together, as evasions write it; but not inside a longer word.
        assert_eq!(
            code(&l, "vao nhacai nhe", IP, EMAIL),
            Some(ReasonCode::BlockedWord)
        );
        assert_eq!(code(&l, "nhacaihay", IP, EMAIL), None);
        let message = l.check(&comment("nhà cái", IP, EMAIL)).blocked.unwrap().1;
        assert_eq!(message, "contains the blocked phrase \"nha cai\"");
    }

    #[test]
    fn allowed_phrases_mask_the_blocked_words_inside_them() {
        let l = lists(|s| {
            s.blocked_words = phrases("cave").unwrap();
            s.allowed_words = phrases("cave creek").unwrap();
        });
        assert_eq!(code(&l, "Du lịch Cave Creek rất đẹp", IP, EMAIL), None);
        assert_eq!(
            code(&l, "Cave Creek có nhiều cave", IP, EMAIL),
            Some(ReasonCode::BlockedWord)
        );
    }

    #[test]
    fn links_ips_and_email_domains_are_blocked_with_their_exceptions() {
        let l = lists(|s| {
            s.blocked_link_domains = link_domains("bit.ly, com.vn").unwrap();
            s.allowed_link_domains = link_domains("tot.com.vn").unwrap();
            s.blocked_ips = networks("203.0.113.0/24").unwrap();
            s.allowed_ips = networks("203.0.113.9, 2001:db8::/32").unwrap();
            s.blocked_email_domains = domains("spam.vn").unwrap();
            s.allowed_email_domains = domains("guerrillamail.com").unwrap();
            s.block_disposable_email = true;
        });
        assert_eq!(
            code(&l, "xem bit(.)ly/abc", IP, EMAIL),
            Some(ReasonCode::BlockedLink)
        );
        assert_eq!(
            code(&l, "https://shop.ban.com.vn/sale", IP, EMAIL),
            Some(ReasonCode::BlockedLink)
        );
        assert_eq!(code(&l, "https://www.tot.com.vn/bai", IP, EMAIL), None);
        assert_eq!(
            code(&l, "hay", "203.0.113.50", EMAIL),
            Some(ReasonCode::BlockedIp)
        );
        assert_eq!(
            code(&l, "hay", IP, "a@mail.spam.vn"),
            Some(ReasonCode::BlockedEmail)
        );
        assert_eq!(
            code(&l, "hay", IP, "a@mailinator.com"),
            Some(ReasonCode::BlockedEmail)
        );
        assert_eq!(code(&l, "hay", IP, "a@guerrillamail.com"), None, "allowed");
        assert_eq!(code(&l, "hay", IP, "a@gmail.com"), None);
        // An allowed address skips the address block (and rate limits and the CAPTCHA), not
        // the others.
        let newsroom = l.check(&comment("bài hay", "203.0.113.9", EMAIL));
        assert_eq!(
            newsroom,
            Listing {
                allowed_ip: true,
                blocked: None
            }
        );
        let linked = l.check(&comment("xem bit.ly/abc", "203.0.113.9", EMAIL));
        assert!(linked.allowed_ip);
        assert_eq!(linked.blocked.map(|b| b.0), Some(ReasonCode::BlockedLink));
        assert!(l.check(&comment("hay", "2001:db8::5", EMAIL)).allowed_ip);
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(domains("not a domain").is_err());
        assert!(domains("localhost").is_err());
        assert!(
            link_domains("evil.github.io").is_err(),
            "not a registered domain"
        );
        assert_eq!(link_domains("bit.ly, com.vn, abc.com.vn").unwrap().len(), 3);
        assert!(networks("10.0.0.0/33").is_err());
        assert!(phrases("!!!").is_err());
        assert_eq!(domains("*.Example.COM.").unwrap(), ["example.com"]);
        assert_eq!(phrases("  Nhà   CÁI ").unwrap(), ["nhà cái"]);
    }
}
