//! The spans of a comment that made its decision, found in the text a moderator reads: the
//! words and phrases its explanation names, blocked-list phrases, links, e-mail addresses,
//! handles, phone numbers and hidden characters. Pure: text in, byte ranges out; the page
//! escapes the text around them.
//!
//! The classifier's tokenizer works on a normalised copy of the text, so its tokens carry no
//! positions in the stored text; the few shapes moderators need marked are found here again,
//! on the text as stored.

use std::ops::Range;

use crate::review::Explained;
use crate::text::{fold_diacritics, is_invisible};

/// What a mark is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkKind {
    /// A phrase on the blocked list.
    Blocked,
    /// A word or phrase the explanation names as raising the spam score.
    Spam,
    /// One raising the toxic score.
    Toxic,
    /// A link.
    Link,
    /// An e-mail address.
    Email,
    /// A messaging handle.
    Handle,
    /// A phone number.
    Phone,
    /// An invisible character.
    Hidden,
}

impl MarkKind {
    /// The CSS class of its `<mark>`.
    pub fn class(self) -> &'static str {
        match self {
            MarkKind::Blocked => "m-blocked",
            MarkKind::Spam => "m-spam",
            MarkKind::Toxic => "m-toxic",
            MarkKind::Link => "m-link",
            MarkKind::Email => "m-email",
            MarkKind::Handle => "m-handle",
            MarkKind::Phone => "m-phone",
            MarkKind::Hidden => "m-hidden",
        }
    }
}

/// One marked span of the text.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// Bytes of the text.
    pub range: Range<usize>,
    /// What it is.
    pub kind: MarkKind,
    /// Why it is marked (the explanation's feature, or the kind), shown on hover.
    pub why: String,
}

/// A word of the text: its bytes, lower-cased, and folded (no diacritics).
struct Word {
    range: Range<usize>,
    lower: String,
    folded: String,
}

fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    let push = |out: &mut Vec<Word>, range: Range<usize>| {
        let lower = text[range.clone()].to_lowercase();
        let folded = lower.chars().map(fold_diacritics).collect();
        out.push(Word {
            range,
            lower,
            folded,
        });
    };
    for (i, c) in text.char_indices() {
        let inside = c.is_alphanumeric() || is_combining(c);
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push(&mut out, s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        push(&mut out, s..text.len());
    }
    out
}

fn is_combining(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}')
}

/// The quoted part of a feature's name: `word "nhà cái"` → `nhà cái`.
fn quoted(feature: &str) -> Option<&str> {
    let start = feature.find('"')? + 1;
    let end = start + feature[start..].find('"')?;
    Some(&feature[start..end])
}

/// Where the words of `phrase` occur in a row, compared folded (`folded`) or as written.
fn phrase_at(words: &[Word], phrase: &str, folded: bool) -> Vec<Range<usize>> {
    let wanted: Vec<String> = phrase
        .split_whitespace()
        .map(|w| {
            let lower = w.to_lowercase();
            if folded {
                lower.chars().map(fold_diacritics).collect()
            } else {
                lower
            }
        })
        .collect();
    if wanted.is_empty() || wanted.iter().any(|w| w.starts_with('<')) {
        return Vec::new();
    }
    let n = wanted.len();
    let mut out = Vec::new();
    for start in 0..words.len().saturating_sub(n - 1) {
        let run = &words[start..start + n];
        let same = run.iter().zip(&wanted).all(|(w, x)| {
            if folded {
                w.folded == *x
            } else {
                w.lower == *x
            }
        });
        if same {
            out.push(run[0].range.start..run[n - 1].range.end);
        }
    }
    out
}

