//! Turns an [`Analysis`] into what the models read: a sparse vector of hashed word, phrase,
//! entity and character n-gram features, and a short dense vector of signals (link and phone
//! counts, ratios, offensive-lexicon hits). No I/O.
//!
//! Features are hashed ("the hashing trick") so that the model has a fixed size whatever the
//! vocabulary and scoring never looks anything up by string. The hash is xxh3 with a seed kept
//! in the model file, so the same text maps to the same indices in every process and release.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::analyze::{Analysis, Token, TokenKind};

/// Bumped whenever extraction changes what an index means; a model trained with another
/// version is refused at load rather than scoring garbage.
pub const FEATURE_VERSION: u32 = 1;

/// How features are extracted; saved with the model so training and scoring always agree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSettings {
    /// The sparse space has `2^hash_bits` slots.
    pub hash_bits: u8,
    /// Seed of the feature hash.
    pub seed: u64,
    /// Shortest character n-gram (in characters, word boundaries included).
    pub char_min: u8,
    /// Longest character n-gram.
    pub char_max: u8,
    /// Read the author's display name as well (its words in their own namespace).
    pub use_author: bool,
}

impl Default for FeatureSettings {
    fn default() -> Self {
        FeatureSettings {
            hash_bits: 20,
            seed: 0x6d6f_6465_7261_7465,
            char_min: 3,
            char_max: 5,
            use_author: true,
        }
    }
}

impl FeatureSettings {
    /// Number of slots in the sparse space.
    pub fn dimension(&self) -> usize {
        1usize << self.hash_bits
    }
}

/// Names of the dense signals, in the order of [`DenseSignals::values`].
pub const DENSE_NAMES: [&str; DENSE_LEN] = [
    "links",
    "shortened links",
    "phone numbers",
    "e-mail addresses",
    "messaging handles",
    "sums of money",
    "emoji",
    "share of digits",
    "share of capital letters",
    "length",
    "repeated characters",
    "exclamation marks",
    "offensive words",
    "hidden characters",
    "disguised letters",
];

/// Number of dense signals.
pub const DENSE_LEN: usize = 15;

/// The dense signals of one comment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DenseSignals {
    /// Values in the order of [`DENSE_NAMES`]; counts are `ln(1 + n)`, shares are in [0, 1].
    pub values: [f32; DENSE_LEN],
}

/// A Vietnamese (or any) offensive-word list, matched against whole words and phrases.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lexicon {
    /// Entries as given, one phrase each.
    pub entries: Vec<String>,
    #[serde(skip)]
    index: LexiconIndex,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LexiconIndex {
    /// Every entry (lower-cased words joined by one space), with the words it has.
    phrases: HashSet<String>,
    /// First words of entries, with the longest entry starting there (in words).
    first_words: HashMap<String, usize>,
}

impl Lexicon {
    /// Builds a lexicon from entries (one phrase each; blank lines and `#` comments ignored).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(entries: I) -> Self {
        let entries = entries
            .into_iter()
            .map(|e| e.as_ref().trim().to_owned())
            .filter(|e| !e.is_empty() && !e.starts_with('#'))
            .collect();
        let mut lexicon = Lexicon {
            entries,
            index: LexiconIndex::default(),
        };
        lexicon.build_index();
        lexicon
    }

    /// Rebuilds the lookup index (after deserialising).
    pub(crate) fn build_index(&mut self) {
        let mut index = LexiconIndex::default();
        for entry in &self.entries {
            // Entries are read with the same analyser as comments, so "Địt  mẹ" in the list
            // matches "địt mẹ" in a comment.
            let analysis = super::analyze::analyze(entry);
            let words: Vec<&str> = analysis
                .tokens
                .iter()
                .filter(|t| t.kind == TokenKind::Word)
                .map(|t| analysis.text(t))
                .collect();
            if words.is_empty() {
                continue;
            }
            let longest = index.first_words.entry(words[0].to_owned()).or_insert(0);
            *longest = (*longest).max(words.len());
            index.phrases.insert(words.join(" "));
        }
        self.index = index;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Calls `hit` with each entry found in the words of `analysis` (longest match first at each
    /// position; matches do not overlap).
    pub fn find<'a>(&self, analysis: &'a Analysis, mut hit: impl FnMut(&str)) {
        let words: Vec<&Token> = analysis
            .tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Word)
            .collect();
        let mut phrase = String::new();
        let mut i = 0;
        while i < words.len() {
            let first = analysis.text(words[i]);
            let Some(&longest) = self.index.first_words.get(first) else {
                i += 1;
                continue;
            };
            let mut matched = 0;
            phrase.clear();
            for n in 1..=longest.min(words.len() - i) {
                if n > 1 {
                    phrase.push(' ');
                }
                phrase.push_str(analysis.text(words[i + n - 1]));
                if self.index.phrases.contains(&phrase) {
                    matched = n;
                }
            }
            if matched == 0 {
                i += 1;
                continue;
            }
            let found: Vec<&str> = (i..i + matched)
                .map(|k| analysis.text(words[k]))
                .collect();
            hit(&found.join(" "));
            i += matched;
        }
    }
}

