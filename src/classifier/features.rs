//! Turns an [`Analysis`] into what the models read: a sparse vector of hashed word, phrase,
//! entity and character n-gram features and of signal buckets (link and phone counts, shares of
//! digits and capitals, length, offensive-lexicon hits). No I/O.
//!
//! Features are hashed ("the hashing trick") so that the model has a fixed size whatever the
//! vocabulary and scoring never looks anything up by string. The hash ([`SlotHasher`]) is seeded
//! from the model file, so the same text maps to the same slots in every process and release.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::analyze::{Analysis, Token, TokenKind};

/// Bumped whenever extraction changes what an index means; a model trained with another
/// version is refused at load rather than scoring garbage.
pub const FEATURE_VERSION: u32 = 2;

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
    /// Features found in fewer training rows than this are ignored.
    pub min_rows: u32,
}

impl Default for FeatureSettings {
    fn default() -> Self {
        FeatureSettings {
            hash_bits: 20,
            seed: 0x6d6f_6465_7261_7465,
            char_min: 3,
            char_max: 4,
            use_author: true,
            min_rows: 2,
        }
    }
}

/// Bounds of [`FeatureSettings::hash_bits`]: below, nearly every feature collides; above, the
/// weight table outgrows any sensible memory.
pub const HASH_BITS: std::ops::RangeInclusive<u8> = 10..=26;

/// Bounds of the character n-gram lengths.
pub const CHAR_GRAMS: std::ops::RangeInclusive<u8> = 1..=8;

impl FeatureSettings {
    /// Number of slots in the sparse space.
    pub fn dimension(&self) -> usize {
        1usize << self.hash_bits
    }

    /// Why these settings cannot work, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if !HASH_BITS.contains(&self.hash_bits) {
            return Some(format!(
                "hash_bits must be {} to {}, is {}",
                HASH_BITS.start(),
                HASH_BITS.end(),
                self.hash_bits
            ));
        }
        if !CHAR_GRAMS.contains(&self.char_min)
            || !CHAR_GRAMS.contains(&self.char_max)
            || self.char_min > self.char_max
        {
            return Some(format!(
                "character n-grams must be {} to {} characters with char_min <= char_max, are {} to {}",
                CHAR_GRAMS.start(),
                CHAR_GRAMS.end(),
                self.char_min,
                self.char_max
            ));
        }
        None
    }
}

/// Signals read off a comment as a whole (counts and shares rather than words). The sparse
/// model reads each as a bucket of its value ("2 links", "63–126 characters"), so it can learn
/// that a long comment is normal but a very long one less so, which one weight on the raw value
/// cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Links.
    Links,
    /// Links through a shortener.
    ShortLinks,
    /// Phone numbers.
    Phones,
    /// E-mail addresses.
    Emails,
    /// Messaging handles.
    Handles,
    /// Sums of money.
    Money,
    /// Emoji.
    Emoji,
    /// Share of characters that are digits (bucket: tenths).
    Digits,
    /// Share of letters that are capitals, for texts with 8 letters or more (bucket: tenths).
    Capitals,
    /// Length in characters (bucket: power of two).
    Length,
    /// Runs of one character repeated three times or more.
    Repeats,
    /// Exclamation and question marks.
    Exclamations,
    /// Entries of the offensive-word list.
    Offensive,
    /// Invisible formatting characters.
    Hidden,
    /// Spaced-out or mixed-script words.
    Disguised,
    /// Words of 13 letters or more.
    LongWords,
    /// Words with six consonants in a row.
    ConsonantClusters,
}

impl Signal {
    /// What is counted: (one, several).
    fn nouns(self) -> (&'static str, &'static str) {
        match self {
            Signal::Links => ("link", "links"),
            Signal::ShortLinks => ("shortened link", "shortened links"),
            Signal::Phones => ("phone number", "phone numbers"),
            Signal::Emails => ("e-mail address", "e-mail addresses"),
            Signal::Handles => ("messaging handle", "messaging handles"),
            Signal::Money => ("sum of money", "sums of money"),
            Signal::Emoji => ("emoji", "emoji"),
            Signal::Digits => ("digit", "digits"),
            Signal::Capitals => ("capital letter", "capital letters"),
            Signal::Length => ("character", "characters"),
            Signal::Repeats => ("repeated character", "repeated characters"),
            Signal::Exclamations => ("exclamation mark", "exclamation marks"),
            Signal::Offensive => ("offensive word", "offensive words"),
            Signal::Hidden => ("hidden character", "hidden characters"),
            Signal::Disguised => ("disguised word", "disguised words"),
            Signal::LongWords => ("very long word", "very long words"),
            Signal::ConsonantClusters => ("consonant cluster", "consonant clusters"),
        }
    }

