//! Reads a comment the way a careful moderator would: normalised, split into words, and with
//! the things spammers hide (phone numbers, links, handles, sums of money) recognised even when
//! they are disguised. No I/O; the output feeds [`super::features`].
//!
//! Vietnamese spam in the wild writes "O9l2.345.678" for a phone number, "1Otr" for ten million
//! đồng, "bit . ly" or "abc(.)com" for links, "n h à c á i" with spaced letters, Cyrillic letters
//! inside Latin words, and zero-width characters between letters. Each of those is undone here.

use std::borrow::Cow;
use std::ops::Range;

use unicode_normalization::UnicodeNormalization;

use crate::text::{fold_diacritics, is_invisible};

/// What a token is. Words are the common case; the others are recognised entities whose exact
/// text matters less than the fact that they are there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenKind {
    /// A run of letters (and digits mixed with letters).
    Word,
    /// Digits alone (not a phone number or an amount).
    Number,
    /// A link; the token text is its registrable domain ("bit.ly", "shopee.vn").
    Url,
    /// An e-mail address; the token text is its domain.
    Email,
    /// A phone number, however it was written; the token text is its digits.
    Phone,
    /// A social handle ("@name"); the token text is the handle without "@".
    Handle,
    /// A sum of money ("10tr", "500k", "2 triệu", "$100"); the token text is as written.
    Money,
    /// One emoji or pictographic symbol.
    Emoji,
}

/// One token. Its text lives in [`Analysis::buf`], so analysing a comment allocates only a few
/// buffers however long it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What was recognised.
    pub kind: TokenKind,
    /// The lower-cased text, diacritics kept (a word), or the entity's key (a domain, digits).
    pub text: Range<usize>,
    /// The same with diacritics, look-alike letters and leetspeak digits folded to ASCII
    /// letters; equal to `text` for entities.
    pub folded: Range<usize>,
}

/// Counts read off the text, from which the signal features are made.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Signals {
    /// Characters after normalisation.
    pub chars: u32,
    /// Letters.
    pub letters: u32,
    /// Upper-case letters in the original text.
    pub upper: u32,
    /// Decimal digits after normalisation.
    pub digits: u32,
    /// Word tokens.
    pub words: u32,
    /// Links.
    pub urls: u32,
    /// Links to a known link shortener (bit.ly and the like).
    pub short_urls: u32,
    /// E-mail addresses.
    pub emails: u32,
    /// Phone numbers.
    pub phones: u32,
    /// Handles ("@name", t.me and zalo.me links).
    pub handles: u32,
    /// Sums of money.
    pub money: u32,
    /// Emoji.
    pub emoji: u32,
    /// Runs of three or more of the same character ("quáaaa", "!!!!").
    pub repeats: u32,
    /// Exclamation and question marks.
    pub exclamations: u32,
    /// Invisible characters between letters (zero-width, bidi), which hide words from filters;
    /// variation selectors and joiners inside emoji are removed but not counted.
    pub invisible: u32,
    /// Words written with spaced letters ("n h à c á i").
    pub spaced: u32,
    /// Words mixing Latin with Cyrillic or Greek look-alike letters.
    pub mixed_script: u32,
    /// Words of 13 letters or more: no Vietnamese syllable and few English words are that
    /// long, keyboard mashing ("djwjdjwjekqll") is.
    pub long_words: u32,
    /// Words with six or more consonants in a row (folded), another mark of keyboard mashing.
    pub consonant_runs: u32,
}

/// A comment read by [`analyze`].
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// NFKC-normalised, lower-cased text with invisible characters removed.
    pub normalized: String,
    /// The same with diacritics folded and each run of whitespace made one space, with a space
    /// at each end: the text character n-grams are read from.
    pub spelling: String,
    /// Token texts (see [`Token`]).
    pub buf: String,
    /// Tokens in reading order.
    pub tokens: Vec<Token>,
    /// Counts for the dense signals.
    pub signals: Signals,
    /// Whitespace-separated chunks of `normalized`, as byte ranges (reused between comments).
    chunks: Vec<Range<usize>>,
}

impl Analysis {
    /// The lower-cased text of a token.
    pub fn text(&self, token: &Token) -> &str {
        &self.buf[token.text.clone()]
    }

    /// The folded text of a token.
    pub fn folded(&self, token: &Token) -> &str {
        &self.buf[token.folded.clone()]
    }
}

/// Analyses `input` into a fresh [`Analysis`].
pub fn analyze(input: &str) -> Analysis {
    let mut analysis = Analysis::default();
    analyze_into(input, &mut analysis);
    analysis
}

/// Analyses `input` into `out`, reusing its buffers (the batch and serving paths call this in a
/// loop).
pub fn analyze_into(input: &str, out: &mut Analysis) {
    let input = truncate(input, MAX_ANALYSED_BYTES);
    // Most comments are already in NFKC (all of ASCII is): the first pass assumes so and gives
    // up at the first character the normaliser could change.
    if !normalize_into(input, out, false) {
        normalize_into(input, out, true);
    }
    out.buf.clear();
    out.tokens.clear();
    let normalized = std::mem::take(&mut out.normalized);
    let chunks = std::mem::take(&mut out.chunks);
    Tokenizer::new(&normalized, &chunks, out).run();
    out.normalized = normalized;
    out.chunks = chunks;
}