/// What an explanation's feature marks: its words, or the entities it names.
fn feature_spans(feature: &str, words: &[Word], entities: &[Mark]) -> Vec<Range<usize>> {
    let entity = |kind: MarkKind| -> Vec<Range<usize>> {
        entities
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.range.clone())
            .collect()
    };
    if feature.starts_with("author name") {
        return Vec::new();
    }
    if let Some(q) = quoted(feature) {
        let folded = feature.contains("without diacritics")
            || feature.starts_with("spelling of")
            || feature.starts_with("offensive word");
        let mut found = phrase_at(words, q, folded);
        if found.is_empty() && !folded {
            found = phrase_at(words, q, true);
        }
        return found;
    }
    let f = feature.to_lowercase();
    if f.starts_with("link to ") || f.starts_with("e-mail address at ") {
        let domain = f.rsplit(' ').next().unwrap_or_default();
        return entities
            .iter()
            .filter(|m| matches!(m.kind, MarkKind::Link | MarkKind::Email))
            .filter(|m| m.why.to_lowercase().contains(domain))
            .map(|m| m.range.clone())
            .collect();
    }
    for (noun, kind) in [
        ("shortened link", MarkKind::Link),
        ("link", MarkKind::Link),
        ("e-mail address", MarkKind::Email),
        ("messaging handle", MarkKind::Handle),
        ("phone number", MarkKind::Phone),
        ("hidden character", MarkKind::Hidden),
    ] {
        if f.contains(noun) {
            return entity(kind);
        }
    }
    Vec::new()
}

/// Links, e-mail addresses and handles: whitespace-separated chunks of those shapes.
fn chunk_entities(text: &str, out: &mut Vec<Mark>) {
    let mut at = 0;
    for chunk in text.split_whitespace() {
        let start = at + text[at..].find(chunk).unwrap_or(0);
        at = start + chunk.len();
        let trimmed = chunk.trim_end_matches(['.', ',', '!', '?', ')', ';', ':', '"', '\'']);
        let trimmed = trimmed.trim_start_matches(['(', '"', '\'']);
        if trimmed.is_empty() {
            continue;
        }
        let offset = chunk.find(trimmed).unwrap_or(0);
        let range = start + offset..start + offset + trimmed.len();
        let lower = trimmed.to_lowercase();
        let kind = if lower.contains("://") || lower.starts_with("www.") || looks_like_host(&lower)
        {
            MarkKind::Link
        } else if lower.starts_with('@') && lower.len() > 1 {
            MarkKind::Handle
        } else if lower
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
        {
            MarkKind::Email
        } else {
            continue;
        };
        out.push(Mark {
            range,
            kind,
            why: trimmed.to_owned(),
        });
    }
}

/// `name.tld` or `name.tld/path`, the last label two to six letters.
fn looks_like_host(chunk: &str) -> bool {
    let host = chunk.split('/').next().unwrap_or_default();
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|tld| {
            (2..=6).contains(&tld.len()) && tld.chars().all(|c| c.is_ascii_alphabetic())
        })
        && labels[0].chars().any(|c| c.is_ascii_alphabetic())
}

/// Phone numbers: runs of digits, spaces, dots and dashes (a leading `+` allowed) holding 9
/// to 12 digits.
fn phones(text: &str, out: &mut Vec<Mark>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !(bytes[i].is_ascii_digit() || bytes[i] == b'+') {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        let mut digits = 0;
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_ascii_digit() || b" .-+".contains(&bytes[j])) {
            if bytes[j].is_ascii_digit() {
                digits += 1;
                end = j + 1;
            }
            j += 1;
        }
        if (9..=12).contains(&digits) {
            out.push(Mark {
                range: start..end,
                kind: MarkKind::Phone,
                why: text[start..end].to_owned(),
            });
        }
        i = j.max(i + 1);
    }
}

/// Every span worth marking in `text`, sorted, without overlaps (the first found of two
/// overlapping spans wins: hidden characters, blocked phrases, the explanation's, then the
/// other entities).
pub fn marks(text: &str, explanation: &[Explained], blocked: &[String]) -> Vec<Mark> {
    let words = words(text);
    let mut entities = Vec::new();
    chunk_entities(text, &mut entities);
    phones(text, &mut entities);
    // Hidden characters first: they hide inside words and handles, and are the point.
    let mut found: Vec<Mark> = text
        .char_indices()
        .filter(|&(_, c)| is_invisible(c))
        .map(|(i, c)| Mark {
            range: i..i + c.len_utf8(),
            kind: MarkKind::Hidden,
            why: format!("U+{:04X}", c as u32),
        })
        .collect();
    let hidden: Vec<Mark> = found.clone();
    entities.extend(hidden);
    for phrase in blocked {
        for range in phrase_at(&words, phrase, true) {
            found.push(Mark {
                range,
                kind: MarkKind::Blocked,
                why: phrase.clone(),
            });
        }
    }
    for e in explanation.iter().filter(|e| e.weight > 0.0) {
        let kind = if e.head == "toxic" {
            MarkKind::Toxic
        } else {
            MarkKind::Spam
        };
        for range in feature_spans(&e.feature, &words, &entities) {
            found.push(Mark {
                range,
                kind,
                why: format!("{}: {} (+{:.2})", e.head, e.feature, e.weight),
            });
        }
    }
    found.extend(entities);
    let mut kept: Vec<Mark> = Vec::with_capacity(found.len());
    for mark in found {
        if !kept
            .iter()
            .any(|k| k.range.start < mark.range.end && mark.range.start < k.range.end)
        {
            kept.push(mark);
        }
    }
    kept.sort_by_key(|m| m.range.start);
    kept
}