    /// The readable range of a bucket.
    fn describe(self, bucket: u8, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (one, noun) = self.nouns();
        let b = u64::from(bucket);
        match self {
            Signal::Digits | Signal::Capitals => write!(f, "{}–{} % {noun}", b * 10, b * 10 + 9),
            Signal::Length => {
                // Bucket b holds lengths n with 2^b <= n + 1 < 2^(b+1).
                let low = 1u64.checked_shl(bucket.into()).unwrap_or(u64::MAX) - 1;
                let high = 1u64.checked_shl(u32::from(bucket) + 1).unwrap_or(u64::MAX) - 2;
                write!(f, "{low}–{high} {noun}")
            }
            _ if bucket >= COUNT_CAP => write!(f, "{COUNT_CAP} or more {noun}"),
            _ if bucket == 1 => write!(f, "1 {one}"),
            _ => write!(f, "{bucket} {noun}"),
        }
    }
}

/// Counts of 5 and more share one bucket.
const COUNT_CAP: u8 = 5;

/// The signals of a comment that are present, with their buckets.
fn signals(a: &Analysis, lexicon_hits: u32) -> impl Iterator<Item = (Signal, u8)> {
    let s = a.signals;
    let count = |n: u32| n.min(u32::from(COUNT_CAP)) as u8;
    let tenths = |part: u32, whole: u32| {
        if whole == 0 {
            0
        } else {
            ((part as f32 / whole as f32) * 10.0).floor().min(9.0) as u8
        }
    };
    // Capitals only mean something in text with a few letters ("OK" is not shouting).
    let capitals = if s.letters >= 8 {
        tenths(s.upper, s.letters)
    } else {
        0
    };
    let length = (u32::BITS - (s.chars + 1).leading_zeros()).saturating_sub(1) as u8;
    [
        (Signal::Links, count(s.urls)),
        (Signal::ShortLinks, count(s.short_urls)),
        (Signal::Phones, count(s.phones)),
        (Signal::Emails, count(s.emails)),
        (Signal::Handles, count(s.handles)),
        (Signal::Money, count(s.money)),
        (Signal::Emoji, count(s.emoji)),
        (Signal::Digits, tenths(s.digits, s.chars)),
        (Signal::Capitals, capitals),
        (Signal::Length, length),
        (Signal::Repeats, count(s.repeats)),
        (Signal::Exclamations, count(s.exclamations)),
        (Signal::Offensive, count(lexicon_hits)),
        (Signal::Hidden, count(s.invisible)),
        (Signal::Disguised, count(s.spaced + s.mixed_script)),
        (Signal::LongWords, count(s.long_words)),
        (Signal::ConsonantClusters, count(s.consonant_runs)),
    ]
    .into_iter()
    .filter(|&(signal, bucket)| bucket > 0 || signal == Signal::Length)
}