/// The analyser reads at most this many bytes of a text (the service's comments are far
/// shorter): a multi-megabyte line fed to `classify` costs what a long comment costs, not
/// thousands of times more.
pub const MAX_ANALYSED_BYTES: usize = 64 * 1024;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One pass over the input: NFKC (which also folds full-width and mathematical "styled" letters
/// to plain ones) when `nfkc`, invisible characters removed, lower-cased into `normalized`,
/// folded into `spelling`, split into `chunks`; letters and capitals of the original counted.
/// Without `nfkc`, returns false as soon as a character NFKC could change is met.
fn normalize_into(input: &str, out: &mut Analysis, nfkc: bool) -> bool {
    out.normalized.clear();
    out.spelling.clear();
    out.chunks.clear();
    out.signals = Signals::default();
    out.normalized.reserve(input.len());
    out.spelling.reserve(input.len() + 2);
    out.spelling.push(' ');
    let mut writer = Writer::new(out);
    if nfkc {
        // Invisible characters are removed (and counted) first so that they cannot keep a
        // letter and its combining mark apart.
        let mut hidden = HiddenCount::default();
        let visible = input.chars().filter(|&c| {
            hidden.see(c);
            !is_invisible(c)
        });
        for c in visible.nfkc() {
            writer.push(c);
        }
        writer.invisible = hidden.count;
    } else {
        for c in input.chars() {
            if !is_nfkc_char(c) {
                return false;
            }
            writer.push(c);
        }
    }
    writer.finish();
    true
}

/// Counts the invisible characters that hide something: zero-width and bidi characters between
/// letters. Variation selectors and a joiner after an emoji only shape how emoji are drawn.
#[derive(Default)]
struct HiddenCount {
    count: u32,
    last: char,
}

impl HiddenCount {
    fn see(&mut self, c: char) {
        if is_invisible(c) {
            self.count += u32::from(Self::hides(c, self.last));
        }
        self.last = c;
    }

    /// Whether invisible `c`, after `previous`, counts as hidden.
    fn hides(c: char, previous: char) -> bool {
        let selector = matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}');
        let emoji_joiner = c == '\u{200D}' && (is_pictographic(previous) || previous == '\u{FE0F}');
        !selector && !emoji_joiner
    }
}

/// Writes normalised characters into an [`Analysis`]. The counts are kept here and written
/// out at the end, so they can live in registers while the characters stream through.
struct Writer<'a> {
    out: &'a mut Analysis,
    /// Where the chunk being written started in `normalized`.
    chunk_start: Option<usize>,
    chars: u32,
    digits: u32,
    letters: u32,
    upper: u32,
    invisible: u32,
    /// The previous input character (for [`HiddenCount::hides`]).
    last: char,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut Analysis) -> Self {
        Writer {
            out,
            chunk_start: None,
            chars: 0,
            digits: 0,
            letters: 0,
            upper: 0,
            invisible: 0,
            last: '\0',
        }
    }

    /// One input character: counted, dropped if invisible, lower-cased.
    #[inline(always)]
    fn push(&mut self, c: char) {
        if c.is_ascii() {
            if c.is_ascii_alphabetic() {
                self.letters += 1;
                self.upper += u32::from(c.is_ascii_uppercase());
            }
            self.last = c;
            self.put(c.to_ascii_lowercase());
            return;
        }
        if let Some((lower, upper)) = vietnamese_case(c) {
            self.letters += 1;
            self.upper += u32::from(upper);
            self.put(lower);
            return;
        }
        if is_invisible(c) {
            self.invisible += u32::from(HiddenCount::hides(c, self.last));
            self.last = c;
            return;
        }
        self.last = c;
        if c.is_alphabetic() {
            self.letters += 1;
            self.upper += u32::from(c.is_uppercase());
        }
        for lower in c.to_lowercase() {
            self.put(lower);
        }
    }

    /// One lower-cased character, into `normalized`, `spelling` and `chunks`.
    #[inline(always)]
    fn put(&mut self, c: char) {
        self.chars += 1;
        self.digits += u32::from(c.is_ascii_digit());
        let out = &mut *self.out;
        if c.is_whitespace() {
            if let Some(start) = self.chunk_start.take() {
                out.chunks.push(start..out.normalized.len());
                out.spelling.push(' ');
            }
        } else {
            if self.chunk_start.is_none() {
                self.chunk_start = Some(out.normalized.len());
            }
            out.spelling.push(fold_diacritics(c));
        }
        out.normalized.push(c);
    }

    fn finish(self) {
        let out = self.out;
        if let Some(start) = self.chunk_start {
            out.chunks.push(start..out.normalized.len());
            out.spelling.push(' ');
        }
        let s = &mut out.signals;
        s.chars = self.chars;
        s.digits = self.digits;
        s.letters = self.letters;
        s.upper = self.upper;
        s.invisible = self.invisible;
    }
}

/// True when `c` is certainly unchanged by NFKC whatever surrounds it: NFKC's quick check says
/// yes and it is not a combining mark (marks may be reordered or composed with their
/// neighbours). ASCII and the precomposed Vietnamese letters are answered without the general
/// lookup, which measured a fifth of the time of analysing a Vietnamese comment.
fn is_nfkc_char(c: char) -> bool {
    match c as u32 {
        0..=0x7F | 0xC0..=0xFF | 0x1EA0..=0x1EF9 => true,
        0x102 | 0x103 | 0x110 | 0x111 | 0x128 | 0x129 | 0x168 | 0x169 => true,
        0x1A0 | 0x1A1 | 0x1AF | 0x1B0 => true,
        _ => {
            unicode_normalization::char::canonical_combining_class(c) == 0
                && unicode_normalization::is_nfkc_quick(std::iter::once(c))
                    == unicode_normalization::IsNormalized::Yes
        }
    }
}

/// Lower case of a precomposed Vietnamese letter outside ASCII, and whether it was upper case:
/// a fast path for the letters most comments are made of (the general case mapping is a table
/// search per character).
fn vietnamese_case(c: char) -> Option<(char, bool)> {
    let code = c as u32;
    let pair = |upper: bool| {
        let lower = if upper { code + 1 } else { code };
        char::from_u32(lower).map(|l| (l, upper))
    };
    match code {
        // Latin-1: À..Þ are capitals of à..þ (× and ÷ are not letters).
        0xC0..=0xDE if code != 0xD7 => char::from_u32(code + 0x20).map(|l| (l, true)),
        0xDF..=0xFF if code != 0xF7 => Some((c, false)),
        // Ă ă, Đ đ, Ĩ ĩ, Ũ ũ: capital on the even code point.
        0x102 | 0x110 | 0x128 | 0x168 => pair(true),
        0x103 | 0x111 | 0x129 | 0x169 => pair(false),
        // Ơ ơ (capital even), Ư ư (capital odd).
        0x1A0 => pair(true),
        0x1A1 => pair(false),
        0x1AF => char::from_u32(0x1B0).map(|l| (l, true)),
        0x1B0 => Some((c, false)),
        // Latin Extended Additional, Vietnamese block: capital even, small odd.
        0x1EA0..=0x1EF9 => pair(code.is_multiple_of(2)),
        _ => None,
    }
}