/// The text cut at the marks: `(piece, mark)` in order, `None` for unmarked pieces.
pub fn pieces<'a>(text: &'a str, marks: &'a [Mark]) -> Vec<(&'a str, Option<&'a Mark>)> {
    let mut out = Vec::with_capacity(marks.len() * 2 + 1);
    let mut at = 0;
    for m in marks {
        if m.range.start > at {
            out.push((&text[at..m.range.start], None));
        }
        out.push((&text[m.range.clone()], Some(m)));
        at = m.range.end;
    }
    if at < text.len() {
        out.push((&text[at..], None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(head: &str, feature: &str) -> Explained {
        Explained {
            head: head.into(),
            feature: feature.into(),
            weight: 1.0,
        }
    }

    fn marked<'a>(text: &'a str, m: &[Mark]) -> Vec<(&'a str, MarkKind)> {
        m.iter().map(|m| (&text[m.range.clone()], m.kind)).collect()
    }

    #[test]
    fn explanation_words_are_found_with_and_without_diacritics() {
        let text = "Vào Nhà Cái uy tín, nha cai số 1!";
        let e = [
            explained("spam", "words \"nha cai\" (without diacritics)"),
            explained("spam", "word \"uy\""),
        ];
        let m = marks(text, &e, &[]);
        assert_eq!(
            marked(text, &m),
            [
                ("Nhà Cái", MarkKind::Spam),
                ("uy", MarkKind::Spam),
                ("nha cai", MarkKind::Spam)
            ]
        );
        assert!(m[0].why.contains("nha cai"), "{}", m[0].why);
    }

    #[test]
    fn entities_hidden_characters_and_blocked_phrases_are_marked() {
        let text = "Gọi 0912 345 678 hoặc xem bit.ly/abc, mail a@b.vn, @shop\u{2060}x đồ ngu";
        let e = [
            explained("spam", "link to bit.ly"),
            explained("toxic", "offensive word \"do ngu\""),
        ];
        let m = marks(text, &e, &["xem".to_owned()]);
        let got = marked(text, &m);
        assert!(got.contains(&("0912 345 678", MarkKind::Phone)), "{got:?}");
        assert!(got.contains(&("bit.ly/abc", MarkKind::Spam)), "{got:?}");
        assert!(got.contains(&("a@b.vn", MarkKind::Email)), "{got:?}");
        assert!(got.contains(&("\u{2060}", MarkKind::Hidden)), "{got:?}");
        assert!(got.contains(&("đồ ngu", MarkKind::Toxic)), "{got:?}");
        assert!(got.contains(&("xem", MarkKind::Blocked)), "{got:?}");
        let starts: Vec<usize> = m.iter().map(|m| m.range.start).collect();
        let mut sorted = starts.clone();
        sorted.sort();
        assert_eq!(starts, sorted);
    }

    #[test]
    fn pieces_cover_the_text_exactly_once() {
        let text = "a 0912345678 b";
        let m = marks(text, &[], &[]);
        let joined: String = pieces(text, &m).iter().map(|(p, _)| *p).collect();
        assert_eq!(joined, text);
        assert_eq!(pieces(text, &m)[1], ("0912345678", Some(&m[0])));
        assert!(marks("plain words only", &[], &[]).is_empty());
    }
}