/// A feature in readable form, for explanations.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// A word as written (with diacritics).
    Word(String),
    /// A word with diacritics removed.
    FoldedWord(String),
    /// Two words in a row (folded).
    Phrase(String),
    /// The spelling (character n-grams) of a word, folded.
    Chars(String),
    /// An entity of some kind (phone number, link, ...).
    Entity(TokenKind),
    /// A link or e-mail address at a domain.
    Domain(TokenKind, String),
    /// An emoji.
    Emoji(String),
    /// An entry of the offensive-word list.
    Offensive(String),
    /// A word of the author's display name.
    Author(String),
    /// A dense signal, by index into [`DENSE_NAMES`].
    Signal(usize),
    /// The model's prior (intercept).
    Prior,
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feature::Word(w) => write!(f, "word \"{w}\""),
            Feature::FoldedWord(w) => write!(f, "word \"{w}\" (without diacritics)"),
            Feature::Phrase(p) => write!(f, "words \"{p}\""),
            Feature::Chars(w) => write!(f, "spelling of \"{w}\""),
            Feature::Entity(kind) => f.write_str(entity_name(*kind)),
            Feature::Domain(TokenKind::Email, d) => write!(f, "e-mail address at {d}"),
            Feature::Domain(_, d) => write!(f, "link to {d}"),
            Feature::Emoji(e) => write!(f, "emoji {e}"),
            Feature::Offensive(w) => write!(f, "offensive word \"{w}\""),
            Feature::Author(w) => write!(f, "author name \"{w}\""),
            Feature::Signal(i) => f.write_str(DENSE_NAMES.get(*i).copied().unwrap_or("signal")),
            Feature::Prior => f.write_str("base rate"),
        }
    }
}

fn entity_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Word => "word",
        TokenKind::Number => "number",
        TokenKind::Url => "link",
        TokenKind::Email => "e-mail address",
        TokenKind::Phone => "phone number",
        TokenKind::Handle => "messaging handle",
        TokenKind::Money => "sum of money",
        TokenKind::Emoji => "emoji",
    }
}

/// Placeholder spelling of an entity inside phrases ("call <phone>").
fn entity_placeholder(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Word => "<word>",
        TokenKind::Number => "<num>",
        TokenKind::Url => "<url>",
        TokenKind::Email => "<email>",
        TokenKind::Phone => "<phone>",
        TokenKind::Handle => "<handle>",
        TokenKind::Money => "<money>",
        TokenKind::Emoji => "<emoji>",
    }
}

/// Feature namespaces: the same text in two namespaces hashes to unrelated slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Namespace {
    Word = 1,
    Folded = 2,
    Phrase = 3,
    Chars = 4,
    Entity = 5,
    Domain = 6,
    Emoji = 7,
    Offensive = 8,
    Author = 9,
}

/// The two groups of sparse features. Each is scaled to unit length on its own, as the
/// reference model's two TF-IDF blocks are, so long comments do not get extreme scores just by
/// having many n-grams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// Words, phrases, entities, lexicon hits, author words.
    Words,
    /// Character n-grams.
    Chars,
}

/// Receives features as they are extracted. The fast path hashes and keeps indices only; the
/// explanation path also asks for the readable label.
pub(crate) trait Sink {
    /// One feature occurrence; `label` is only called by sinks that need it.
    fn add(&mut self, group: Group, index: u32, label: impl FnOnce() -> Feature);
}

/// What [`Extractor::extract`] returns besides the sparse vector.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Extracted {
    /// The dense signals.
    pub dense: DenseSignals,
    /// Features in the words group.
    pub words: usize,
    /// Features in the character n-gram group.
    pub chars: usize,
}