/// Top-level domains a link in a comment plausibly ends in. A dotted word is only taken for a
/// link when it ends in one of these, so "end.next" in a sentence missing a space is not a link.
const TLDS: &[&str] = &[
    "ai", "app", "asia", "au", "bet", "biz", "blog", "buzz", "ca", "casino", "cc", "cf", "club",
    "cn", "co", "com", "de", "dev", "edu", "eu", "fr", "fun", "ga", "game", "games", "gd", "gl",
    "gov", "gq", "in", "info", "io", "jp", "kr", "la", "life", "link", "live", "ly", "me", "ml",
    "mobi", "net", "news", "nu", "one", "online", "org", "pro", "pw", "ru", "sg", "shop", "site",
    "space", "store", "su", "th", "tk", "to", "top", "tv", "uk", "us", "vip", "vn", "website",
    "win", "ws", "xyz",
];

/// Second-level suffixes under which the registrable domain has three labels.
const SECOND_LEVEL: &[&str] = &[
    "ac.uk", "co.jp", "co.kr", "co.uk", "com.au", "com.cn", "com.sg", "com.vn", "edu.vn", "gov.vn",
    "net.vn", "org.uk", "org.vn",
];

/// Link shorteners: a link through one hides where it goes, which spam likes.
const SHORTENERS: &[&str] = &[
    "bit.ly",
    "cutt.ly",
    "goo.gl",
    "is.gd",
    "ow.ly",
    "rb.gy",
    "shorturl.at",
    "t.co",
    "tiny.cc",
    "tinyurl.com",
    "v.gd",
    "s.id",
    "shorten.asia",
];

/// Domains that are really a messaging handle.
const HANDLE_DOMAINS: &[&str] = &["t.me", "telegram.me", "zalo.me", "m.me", "wa.me"];

/// Words standing for "dot" in an obfuscated link ("abc chấm com").
const DOT_WORDS: &[&str] = &[".", "(.)", "[.]", "dot", "(dot)", "[dot]", "chấm", "cham"];

/// Units after a number that make it a sum of money. Tried in order: a unit that ends another
/// must come after it ("vnđ" before "đ").
const MONEY_UNITS: &[&str] = &[
    "triệu", "trieu", "nghìn", "nghin", "ngàn", "ngan", "đồng", "dong", "vnđ", "vnd", "usd", "tỷ",
    "tỉ", "củ", "cu", "tr", "k", "m", "đ", "$",
];

/// Units that may follow a number as a separate word ("2 triệu").
const MONEY_WORDS: &[&str] = &[
    "triệu", "trieu", "nghìn", "nghin", "ngàn", "ngan", "đồng", "vnđ", "vnd", "usd", "tỷ", "tỉ",
    "củ", "k", "tr",
];

/// The word a common Vietnamese chat abbreviation ("teencode") stands for, folded, so that "ko"
/// and "không" meet in the folded view.
fn teencode(word: &str) -> Option<&'static str> {
    // The longest abbreviation has five bytes ("hông").
    if word.len() > 5 {
        return None;
    }
    Some(match word {
        "bn" => "bao nhieu",
        "dc" => "duoc",
        "đc" => "duoc",
        "hok" => "khong",
        "hông" => "khong",
        "j" => "gi",
        "k" => "khong",
        "ko" => "khong",
        "kh" => "khong",
        "hem" => "khong",
        "mn" => "moi nguoi",
        "mik" => "minh",
        "mk" => "minh",
        "ng" => "nguoi",
        "ntn" => "nhu the nao",
        "r" => "roi",
        "vs" => "voi",
        "z" => "vay",
        "trc" => "truoc",
        "sdt" => "so dien thoai",
        "đt" => "dien thoai",
        _ => return None,
    })
}

/// Stateful splitter over one normalised text.
struct Tokenizer<'a> {
    text: &'a str,
    out: &'a mut Analysis,
    /// Whitespace-separated chunks, as byte ranges of `text`.
    chunks: &'a [Range<usize>],
    /// Characters of the word being pushed (reused between words).
    scratch: Vec<char>,
}

impl<'a> Tokenizer<'a> {
    fn new(text: &'a str, chunks: &'a [Range<usize>], out: &'a mut Analysis) -> Self {
        Tokenizer {
            text,
            out,
            chunks,
            scratch: Vec::new(),
        }
    }