/// A Vietnamese (or any) offensive-word list, matched against whole words and phrases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lexicon {
    /// Entries as given, one phrase each.
    pub entries: Vec<String>,
    index: LexiconIndex,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LexiconIndex {
    /// Every entry (lower-cased words joined by one space).
    phrases: foldhash::HashSet<String>,
    /// First words of entries, with the longest entry starting there (in words).
    first_words: foldhash::HashMap<String, usize>,
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

    fn build_index(&mut self) {
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
    pub fn find(&self, analysis: &Analysis, mut hit: impl FnMut(&str)) {
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
            let found: Vec<&str> = (i..i + matched).map(|k| analysis.text(words[k])).collect();
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
    /// Two words in a row as written.
    AccentedPhrase(String),
    /// The spelling (character n-grams) of a word, folded.
    Chars(String),
    /// An entity of some kind (phone number, link, ...).
    Entity(TokenKind),
    /// A link or e-mail address at a domain.
    Domain(TokenKind, String),
    /// An emoji.
    Emoji(String),
    /// A number, phone number or sum of money, exactly as read.
    Exact(TokenKind, String),
    /// An entry of the offensive-word list.
    Offensive(String),
    /// A word of the author's display name.
    Author(String),
    /// A signal in one of its buckets.
    Signal(Signal, u8),
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feature::Word(w) => write!(f, "word \"{w}\""),
            Feature::FoldedWord(w) => write!(f, "word \"{w}\" (without diacritics)"),
            Feature::Phrase(p) => write!(f, "words \"{p}\" (without diacritics)"),
            Feature::AccentedPhrase(p) => write!(f, "words \"{p}\""),
            Feature::Chars(w) => write!(f, "spelling of \"{w}\""),
            Feature::Entity(kind) => f.write_str(entity_name(*kind)),
            Feature::Domain(TokenKind::Email, d) => write!(f, "e-mail address at {d}"),
            Feature::Domain(_, d) => write!(f, "link to {d}"),
            Feature::Emoji(e) => write!(f, "emoji {e}"),
            Feature::Exact(kind, text) => write!(f, "{} {text}", entity_name(*kind)),
            Feature::Offensive(w) => write!(f, "offensive word \"{w}\""),
            Feature::Author(w) => write!(f, "author name \"{w}\""),
            Feature::Signal(signal, bucket) => signal.describe(*bucket, f),
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
    AccentedPhrase = 10,
    Signal = 11,
}

/// The groups of sparse features, weighed differently by [`Extractor::weigh`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Words, phrases, entities, lexicon hits, author words: TF-IDF, scaled to unit length.
    Words = 0,
    /// Character n-grams: TF-IDF, scaled to unit length on their own.
    Chars = 1,
    /// Signal buckets: value 1.
    Signals = 2,
}

/// Receives features as they are extracted. The fast path hashes and keeps indices only; the
/// explanation path also asks for the readable label.
pub(crate) trait Sink {
    /// One feature occurrence; `label` is only called by sinks that need it.
    fn add(&mut self, group: Group, index: u32, label: impl FnOnce() -> Feature);
}

/// The features of one comment before weighting: what [`Extractor::features`] reads off the
/// text. [`Extractor::weigh`] turns them into the sparse vector the models read.
#[derive(Clone, Debug, Default)]
pub struct Features {
    /// The distinct slots present, with their group, in the order first met. Each feature
    /// counts once however often it occurs: a comment saying "uy tín" five times is not five
    /// times as spammy, and the reference measured counts 0.005 ROC-AUC worse than presence.
    grams: Vec<(u32, Group)>,
    seen: SlotSet,
}

impl Features {
    /// The distinct slots present, with their group, in the order first met.
    pub fn grams(&self) -> &[(u32, Group)] {
        &self.grams
    }

    /// Empties the set for the next comment.
    pub(crate) fn reset(&mut self) {
        self.seen.clear(self.grams.iter().map(|&(slot, _)| slot));
        self.grams.clear();
    }

    /// Adds a feature; false if its slot was already present.
    #[inline]
    pub(crate) fn insert(&mut self, group: Group, slot: u32) -> bool {
        let fresh = self.seen.insert(slot);
        if fresh {
            self.grams.push((slot, group));
        }
        fresh
    }
}

/// A sparse vector: (slot, value) pairs.
pub type Sparse = Vec<(u32, f32)>;

/// The set of slots met in one comment: one bit per slot of the hash space (128 KiB for 2^20
/// slots, which stays in the CPU's second-level cache), cleared after each comment by unsetting
/// the bits of the slots it met. (A sort and dedup of the slots measured 14 % of a comment's
/// scoring time, an open-addressing set 10 %.)
#[derive(Clone, Debug, Default)]
struct SlotSet {
    bits: Vec<u64>,
}

impl SlotSet {
    /// Empties the set, which holds exactly `slots`.
    fn clear(&mut self, slots: impl Iterator<Item = u32>) {
        for slot in slots {
            if let Some(word) = self.bits.get_mut(slot as usize / 64) {
                *word &= !(1u64 << (slot % 64));
            }
        }
    }

    /// Adds `slot`; false if it was already there.
    #[inline]
    fn insert(&mut self, slot: u32) -> bool {
        let word = slot as usize / 64;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let bit = 1u64 << (slot % 64);
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        fresh
    }
}

/// Inverse document frequency of each hashed slot, learnt from the training rows: a feature
/// found in most comments ("là", " t") weighs less than a rare one ("nhà cái"), as in TF-IDF.
/// Quantised to one byte per slot (steps of 1/20 above 1.0), so the table of a 2^20-slot model
/// is 1 MiB and stays in cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Idf {
    table: Vec<u8>,
}

const IDF_STEP: f32 = 20.0;

/// Table value of a slot seen in too few training rows to be trusted: it weighs nothing.
const IDF_DROPPED: u8 = u8::MAX;