/// A sparse vector: (index, value) pairs; an index may repeat (values add up).
pub type Sparse = Vec<(u32, f32)>;

/// Hashes and collects features according to [`FeatureSettings`].
#[derive(Clone, Debug)]
pub struct Extractor {
    settings: FeatureSettings,
    lexicon: Lexicon,
}

impl Extractor {
    /// An extractor with the given settings and offensive-word list.
    pub fn new(settings: FeatureSettings, lexicon: Lexicon) -> Self {
        Extractor { settings, lexicon }
    }

    /// The settings in force.
    pub fn settings(&self) -> &FeatureSettings {
        &self.settings
    }

    /// The offensive-word list in force.
    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// Extracts the sparse features of a comment (and its author's name, when the settings use
    /// it) into `out`, and returns its dense signals and group sizes.
    pub fn extract(&self, text: &Analysis, author: Option<&Analysis>, out: &mut Sparse) -> Extracted {
        out.clear();
        let mut sink = FastSink {
            out,
            words: 0,
            chars: 0,
        };
        let dense = self.visit(text, author, &mut sink);
        let (words, chars) = (sink.words, sink.chars);
        scale_groups(out, words, chars);
        Extracted { dense, words, chars }
    }

    fn hash(&self, ns: Namespace, parts: &[&[u8]], scratch: &mut Vec<u8>) -> u32 {
        let bytes: &[u8] = if parts.len() == 1 {
            parts[0]
        } else {
            scratch.clear();
            for (k, part) in parts.iter().enumerate() {
                if k > 0 {
                    scratch.push(b' ');
                }
                scratch.extend_from_slice(part);
            }
            scratch
        };
        let h = xxh3_64_with_seed(bytes, self.settings.seed ^ ((ns as u64) << 56));
        (h >> (64 - u32::from(self.settings.hash_bits))) as u32
    }

    pub(crate) fn visit<S: Sink>(
        &self,
        a: &Analysis,
        author: Option<&Analysis>,
        sink: &mut S,
    ) -> DenseSignals {
        let mut scratch = Vec::with_capacity(64);
        let mut previous: Option<&[u8]> = None;
        let mut lexicon_hits = 0u32;
        for token in &a.tokens {
            let text = a.text(token);
            let folded = a.folded(token);
            let key: &[u8] = match token.kind {
                TokenKind::Word => {
                    if text != folded {
                        let i = self.hash(Namespace::Word, &[text.as_bytes()], &mut scratch);
                        sink.add(Group::Words, i, || Feature::Word(text.to_owned()));
                    }
                    let i = self.hash(Namespace::Folded, &[folded.as_bytes()], &mut scratch);
                    sink.add(Group::Words, i, || Feature::FoldedWord(folded.to_owned()));
                    self.char_ngrams(folded, sink, &mut scratch);
                    folded.as_bytes()
                }
                kind => {
                    let placeholder = entity_placeholder(kind);
                    let i = self.hash(Namespace::Entity, &[placeholder.as_bytes()], &mut scratch);
                    sink.add(Group::Words, i, || Feature::Entity(kind));
                    match kind {
                        TokenKind::Url | TokenKind::Email => {
                            let i = self.hash(
                                Namespace::Domain,
                                &[placeholder.as_bytes(), text.as_bytes()],
                                &mut scratch,
                            );
                            sink.add(Group::Words, i, || Feature::Domain(kind, text.to_owned()));
                        }
                        TokenKind::Emoji => {
                            let i = self.hash(Namespace::Emoji, &[text.as_bytes()], &mut scratch);
                            sink.add(Group::Words, i, || Feature::Emoji(text.to_owned()));
                        }
                        _ => {}
                    }
                    placeholder.as_bytes()
                }
            };
            if let Some(prev) = previous {
                let i = self.hash(Namespace::Phrase, &[prev, key], &mut scratch);
                sink.add(Group::Words, i, || {
                    Feature::Phrase(format!(
                        "{} {}",
                        String::from_utf8_lossy(prev),
                        String::from_utf8_lossy(key)
                    ))
                });
            }
            previous = Some(key);
        }
        self.lexicon.find(a, |phrase| {
            lexicon_hits += 1;
            let i = self.hash(Namespace::Offensive, &[phrase.as_bytes()], &mut scratch);
            sink.add(Group::Words, i, || Feature::Offensive(phrase.to_owned()));
        });
        if self.settings.use_author
            && let Some(author) = author
        {
            for token in author.tokens.iter().filter(|t| t.kind == TokenKind::Word) {
                let folded = author.folded(token);
                let i = self.hash(Namespace::Author, &[folded.as_bytes()], &mut scratch);
                sink.add(Group::Words, i, || Feature::Author(folded.to_owned()));
            }
        }
        dense_signals(a, lexicon_hits)
    }