    fn chunk(&self, i: usize) -> &'a str {
        let text: &'a str = self.text;
        self.chunks.get(i).map_or("", |r| &text[r.clone()])
    }

    fn run(mut self) {
        let mut i = 0;
        while i < self.chunks.len() {
            // Most chunks are plain words: nothing a number, link, address or handle needs.
            let plain = !self.chunk(i).bytes().any(|b| {
                b.is_ascii_digit() || matches!(b, b'@' | b'.' | b'(' | b'[' | b'$' | b'/' | b':')
            });
            if plain {
                if let Some(used) = self.split_link_at(i) {
                    i += used;
                } else if let Some(used) = self.spaced_letters_at(i) {
                    i += used;
                } else {
                    let chunk = self.chunk(i);
                    self.words(chunk);
                    i += 1;
                }
                continue;
            }
            if let Some(used) = self.phone_at(i) {
                i += used;
                continue;
            }
            if let Some(used) = self.money_at(i) {
                i += used;
                continue;
            }
            if let Some(used) = self.split_link_at(i) {
                i += used;
                continue;
            }
            let chunk = self.chunk(i);
            self.entity_or_words(chunk);
            i += 1;
        }
        self.out.signals.words = self
            .out
            .tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Word)
            .count() as u32;
    }

    /// Pushes an entity token whose text and folded text are both `key`.
    fn push_entity(&mut self, kind: TokenKind, key: &str) {
        let start = self.out.buf.len();
        self.out.buf.push_str(key);
        let range = start..self.out.buf.len();
        self.out.tokens.push(Token {
            kind,
            text: range.clone(),
            folded: range,
        });
        let s = &mut self.out.signals;
        match kind {
            TokenKind::Url => s.urls += 1,
            TokenKind::Email => s.emails += 1,
            TokenKind::Phone => s.phones += 1,
            TokenKind::Handle => s.handles += 1,
            TokenKind::Money => s.money += 1,
            TokenKind::Emoji => s.emoji += 1,
            TokenKind::Word | TokenKind::Number => {}
        }
    }

    /// A phone number starting at chunk `i`, possibly spread over several chunks
    /// ("0912 345 678"). Returns how many chunks it used.
    fn phone_at(&mut self, i: usize) -> Option<usize> {
        let mut digits = String::new();
        let mut plus = false;
        let mut used = 0;
        let mut best = None;
        while let Some(part) = numeric_chunk(self.chunk(i + used)) {
            // An amount grouped in thousands ("1.500.000") is never part of a phone number.
            if part.thousands || (used > 0 && part.plus) {
                break;
            }
            if used == 0 {
                plus = part.plus;
            }
            digits.push_str(&part.digits);
            used += 1;
            if digits.len() > 13 {
                break;
            }
            if is_phone(&digits, plus) {
                best = Some((used, digits.clone()));
            }
        }
        let (used, digits) = best?;
        self.push_entity(TokenKind::Phone, &digits);
        Some(used)
    }

    /// A sum of money at chunk `i`: "10tr", "1otr", "500k", "$100", or a number followed by a
    /// unit word ("2 triệu").
    fn money_at(&mut self, i: usize) -> Option<usize> {
        let chunk = trim_punct(self.chunk(i));
        if !chunk.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        if let Some(rest) = chunk.strip_prefix('$')
            && numeric_chunk(rest).is_some()
        {
            self.push_entity(TokenKind::Money, chunk);
            return Some(1);
        }
        for unit in MONEY_UNITS {
            if let Some(number) = chunk.strip_suffix(unit)
                && !number.is_empty()
                && numeric_chunk(number).is_some()
            {
                self.push_entity(TokenKind::Money, chunk);
                return Some(1);
            }
        }
        if numeric_chunk(chunk).is_some() {
            let next = trim_punct(self.chunk(i + 1));
            if MONEY_WORDS.contains(&next) {
                let joined = format!("{chunk}{next}");
                self.push_entity(TokenKind::Money, &joined);
                return Some(2);
            }
        }
        None
    }

    /// A link written with a spaced or spelled-out dot: "abc . com", "abc chấm com".
    fn split_link_at(&mut self, i: usize) -> Option<usize> {
        let dot = self.chunk(i + 1);
        if dot.len() > 6 || !DOT_WORDS.contains(&dot) {
            return None;
        }
        let name = trim_punct(self.chunk(i));
        let tld_chunk = trim_punct(self.chunk(i + 2));
        let tld = tld_chunk.split('/').next().unwrap_or("");
        let is_label =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !is_label(name) || !TLDS.contains(&tld) {
            return None;
        }
        let host = format!("{name}.{tld}");
        self.push_link(&host);
        Some(3)
    }

    /// Three or more single letters in a row ("n h à c á i") read as one word.
    fn spaced_letters_at(&mut self, i: usize) -> Option<usize> {
        let single = |s: &str| {
            let mut chars = s.chars();
            s.len() <= 4 && matches!((chars.next(), chars.next()), (Some(c), None) if is_letter(c))
        };
        let mut n = 0;
        while single(self.chunk(i + n)) {
            n += 1;
        }
        if n < 3 {
            return None;
        }
        let word: String = (i..i + n).map(|k| self.chunk(k)).collect();
        self.out.signals.spaced += 1;
        self.push_word(&word);
        Some(n)
    }

    /// One whitespace-free chunk: an e-mail address, a handle, a link, or words, numbers and
    /// emoji.
    fn entity_or_words(&mut self, chunk: &str) {
        let trimmed = trim_punct(chunk);
        if let Some(at) = trimmed.find('@') {
            if at == 0 {
                let handle = &trimmed[1..];
                // "@0912345678" is a phone number dressed as a handle.
                if let Some(part) = numeric_chunk(handle)
                    && is_phone(&part.digits, part.plus)
                {
                    self.push_entity(TokenKind::Phone, &part.digits);
                    return;
                }
                if handle.len() >= 2
                    && handle
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
                {
                    self.push_entity(TokenKind::Handle, handle);
                    return;
                }
            } else if let Some(domain) = email_domain(trimmed) {
                let domain = registrable(domain).to_owned();
                self.push_entity(TokenKind::Email, &domain);
                return;
            }
        }
        if let Some(host) = link_host(trimmed) {
            let host = host.into_owned();
            self.push_link(&host);
            return;
        }
        self.words(chunk);
    }

    fn push_link(&mut self, host: &str) {
        let domain = registrable(host);
        let handle_host = HANDLE_DOMAINS.contains(&domain);
        if SHORTENERS.contains(&domain) {
            self.out.signals.short_urls += 1;
        }
        let domain = domain.to_owned();
        self.push_entity(TokenKind::Url, &domain);
        if handle_host {
            self.out.signals.handles += 1;
        }
    }

    /// Splits a chunk into words (letters, possibly with digits), numbers and emoji.
    fn words(&mut self, chunk: &str) {
        let mut start: Option<usize> = None;
        let mut previous = '\0';
        let mut run = 0;
        let mut shape = WordShape::default();
        for (i, c) in chunk.char_indices() {
            if c == previous {
                run += 1;
                // "..." is ordinary punctuation in Vietnamese comments; "!!!" and "$$$" are not.
                if run == 3 && !c.is_alphanumeric() && c != '.' {
                    self.out.signals.repeats += 1;
                }
            } else {
                run = 1;
                previous = c;
            }
            if c == '!' || c == '?' {
                self.out.signals.exclamations += 1;
            }
            if is_letter(c)
                || c.is_ascii_digit()
                || (!c.is_ascii() && c.is_numeric())
                || (start.is_some() && unicode_normalization::char::is_combining_mark(c))
            {
                if start.is_none() {
                    start = Some(i);
                    shape = WordShape::default();
                }
                shape.add(c);
                continue;
            }
            if let Some(s) = start.take() {
                self.word_or_number(&chunk[s..i], shape);
            }
            if is_pictographic(c) {
                let mut buf = [0u8; 4];
                self.push_entity(TokenKind::Emoji, c.encode_utf8(&mut buf));
            }
        }
        if let Some(s) = start {
            self.word_or_number(&chunk[s..], shape);
        }
    }

    /// A run of letters and digits: a number, a phone number, a word, or a word glued to a
    /// phone number ("sdt0912345678").
    fn word_or_number(&mut self, word: &str, shape: WordShape) {
        if word.bytes().all(|b| b.is_ascii_digit()) {
            if is_phone(word, false) {
                self.push_entity(TokenKind::Phone, word);
            } else {
                self.push_entity(TokenKind::Number, word);
            }
            return;
        }
        if let Some(start) = word.find(|c: char| c.is_ascii_digit())
            && start > 0
            && word[start..].bytes().all(|b| b.is_ascii_digit())
            && is_phone(&word[start..], false)
        {
            self.push_word(&word[..start]);
            self.push_entity(TokenKind::Phone, &word[start..]);
            return;
        }
        self.push_shaped_word(word, shape);
    }

    /// Pushes a word: its lower-cased text with runs of three or more of one character
    /// squeezed to one ("quáaaa" → "quáa"), and its folded form (diacritics, leetspeak digits
    /// and, in mixed-script words, look-alike letters folded; squeezed after folding, so
    /// "quáaaa" → "qua" meets "quá" → "qua"); a chat abbreviation is folded to the word it
    /// stands for.
    fn push_word(&mut self, word: &str) {
        let mut shape = WordShape::default();
        word.chars().for_each(|c| shape.add(c));
        self.push_shaped_word(word, shape);
    }

    /// [`Tokenizer::push_word`] for a word whose shape is known.
    fn push_shaped_word(&mut self, word: &str, shape: WordShape) {
        let simple = !shape.complex && !shape.has_run;
        if simple {
            let buf = &mut self.out.buf;
            let start = buf.len();
            buf.push_str(word);
            let text = start..buf.len();
            let folded = if word.is_ascii() {
                text.clone()
            } else {
                let folded_start = buf.len();
                for c in word.chars() {
                    buf.push(fold_diacritics(c));
                }
                folded_start..buf.len()
            };
            self.finish_word(text, folded);
            return;
        }
        let chars = &mut self.scratch;
        chars.clear();
        chars.extend(word.chars());
        let buf = &mut self.out.buf;
        let signals = &mut self.out.signals;

        let text_start = buf.len();
        let mut latin = false;
        let mut lookalike = false;
        for_each_squeezed(chars.iter().copied(), |c, _| {
            latin |= c.is_ascii_alphabetic() || fold_diacritics(c) != c;
            lookalike |= latin_lookalike(c).is_some();
            buf.push(c);
        });
        let text = text_start..buf.len();
        let mixed = latin && lookalike;
        if mixed {
            signals.mixed_script += 1;
        }

        let folded_chars = (0..chars.len()).map(|k| {
            let c = chars[k];
            if let Some(l) = leet_letter(chars, k) {
                l
            } else if let Some(l) = latin_lookalike(c).filter(|_| mixed) {
                l
            } else {
                fold_diacritics(c)
            }
        });
        let folded_start = buf.len();
        // Runs are counted once folded: folding only merges runs ("quáaa" → "quaaa").
        for_each_squeezed(folded_chars, |c, squeezed| {
            signals.repeats += u32::from(squeezed);
            buf.push(c);
        });
        let folded = folded_start..buf.len();
        self.finish_word(text, folded);
    }

    /// Counts a word's signals, folds a chat abbreviation to the word it stands for, and pushes
    /// the token.
    fn finish_word(&mut self, text: Range<usize>, mut folded: Range<usize>) {
        let buf = &mut self.out.buf;
        let signals = &mut self.out.signals;
        let folded_text = &buf[folded.clone()];
        if folded_text.len() >= 13 && folded_text.chars().count() >= 13 {
            signals.long_words += 1;
        }
        if folded_text.len() >= 6 && has_consonant_run(folded_text, 6) {
            signals.consonant_runs += 1;
        }
        let written = &buf[text.clone()];
        let expansion = teencode(written).or_else(|| {
            // Folded, for abbreviations typed without their diacritics ("dc" for "đc").
            (written.len() != folded_text.len())
                .then(|| teencode(folded_text))
                .flatten()
        });
        if let Some(expansion) = expansion {
            let start = buf.len();
            buf.push_str(expansion);
            folded = start..buf.len();
        }
        self.out.tokens.push(Token {
            kind: TokenKind::Word,
            text,
            folded,
        });
    }
}