impl Idf {
    /// Learns the table from training rows: `ln((1 + rows) / (1 + rows with the feature)) + 1`,
    /// and 0 for slots found in fewer than `min_rows` rows (a feature seen once can only help
    /// the model memorise its one row).
    pub fn fit<'a>(
        rows: impl IntoIterator<Item = &'a [(u32, Group)]>,
        dimension: usize,
        min_rows: u32,
    ) -> Self {
        let mut df = vec![0u32; dimension];
        let mut last_row = vec![u32::MAX; dimension];
        let mut n = 0u32;
        for (r, row) in rows.into_iter().enumerate() {
            n += 1;
            for &(i, _) in row {
                let i = i as usize;
                if last_row[i] != r as u32 {
                    last_row[i] = r as u32;
                    df[i] += 1;
                }
            }
        }
        let table = df
            .iter()
            .map(|&d| {
                if d < min_rows {
                    return IDF_DROPPED;
                }
                let idf = ((1.0 + n as f32) / (1.0 + d as f32)).ln();
                (idf * IDF_STEP)
                    .round()
                    .clamp(0.0, f32::from(IDF_DROPPED - 1)) as u8
            })
            .collect();
        Idf { table }
    }

    /// Rebuilds a table from its bytes (as saved in a model file).
    pub fn from_bytes(table: Vec<u8>) -> Self {
        Idf { table }
    }

    /// The table's bytes; empty when every feature weighs 1.
    pub fn as_bytes(&self) -> &[u8] {
        &self.table
    }

    /// The weight of slot `index`.
    #[inline]
    pub fn get(&self, index: u32) -> f32 {
        self.table
            .get(index as usize)
            .map_or(1.0, |&q| Self::value(q))
    }

    /// The byte stored for slot `index` (see [`Idf::value`]).
    pub fn byte(&self, index: usize) -> Option<u8> {
        self.table.get(index).copied()
    }

    /// The weight a stored byte stands for.
    #[inline]
    pub fn value(q: u8) -> f32 {
        if q == IDF_DROPPED {
            0.0
        } else {
            1.0 + f32::from(q) * (1.0 / IDF_STEP)
        }
    }
}

/// Hashes and collects features according to [`FeatureSettings`].
#[derive(Clone, Debug)]
pub struct Extractor {
    settings: FeatureSettings,
    lexicon: Lexicon,
    idf: Idf,
}

impl Extractor {
    /// An extractor with the given settings, offensive-word list and feature weights.
    pub fn new(settings: FeatureSettings, lexicon: Lexicon, idf: Idf) -> Self {
        Extractor {
            settings,
            lexicon,
            idf,
        }
    }

    /// The same extractor with other feature weights.
    pub fn with_idf(self, idf: Idf) -> Self {
        Extractor { idf, ..self }
    }

    /// The settings in force.
    pub fn settings(&self) -> &FeatureSettings {
        &self.settings
    }

    /// The offensive-word list in force.
    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// The feature weights in force.
    pub fn idf(&self) -> &Idf {
        &self.idf
    }

    /// Reads the features of a comment (and of its author's name, when the settings use it)
    /// into `out`.
    pub fn features(&self, text: &Analysis, author: Option<&Analysis>, out: &mut Features) {
        out.reset();
        self.visit(text, author, out);
    }

    /// Weighs features into the sparse vector the models read: words and character n-grams
    /// get their IDF weight and are scaled to unit length group by group (as the reference
    /// model's two TF-IDF blocks are, so that long comments do not get extreme scores just by
    /// having many n-grams), and signal buckets are worth 1. Returns the scales of the words
    /// and character groups.
    pub fn weigh(&self, grams: &[(u32, Group)], out: &mut Sparse) -> [f32; 2] {
        let mut squares = [0.0f32; 2];
        for &(i, group) in grams {
            if let Some(square) = squares.get_mut(group as usize) {
                let v = self.idf.get(i);
                *square += v * v;
            }
        }
        let scales = squares.map(|s| if s > 0.0 { 1.0 / s.sqrt() } else { 0.0 });
        out.clear();
        out.extend(
            grams
                .iter()
                .map(|&(i, group)| (i, self.value(i, group, scales)))
                .filter(|&(_, v)| v != 0.0),
        );
        scales
    }

    /// The value [`Extractor::weigh`] gives feature `index` of `group`, given the group scales
    /// it returned.
    pub fn value(&self, index: u32, group: Group, scales: [f32; 2]) -> f32 {
        match scales.get(group as usize) {
            Some(scale) => self.idf.get(index) * scale,
            None => 1.0,
        }
    }