    /// Character n-grams of one folded word padded with a space on each side ("nha" →
    /// " nh", "nha", "ha ", " nha", ...). A word shorter than the shortest n-gram is taken
    /// whole.
    fn char_ngrams<S: Sink>(&self, word: &str, sink: &mut S, scratch: &mut Vec<u8>) {
        let mut padded = Vec::with_capacity(word.len() + 2);
        padded.push(b' ');
        padded.extend_from_slice(word.as_bytes());
        padded.push(b' ');
        let (lo, hi) = (
            usize::from(self.settings.char_min),
            usize::from(self.settings.char_max),
        );
        // Character boundaries (byte offsets); folded words are mostly ASCII, where this is
        // every byte.
        let mut bounds: Vec<usize> = Vec::with_capacity(padded.len() + 1);
        if padded.is_ascii() {
            bounds.extend(0..=padded.len());
        } else {
            let s = std::str::from_utf8(&padded).unwrap_or_default();
            bounds.extend(s.char_indices().map(|(i, _)| i));
            bounds.push(padded.len());
        }
        let n_chars = bounds.len() - 1;
        if n_chars < lo {
            let i = self.hash(Namespace::Chars, &[&padded], scratch);
            sink.add(Group::Chars, i, || Feature::Chars(word.to_owned()));
            return;
        }
        for n in lo..=hi.min(n_chars) {
            for start in 0..=n_chars - n {
                let gram = &padded[bounds[start]..bounds[start + n]];
                let i = self.hash(Namespace::Chars, &[gram], scratch);
                sink.add(Group::Chars, i, || Feature::Chars(word.to_owned()));
            }
        }
    }
}

/// The value each feature of a group of `n` gets, so the group has unit length.
pub(crate) fn group_scale(n: usize) -> f32 {
    if n == 0 { 0.0 } else { 1.0 / (n as f32).sqrt() }
}

/// While extracting, [`FastSink`] stores which group a feature belongs to in its value, so the
/// groups can be scaled afterwards without a second buffer.
const WORD_MARK: f32 = 1.0;
const CHAR_MARK: f32 = 2.0;

/// Scales each group of a sparse vector to unit length.
fn scale_groups(out: &mut Sparse, words: usize, chars: usize) {
    let (wscale, cscale) = (group_scale(words), group_scale(chars));
    for (_, value) in out.iter_mut() {
        *value = if *value == WORD_MARK { wscale } else { cscale };
    }
}

struct FastSink<'a> {
    out: &'a mut Sparse,
    words: usize,
    chars: usize,
}

impl Sink for FastSink<'_> {
    #[inline]
    fn add(&mut self, group: Group, index: u32, _label: impl FnOnce() -> Feature) {
        match group {
            Group::Words => {
                self.words += 1;
                self.out.push((index, WORD_MARK));
            }
            Group::Chars => {
                self.chars += 1;
                self.out.push((index, CHAR_MARK));
            }
        }
    }
}

fn ln1p(n: u32) -> f32 {
    (n as f32).ln_1p()
}

fn dense_signals(a: &Analysis, lexicon_hits: u32) -> DenseSignals {
    let s = &a.signals;
    let share = |part: u32, whole: u32| {
        if whole == 0 {
            0.0
        } else {
            part as f32 / whole as f32
        }
    };
    // Capitals only mean something in text with a few letters ("OK" is not shouting).
    let capitals = if s.letters >= 8 {
        share(s.upper, s.letters)
    } else {
        0.0
    };
    DenseSignals {
        values: [
            ln1p(s.urls),
            ln1p(s.short_urls),
            ln1p(s.phones),
            ln1p(s.emails),
            ln1p(s.handles),
            ln1p(s.money),
            ln1p(s.emoji),
            share(s.digits, s.chars),
            capitals,
            ln1p(s.chars),
            ln1p(s.repeats),
            ln1p(s.exclamations),
            ln1p(lexicon_hits),
            ln1p(s.invisible),
            ln1p(s.spaced + s.mixed_script),
        ],
    }
}