/// `char::is_alphabetic` with a fast path for ASCII and the Latin letters Vietnamese uses
/// (the general lookup is a table search, and most characters of a comment are these).
fn is_letter(c: char) -> bool {
    match c as u32 {
        0..=0x7F => c.is_ascii_alphabetic(),
        0xD7 | 0xF7 => false,
        0xC0..=0x24F | 0x1E00..=0x1EFF => true,
        _ => c.is_alphabetic(),
    }
}

/// What a word needs beyond copying and folding its letters.
#[derive(Clone, Copy, Debug, Default)]
struct WordShape {
    /// A character repeated three times or more in a row, as written or once folded ("quáaa"
    /// folds to "quaaa"): squeeze it.
    has_run: bool,
    /// A digit (leetspeak) or a look-alike of a Latin letter: fold character by character.
    complex: bool,
    last: char,
    run: u32,
    last_folded: char,
    folded_run: u32,
}

impl WordShape {
    /// Takes in the next character of the word.
    #[inline]
    fn add(&mut self, c: char) {
        let folded = fold_diacritics(c);
        (self.run, self.last) = if c == self.last {
            (self.run + 1, c)
        } else {
            (1, c)
        };
        (self.folded_run, self.last_folded) = if folded == self.last_folded {
            (self.folded_run + 1, folded)
        } else {
            (1, folded)
        };
        self.has_run |= self.run >= 3 || self.folded_run >= 3;
        self.complex |= if c.is_ascii() {
            c.is_ascii_digit()
        } else {
            latin_lookalike(c).is_some()
        };
    }
}