    /// The slot of a feature: its parts (joined by a space) hashed in namespace `ns`.
    fn hash(&self, ns: Namespace, parts: &[&[u8]]) -> u32 {
        let mut h = SlotHasher::new(self.settings.seed, ns);
        for (k, part) in parts.iter().enumerate() {
            if k > 0 {
                h.write(b" ");
            }
            h.write(part);
        }
        self.slot(&h)
    }

    #[inline]
    fn slot(&self, h: &SlotHasher) -> u32 {
        (h.finish() >> (64 - u32::from(self.settings.hash_bits))) as u32
    }

    pub(crate) fn visit<S: Sink>(&self, a: &Analysis, author: Option<&Analysis>, sink: &mut S) {
        let mut previous: Option<&[u8]> = None;
        let mut previous_text: Option<&[u8]> = None;
        let mut lexicon_hits = 0u32;
        for token in &a.tokens {
            let text = a.text(token);
            let folded = a.folded(token);
            let key_text: &[u8] = if token.kind == TokenKind::Word {
                text.as_bytes()
            } else {
                entity_placeholder(token.kind).as_bytes()
            };
            let key: &[u8] = match token.kind {
                TokenKind::Word => {
                    if text != folded {
                        let i = self.hash(Namespace::Word, &[text.as_bytes()]);
                        sink.add(Group::Words, i, || Feature::Word(text.to_owned()));
                    }
                    let i = self.hash(Namespace::Folded, &[folded.as_bytes()]);
                    sink.add(Group::Words, i, || Feature::FoldedWord(folded.to_owned()));
                    folded.as_bytes()
                }
                kind => {
                    let placeholder = entity_placeholder(kind);
                    let i = self.hash(Namespace::Entity, &[placeholder.as_bytes()]);
                    sink.add(Group::Words, i, || Feature::Entity(kind));
                    match kind {
                        TokenKind::Url | TokenKind::Email => {
                            let i = self.hash(
                                Namespace::Domain,
                                &[placeholder.as_bytes(), text.as_bytes()],
                            );
                            sink.add(Group::Words, i, || Feature::Domain(kind, text.to_owned()));
                        }
                        TokenKind::Emoji => {
                            let i = self.hash(Namespace::Emoji, &[text.as_bytes()]);
                            sink.add(Group::Words, i, || Feature::Emoji(text.to_owned()));
                        }
                        // The exact number matters too: spam campaigns repeat short codes,
                        // hotlines and prices.
                        TokenKind::Number | TokenKind::Phone | TokenKind::Money => {
                            let i = self.hash(
                                Namespace::Domain,
                                &[placeholder.as_bytes(), text.as_bytes()],
                            );
                            sink.add(Group::Words, i, || Feature::Exact(kind, text.to_owned()));
                        }
                        TokenKind::Handle => {}
                        TokenKind::Word => {}
                    }
                    placeholder.as_bytes()
                }
            };
            if let Some(prev) = previous {
                let i = self.hash(Namespace::Phrase, &[prev, key]);
                sink.add(Group::Words, i, || Feature::Phrase(lossy_pair(prev, key)));
            }
            if let Some(prev) = previous_text
                && (prev != previous.unwrap_or_default() || key_text != key)
            {
                let i = self.hash(Namespace::AccentedPhrase, &[prev, key_text]);
                sink.add(Group::Words, i, || {
                    Feature::AccentedPhrase(lossy_pair(prev, key_text))
                });
            }
            previous = Some(key);
            previous_text = Some(key_text);
        }
        // Character n-grams of every whitespace-separated chunk, punctuation, digits and links
        // included ("!!", ".com", "08" and ":)" are as telling as letters), diacritics folded.
        self.char_ngrams(&a.spelling, sink);
        self.lexicon.find(a, |phrase| {
            lexicon_hits += 1;
            let i = self.hash(Namespace::Offensive, &[phrase.as_bytes()]);
            sink.add(Group::Words, i, || Feature::Offensive(phrase.to_owned()));
        });
        if self.settings.use_author
            && let Some(author) = author
        {
            for token in author.tokens.iter().filter(|t| t.kind == TokenKind::Word) {
                let folded = author.folded(token);
                let i = self.hash(Namespace::Author, &[folded.as_bytes()]);
                sink.add(Group::Words, i, || Feature::Author(folded.to_owned()));
            }
        }
        for (signal, bucket) in signals(a, lexicon_hits) {
            let i = self.hash(Namespace::Signal, &[&[signal as u8, bucket]]);
            sink.add(Group::Signals, i, || Feature::Signal(signal, bucket));
        }
    }