/// True when `word` has `n` or more ASCII consonants in a row.
fn has_consonant_run(word: &str, n: usize) -> bool {
    let mut run = 0;
    for b in word.bytes() {
        if b.is_ascii_alphabetic() && !b"aeiouy".contains(&b) {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Calls `emit` for each character of `chars`, but only once for a run of three or more of the
/// same character (with `true` for such a run). Double letters ("good", "xoong") stay.
fn for_each_squeezed(chars: impl Iterator<Item = char>, mut emit: impl FnMut(char, bool)) {
    let mut run: Option<(char, usize)> = None;
    for c in chars {
        match &mut run {
            Some((p, n)) if *p == c => *n += 1,
            _ => {
                if let Some((p, n)) = run.replace((c, 1)) {
                    emit_run(p, n, &mut emit);
                }
            }
        }
    }
    if let Some((p, n)) = run {
        emit_run(p, n, &mut emit);
    }
}

fn emit_run(c: char, n: usize, emit: &mut impl FnMut(char, bool)) {
    if n >= 3 {
        emit(c, true);
    } else {
        for _ in 0..n {
            emit(c, false);
        }
    }
}

/// A digit standing for a letter inside a word ("s3x", "ch4t", "l0n"): only between two
/// letters, so "covid19", "4g" and "u23" keep their digits.
fn leet_letter(chars: &[char], k: usize) -> Option<char> {
    let c = chars[k];
    if !c.is_ascii_digit() || k == 0 || k + 1 >= chars.len() {
        return None;
    }
    if !is_letter(chars[k - 1]) || !is_letter(chars[k + 1]) {
        return None;
    }
    match c {
        '0' => Some('o'),
        '1' => Some('i'),
        '3' => Some('e'),
        '4' => Some('a'),
        '5' => Some('s'),
        '7' => Some('t'),
        _ => None,
    }
}

/// Cyrillic and Greek letters that look like Latin ones, mapped to the Latin letter. Applied only
/// inside words that also contain Latin letters, so Russian and Greek text is left as it is.
fn latin_lookalike(c: char) -> Option<char> {
    Some(match c {
        'а' | 'α' => 'a',
        'в' | 'β' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ι' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'п' | 'η' => 'n',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' => 'u',
        'ν' => 'v',
        'ш' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        _ => return None,
    })
}

/// True for emoji and other pictographic symbols.
fn is_pictographic(c: char) -> bool {
    matches!(c as u32,
        0x2190..=0x21FF | 0x2300..=0x23FF | 0x2460..=0x24FF | 0x25A0..=0x27BF | 0x2900..=0x297F
        | 0x2B00..=0x2BFF | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x1F000..=0x1FAFF)
}

/// Strips sentence punctuation around a chunk ("(0912345678)," → "0912345678").
fn trim_punct(chunk: &str) -> &str {
    chunk
        .trim_end_matches([',', ';', ':', '!', '?', '.', ')', ']', '"', '\''])
        .trim_start_matches(['(', '[', '"', '\'', ':'])
}

/// A chunk that is written in digits, possibly disguised.
struct NumericChunk {
    /// The digits, look-alike letters replaced ("o9l2" → "0912").
    digits: String,
    /// Written with a leading "+".
    plus: bool,
    /// Grouped in thousands ("1.000.000"), which marks an amount rather than a phone number.
    thousands: bool,
}

/// Reads a chunk made of digits, look-alike letters (o for 0; l, i and | for 1) and
/// separators, with at least as many real digits as look-alikes. `None` for anything else.
fn numeric_chunk(chunk: &str) -> Option<NumericChunk> {
    let chunk = trim_punct(chunk);
    if !chunk.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let (plus, body) = match chunk.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, chunk),
    };
    let mut digits = String::with_capacity(body.len());
    let mut real = 0;
    let mut lookalikes = 0;
    let mut groups: Vec<usize> = Vec::new();
    let mut group = 0;
    let mut separator_kinds = 0u8;
    for c in body.chars() {
        match c {
            '0'..='9' => {
                digits.push(c);
                real += 1;
                group += 1;
            }
            'o' => {
                digits.push('0');
                lookalikes += 1;
                group += 1;
            }
            'l' | 'i' | '|' => {
                digits.push('1');
                lookalikes += 1;
                group += 1;
            }
            // The keycap mark of "0️⃣9️⃣…" (its variation selector is already gone).
            '\u{20E3}' => {}
            '.' | ',' | '-' | '_' | '(' | ')' | '/' => {
                separator_kinds |= match c {
                    '.' | ',' => 1,
                    _ => 2,
                };
                groups.push(group);
                group = 0;
            }
            _ => return None,
        }
    }
    groups.push(group);
    if real == 0 || lookalikes > real {
        return None;
    }
    let thousands = separator_kinds == 1
        && groups.len() >= 2
        && (1..=3).contains(&groups[0])
        && groups[1..].iter().all(|&g| g == 3)
        && !digits.starts_with('0');
    Some(NumericChunk {
        digits,
        plus,
        thousands,
    })
}

/// Digits that make a phone number: 9 to 13 of them, starting as Vietnamese and most
/// international numbers do (0, +, or the country code 84), or 10–11 digits otherwise.
fn is_phone(digits: &str, plus: bool) -> bool {
    let n = digits.len();
    if !(9..=13).contains(&n) {
        return false;
    }
    plus || digits.starts_with('0') || digits.starts_with("84") || (10..=11).contains(&n)
}

/// The domain of an e-mail address, if `chunk` is one.
fn email_domain(chunk: &str) -> Option<&str> {
    let (local, domain) = chunk.split_once('@')?;
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "._%+-".contains(c));
    let host = link_host(domain)?;
    (local_ok && host == domain).then_some(domain)
}

/// The host of a link, if `chunk` is one: with a scheme, starting "www.", or a dotted name
/// ending in a known top-level domain. Dots written as "(.)", "[.]", "[dot]" or "(dot)" are read
/// as dots.
fn link_host(chunk: &str) -> Option<Cow<'_, str>> {
    // Most chunks are words: no dot, no link.
    if !chunk.bytes().any(|b| b == b'.' || b == b'(' || b == b'[') {
        return None;
    }
    let scheme = chunk.find("://");
    let rest = scheme.map_or(chunk, |i| &chunk[i + 3..]);
    let host_end = rest.find(['/', '?', '#', ':']).unwrap_or(rest.len());
    let host = rest[..host_end].trim_end_matches('.');
    let host: Cow<'_, str> = if host.contains(['(', '[']) {
        Cow::Owned(
            host.replace("(.)", ".")
                .replace("[.]", ".")
                .replace("[dot]", ".")
                .replace("(dot)", "."),
        )
    } else {
        Cow::Borrowed(host)
    };
    let valid_labels = host
        .split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let tld = host.rsplit('.').next().unwrap_or("");
    let known_end = scheme.is_some() || TLDS.contains(&tld);
    (valid_labels && host.contains('.') && known_end).then_some(host)
}

/// The part of a host name its owner registered: "www.shop.abc.com.vn" → "abc.com.vn".
pub fn registrable(host: &str) -> &str {
    let host = host.strip_prefix("www.").unwrap_or(host);
    // An IP address is registered whole.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host;
    }
    let dots: Vec<usize> = host.match_indices('.').map(|(i, _)| i).collect();
    let labels_kept = if dots.len() >= 2 {
        let last_two = &host[dots[dots.len() - 2] + 1..];
        if SECOND_LEVEL.contains(&last_two) {
            3
        } else {
            2
        }
    } else {
        return host;
    };
    if dots.len() < labels_kept {
        return host;
    }
    &host[dots[dots.len() - labels_kept] + 1..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (kind, text, folded) of every token.
    fn tokens(input: &str) -> Vec<(TokenKind, String, String)> {
        let a = analyze(input);
        a.tokens
            .iter()
            .map(|t| (t.kind, a.text(t).to_owned(), a.folded(t).to_owned()))
            .collect()
    }

    fn kinds(input: &str) -> Vec<(TokenKind, String)> {
        tokens(input).into_iter().map(|(k, t, _)| (k, t)).collect()
    }

    fn folded_words(input: &str) -> Vec<String> {
        tokens(input)
            .into_iter()
            .filter(|(k, _, _)| *k == TokenKind::Word)
            .map(|(_, _, f)| f)
            .collect()
    }

    #[test]
    fn accented_and_unaccented_vietnamese_meet_in_the_folded_view() {
        assert_eq!(
            folded_words("Nhà Cái uy tín"),
            folded_words("nha cai uy tin")
        );
        assert_eq!(folded_words("nhà cái"), vec!["nha", "cai"]);
        let accented = tokens("nhà");
        assert_eq!(accented[0].1, "nhà", "the accented view keeps diacritics");
    }

    #[test]
    fn decomposed_and_precomposed_vietnamese_are_the_same_text() {
        // "việt" written with combining marks (NFD) and precomposed (NFC).
        let decomposed = "vie\u{0323}\u{0302}t";
        assert_eq!(analyze(decomposed).normalized, analyze("việt").normalized);
    }

    #[test]
    fn zero_width_and_bidi_characters_are_removed_and_counted() {
        let a = analyze("nh\u{200B}à c\u{200D}á\u{2060}i \u{202E}uy tín\u{202C}");
        assert_eq!(a.normalized, "nhà cái uy tín");
        assert_eq!(a.signals.invisible, 5);
    }

    #[test]
    fn full_width_and_styled_letters_fold_to_plain_letters() {
        assert_eq!(analyze("ＦＲＥＥ ｍｏｎｅｙ").normalized, "free money");
        assert_eq!(analyze("𝐅𝐑𝐄𝐄 𝓂𝑜𝓃𝑒𝓎").normalized, "free money");
        assert_eq!(analyze("Ⓕⓡⓔⓔ").normalized, "free");
    }

    #[test]
    fn capitals_are_counted_before_lower_casing() {
        let a = analyze("MUA NGAY đi");
        assert_eq!(a.normalized, "mua ngay đi");
        assert_eq!((a.signals.upper, a.signals.letters), (7, 9));
    }

    #[test]
    fn phone_numbers_are_found_however_they_are_written() {
        for input in [
            "gọi 0912345678 nhé",
            "gọi 0912.345.678 nhé",
            "gọi 0912-345-678 nhé",
            "gọi 0912 345 678 nhé",
            "gọi O9l2.345.678 nhé",
            "gọi +84 912 345 678 nhé",
            "gọi (+84)912345678 nhé",
            "zalo:0912345678",
            "sdt0912345678",
        ] {
            let phones: Vec<_> = kinds(input)
                .into_iter()
                .filter(|(k, _)| *k == TokenKind::Phone)
                .collect();
            assert_eq!(phones.len(), 1, "{input:?} gave {:?}", kinds(input));
        }
        assert_eq!(
            kinds("O9l2.345.678")[0],
            (TokenKind::Phone, "0912345678".to_owned())
        );
    }

    #[test]
    fn ordinary_numbers_are_not_phone_numbers() {
        for input in [
            "năm 2024 có 365 ngày",
            "giá 1.500.000 đồng",
            "tỉ số 2-1",
            "lo lắng",
        ] {
            assert!(
                !kinds(input).iter().any(|(k, _)| *k == TokenKind::Phone),
                "{input:?} gave {:?}",
                kinds(input)
            );
        }
    }

    #[test]
    fn sums_of_money_are_recognised_including_disguised_digits() {
        for (input, want) in [
            ("lãi 1Otr mỗi tháng", "1otr"),
            ("chỉ 500k", "500k"),
            ("kiếm 2 triệu", "2triệu"),
            ("win $100", "$100"),
            ("giá 1.500.000đ", "1.500.000đ"),
        ] {
            assert!(
                kinds(input).contains(&(TokenKind::Money, want.to_owned())),
                "{input:?} gave {:?}",
                kinds(input)
            );
        }
    }

    #[test]
    fn links_are_recognised_with_their_registrable_domain() {
        for (input, want) in [
            ("xem https://www.shop.abc.com.vn/sp?id=1 nhé", "abc.com.vn"),
            ("vào bit.ly/abc123", "bit.ly"),
            ("vào www.example.org", "example.org"),
            ("vào nhacai(.)com ngay", "nhacai.com"),
            ("vào nhacai[dot]com ngay", "nhacai.com"),
            ("vào nhacai . com ngay", "nhacai.com"),
            ("vào nhacai chấm com ngay", "nhacai.com"),
            ("vào http://192.168.1.1/login", "192.168.1.1"),
        ] {
            assert!(
                kinds(input).contains(&(TokenKind::Url, want.to_owned())),
                "{input:?} gave {:?}",
                kinds(input)
            );
        }
        let a = analyze("bit.ly/x và t.me/kenh");
        assert_eq!(
            (a.signals.urls, a.signals.short_urls, a.signals.handles),
            (2, 1, 1)
        );
    }

    #[test]
    fn sentences_missing_a_space_after_the_full_stop_are_not_links() {
        for input in ["hay quá.thế mà", "the end.next time", "văn minh.đường xá"] {
            assert!(
                !kinds(input).iter().any(|(k, _)| *k == TokenKind::Url),
                "{input:?} gave {:?}",
                kinds(input)
            );
        }
    }

    #[test]
    fn emails_and_handles_are_recognised() {
        assert!(
            kinds("mail: ban.hang@gmail.com").contains(&(TokenKind::Email, "gmail.com".to_owned()))
        );
        assert!(kinds("ib @shop_xinh nhé").contains(&(TokenKind::Handle, "shop_xinh".to_owned())));
    }

    #[test]
    fn spaced_letters_are_read_as_one_word() {
        let a = analyze("vào n h à c á i ngay");
        assert_eq!(a.signals.spaced, 1);
        assert!(folded_words("vào n h à c á i ngay").contains(&"nhacai".to_owned()));
    }

    #[test]
    fn look_alike_cyrillic_letters_inside_latin_words_are_folded() {
        // "саsino" with Cyrillic с and а.
        let words = folded_words("\u{0441}\u{0430}sino online");
        assert_eq!(words[0], "casino");
        assert_eq!(analyze("\u{0441}\u{0430}sino").signals.mixed_script, 1);
        // Russian text on its own is left alone.
        assert_eq!(folded_words("привет")[0], "привет");
    }

    #[test]
    fn leetspeak_digits_inside_words_fold_to_letters() {
        assert_eq!(folded_words("s3x ch4t"), vec!["sex", "chat"]);
        assert_eq!(folded_words("covid19 u23"), vec!["covid19", "u23"]);
    }

    #[test]
    fn repeated_letters_are_squeezed_and_counted() {
        let a = analyze("quáaaaa đẹpppp");
        assert_eq!(a.signals.repeats, 2);
        assert_eq!(folded_words("quáaaaa"), folded_words("quá"));
        assert_eq!(folded_words("good xoong"), vec!["good", "xoong"]);
    }

    #[test]
    fn keyboard_mashing_is_counted_and_ordinary_words_are_not() {
        let mash = analyze("hàng ok djwjdjwjekqllqlskeif xkwhcjwl");
        assert_eq!(
            (mash.signals.long_words, mash.signals.consonant_runs),
            (1, 2)
        );
        let plain = analyze("nghiêng ngả strengths international");
        assert_eq!(plain.signals.long_words, 1, "international has 13 letters");
        assert_eq!(plain.signals.consonant_runs, 0);
        assert_eq!(
            analyze("thế à... ừ").signals.repeats,
            0,
            "an ellipsis is not a repeat"
        );
    }

    #[test]
    fn chat_abbreviations_fold_to_the_word_they_stand_for() {
        assert_eq!(folded_words("ko"), folded_words("không"));
        assert_eq!(folded_words("đc"), vec!["duoc"]);
    }

    #[test]
    fn emoji_are_tokens_of_their_own() {
        let k = kinds("đẹp quá😍😍!!!");
        assert_eq!(k.iter().filter(|(k, _)| *k == TokenKind::Emoji).count(), 2);
        assert_eq!(analyze("đẹp quá😍😍!!!").signals.exclamations, 3);
    }

    #[test]
    fn hidden_characters_are_counted_the_same_whether_or_not_the_text_needs_nfkc() {
        // "…" sends the second text through the NFKC path.
        assert_eq!(analyze("nh\u{200B}à cái...").signals.invisible, 1);
        assert_eq!(analyze("nh\u{200B}à cái…").signals.invisible, 1);
        // Emoji presentation selectors and joiners inside emoji hide nothing.
        assert_eq!(analyze("❤\u{FE0F} 👨\u{200D}👩").signals.invisible, 0);
        assert_eq!(analyze("❤\u{FE0F} 👨\u{200D}👩…").signals.invisible, 0);
    }

    #[test]
    fn squeezing_applies_to_runs_that_appear_once_folded() {
        assert_eq!(folded_words("quáaa"), folded_words("quá"));
        assert_eq!(analyze("quáaa").signals.repeats, 1);
    }

    #[test]
    fn disguised_phone_numbers_in_keycaps_and_handles_are_found() {
        let keycaps = "0\u{FE0F}\u{20E3}9\u{FE0F}\u{20E3}1\u{FE0F}\u{20E3}2\u{FE0F}\u{20E3}3\u{FE0F}\u{20E3}4\u{FE0F}\u{20E3}5\u{FE0F}\u{20E3}6\u{FE0F}\u{20E3}7\u{FE0F}\u{20E3}8\u{FE0F}\u{20E3}";
        assert!(kinds(keycaps).contains(&(TokenKind::Phone, "0912345678".to_owned())));
        assert!(kinds("ib @0912345678").contains(&(TokenKind::Phone, "0912345678".to_owned())));
    }

    #[test]
    fn an_amount_next_to_a_number_is_not_a_phone_number() {
        let k = kinds("giá 1.500.000 100 suất");
        assert!(
            !k.iter().any(|(kind, _)| *kind == TokenKind::Phone),
            "{k:?}"
        );
    }

    #[test]
    fn canonically_equivalent_texts_read_the_same() {
        // Two combining marks in either order are the same text once normalised.
        assert_eq!(
            analyze("\u{05D0}\u{05B1}\u{05B0}").normalized,
            analyze("\u{05D0}\u{05B0}\u{05B1}").normalized
        );
    }

    #[test]
    fn very_long_texts_are_read_up_to_a_bound() {
        let long = "ﷺ".repeat(MAX_ANALYSED_BYTES);
        let a = analyze(&long);
        assert!(a.normalized.len() < MAX_ANALYSED_BYTES * 20);
        assert!(a.signals.chars > 0);
    }

    #[test]
    fn empty_and_whitespace_only_text_has_no_tokens() {
        assert!(analyze("").tokens.is_empty());
        assert!(analyze(" \n\t\u{200B} ").tokens.is_empty());
    }
}