    /// Character n-grams of each word of `spelling` (words separated by single spaces, with a
    /// space at each end) padded with the spaces around it: " nha " gives " nh", "nha", "ha ",
    /// " nha", ... An n-gram never reaches past the space after its word. A padded word shorter
    /// than the shortest n-gram is taken whole. One hashing pass per starting character emits
    /// all its lengths.
    fn char_ngrams<S: Sink>(&self, spelling: &str, sink: &mut S) {
        let (lo, hi) = (
            usize::from(self.settings.char_min),
            usize::from(self.settings.char_max),
        );
        let bytes = spelling.as_bytes();
        // Where the word the n-grams starting at the current position belong to begins; its
        // end is only looked for when an explanation asks for the label.
        // (The last word's bounds are remembered, so labelling stays linear in the text.)
        let mut word = 1;
        let last_word = std::cell::Cell::new((usize::MAX, 0));
        let label = |begin: usize| {
            let end = match last_word.get() {
                (b, end) if b == begin => end,
                _ => {
                    let end = spelling[begin..]
                        .find(' ')
                        .map_or(spelling.len(), |e| begin + e);
                    last_word.set((begin, end));
                    end
                }
            };
            Feature::Chars(spelling[begin..end].to_owned())
        };
        if spelling.is_ascii() {
            // The common case (folded text is mostly ASCII): one byte per character.
            for first in 0..bytes.len().saturating_sub(1) {
                let mut h = SlotHasher::new(self.settings.seed, Namespace::Chars);
                let from_space = bytes[first] == b' ';
                if from_space {
                    word = first + 1;
                }
                for (n, &b) in bytes[first..].iter().take(hi).enumerate() {
                    h.write(&[b]);
                    let at_space = n > 0 && b == b' ';
                    if n + 1 >= lo || (at_space && from_space) {
                        sink.add(Group::Chars, self.slot(&h), || label(word));
                    }
                    if at_space {
                        break;
                    }
                }
            }
            return;
        }
        let starts: Vec<usize> = spelling
            .char_indices()
            .map(|(i, _)| i)
            .chain([bytes.len()])
            .collect();
        for first in 0..starts.len().saturating_sub(2) {
            let mut h = SlotHasher::new(self.settings.seed, Namespace::Chars);
            let from_space = bytes[starts[first]] == b' ';
            if from_space {
                word = starts[first] + 1;
            }
            for (n, w) in starts[first..].windows(2).take(hi).enumerate() {
                let (from, to) = (w[0], w[1]);
                h.write(&bytes[from..to]);
                let at_space = n > 0 && bytes[from] == b' ';
                if n + 1 >= lo || (at_space && from_space) {
                    sink.add(Group::Chars, self.slot(&h), || label(word));
                }
                if at_space {
                    break;
                }
            }
        }
    }
}

/// The feature hash: FNV-1a over the bytes, started from the seed and namespace, then one
/// xor-shift-multiply round so that every input bit reaches the top bits used as the slot.
///
/// Written here rather than taken from a hashing crate because character n-grams need the hash
/// of every prefix (up to four characters) at each position: FNV extends a prefix's state by one
/// multiply per byte and the finaliser is one more, where a general-purpose hasher starts over
/// for each n-gram (measured on a 500-character comment: feature extraction took 12.6 µs with
/// xxh3 per n-gram, 7.5 µs with this).
/// The output must never change for a given seed: models store slots, not strings.
#[derive(Clone, Copy)]
struct SlotHasher(u64);

impl SlotHasher {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

    fn new(seed: u64, ns: Namespace) -> Self {
        SlotHasher(Self::OFFSET ^ seed ^ ((ns as u64) << 56))
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    /// The state mixed so that its top bits (the slot) depend on every input byte: FNV's last
    /// multiply only moves the last byte into the low and middle bits.
    #[inline]
    fn finish(&self) -> u64 {
        (self.0 ^ (self.0 >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
    }
}

fn lossy_pair(a: &[u8], b: &[u8]) -> String {
    format!(
        "{} {}",
        String::from_utf8_lossy(a),
        String::from_utf8_lossy(b)
    )
}

impl Sink for Features {
    #[inline]
    fn add(&mut self, group: Group, index: u32, _label: impl FnOnce() -> Feature) {
        self.insert(group, index);
    }
}
