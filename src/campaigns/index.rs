//! The near-copy index: fingerprints of comment texts and the sliding window they are kept in.
//!
//! A campaign is one text, lightly edited, posted under many names or e-mail
//! addresses within a short time. Each text is reduced to a 128-bit
//! [`Fingerprint`]; an [`Index`] keeps the fingerprints of a sliding time
//! window and tells, for each new comment, how many distinct readers posted a
//! near-identical text, and when that makes a campaign.
//!
//! The fingerprint is a MinHash of the set of normalised words, two bits of
//! each of 64 minima: bit `i` of each half is a bit of the word that comes
//! first under the `i`-th random permutation (by one permutation hashing:
//! one hash a word). Two texts whose word sets have Jaccard similarity `J`
//! differ in each bit with probability `(1 - J) / 2`, so near copies are a
//! few bits apart and unrelated texts about 32 a half. The first half is
//! compared first; the second confirms a candidate, since unrelated words
//! agree on one bit by luck half the time, on two a quarter. On this task it
//! separated light edits from distinct comments better than a SimHash of the
//! same bits when the two were compared.
//!
//! Lookup is by bands (locality-sensitive hashing): the 64 minima are cut
//! into [`BANDS`] bands of four, and each band's four words hashed into a
//! band key. Near copies share most minima, so they share some band whole
//! (two texts with 70 % of their minima equal share one of 16 bands with
//! probability 98.8 %), while unrelated texts rarely share any. A lookup
//! reads, for each band, the entries with the same band key and keeps those
//! within the distances above: about 16 cache lines and a few entries, where
//! an exact search of every fingerprint within distance 10 would probe
//! hundreds of buckets. On the evaluation sets below, the bands lose none of
//! the copies an exact search finds (`band_lookup_loses_no_copy`).

use std::collections::VecDeque;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// Bands of a [`Fingerprint`], each the key of four of its minima.
pub const BANDS: usize = 16;

/// A fingerprint of a normalised comment text: two 64-bit halves, one bit of each bin's word
/// in each (the first is compared first; the second confirms a candidate: a second bit of the
/// same words halves the chance that unrelated words agree by luck), and the band keys it is
/// looked up by.
///
/// Texts with mostly the same words have fingerprints a few bits apart, and share a band
/// key; word order does not matter. Fingerprints are deterministic: the same text gives
/// the same fingerprint in every process built with the same `foldhash`
/// version, so instances can share them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub lookup: u64,
    pub confirm: u64,
    pub bands: [u32; BANDS],
}

impl Fingerprint {
    /// Number of bits in which the first halves differ.
    pub fn distance(self, other: Fingerprint) -> u32 {
        (self.lookup ^ other.lookup).count_ones()
    }

    /// Number of bits in which the whole fingerprints differ.
    pub fn total_distance(self, other: Fingerprint) -> u32 {
        self.distance(other) + (self.confirm ^ other.confirm).count_ones()
    }

    /// Whether the two share a band key (only then does a lookup see one from the other).
    pub fn shares_band(&self, other: &Fingerprint) -> bool {
        self.bands.iter().zip(&other.bands).any(|(a, b)| a == b)
    }

    /// The band keys as 128 hex digits, for sharing.
    pub fn bands_hex(&self) -> String {
        use std::fmt::Write;
        let mut hex = String::with_capacity(8 * BANDS);
        for band in self.bands {
            let _ = write!(hex, "{band:08x}");
        }
        hex
    }

    /// Band keys from [`bands_hex`](Fingerprint::bands_hex)'s form.
    pub fn parse_bands(hex: &str) -> Option<[u32; BANDS]> {
        if hex.len() != 8 * BANDS || !hex.is_ascii() {
            return None;
        }
        let mut bands = [0; BANDS];
        for (band, digits) in bands.iter_mut().zip(hex.as_bytes().chunks(8)) {
            *band = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
        }
        Some(bands)
    }
}

/// Reduces a text to lower-case words separated by single spaces.
///
/// Diacritics are removed (Vietnamese included: 'đ' becomes 'd'). Zero-width
/// and bidirectional control characters are dropped without splitting a word.
/// Every other character that is neither a letter nor a digit (punctuation,
/// symbols, emoji, whitespace) separates words.
pub fn normalise(text: &str) -> String {
    let mut folder = Folder {
        out: String::with_capacity(text.len()),
        gap: false,
    };
    for c in text.chars() {
        if c.is_ascii() {
            folder.ascii(c);
        } else {
            decompose_canonical(c, |part| folder.other(part));
        }
    }
    folder.out
}

/// Output of [`normalise`] under construction.
struct Folder {
    out: String,
    /// Whether a separator came since the last letter or digit.
    gap: bool,
}

impl Folder {
    /// Takes one ASCII character.
    fn ascii(&mut self, c: char) {
        if c.is_ascii_alphanumeric() {
            self.push(c.to_ascii_lowercase());
        } else {
            self.gap = true;
        }
    }

    /// Takes one character of a canonical decomposition.
    fn other(&mut self, c: char) {
        if is_combining_mark(c) || crate::text::is_invisible(c) {
            return;
        }
        if !c.is_alphanumeric() {
            self.gap = true;
            return;
        }
        for lower in c.to_lowercase() {
            match lower {
                'đ' => self.push('d'),
                l if is_combining_mark(l) => {}
                l => self.push(l),
            }
        }
    }

    /// Appends a letter or digit, after a space if a separator came before it.
    fn push(&mut self, c: char) {
        if self.gap && !self.out.is_empty() {
            self.out.push(' ');
        }
        self.gap = false;
        self.out.push(c);
    }
}

/// Fingerprints a comment text; `None` if it has fewer than `min_words` words.
///
/// Short generic comments are repeated by many readers in good faith, so they
/// get no fingerprint and never count as campaign copies. Words are counted
/// after [`normalise`]; `min_words` below 1 counts as 1. The fingerprint
/// depends on the set of words only: order and repetitions are ignored.
pub fn fingerprint(text: &str, min_words: usize) -> Option<Fingerprint> {
    let normalised = normalise(text);
    let words: Vec<&str> = normalised.split(' ').filter(|w| !w.is_empty()).collect();
    if words.len() < min_words.max(1) {
        return None;
    }
    Some(min_hash(&words))
}

/// Seed of the word hasher; changing it changes every fingerprint.
const WORD_SEED: u64 = 0x6361_6d70_6169_676e;

/// Seeds of the 64 permutations of word hashes, one per fingerprint bit.
const PERMUTATION_SEEDS: [u64; 64] = permutation_seeds();

/// Computes [`PERMUTATION_SEEDS`] at compile time.
const fn permutation_seeds() -> [u64; 64] {
    let mut seeds = [0; 64];
    let mut i = 0;
    while i < 64 {
        seeds[i] = mix(i as u64 + 7);
        i += 1;
    }
    seeds
}

/// One-bit MinHash of a set of words by one permutation: each word is hashed once, its top six
/// bits choose one of 64 bins, and each bin keeps the word with the least hash in it. A bin no
/// word fell in borrows the word of a filled bin chosen by a sequence of its own (the same in
/// every text: optimal densification, Shrivastava 2017), so every bin stands for a random
/// permutation's minimum. Bit `i` is one bit of a hash of bin `i`'s word and `i`. One hash a
/// word instead of one per bit; what it estimates is the same Jaccard similarity. Band `b` is
/// a hash of the words of bins `4b` to `4b + 3`.
fn min_hash(words: &[&str]) -> Fingerprint {
    let words = bin_words(words);
    let (mut lookup, mut confirm) = (0u64, 0u64);
    for (i, (seed, word)) in PERMUTATION_SEEDS.iter().zip(&words).enumerate() {
        let bits = mix(word ^ seed);
        lookup |= (bits & 1) << i;
        confirm |= ((bits >> 1) & 1) << i;
    }
    let band = |b: usize| {
        let four = &words[4 * b..4 * b + 4];
        mix(four.iter().fold(b as u64, |key, &w| mix(key ^ w))) as u32
    };
    Fingerprint {
        lookup,
        confirm,
        bands: std::array::from_fn(band),
    }
}

/// The word hash each of the 64 bins stands for (see [`min_hash`]); all zero for no words.
fn bin_words(words: &[&str]) -> [u64; 64] {
    let hasher = FixedState::with_seed(WORD_SEED);
    let mut least = [u64::MAX; 64];
    let mut winners = [0u64; 64];
    for word in words {
        let hash = mix(hasher.hash_one(word));
        let bin = (hash >> 58) as usize;
        let rest = hash << 6;
        if rest <= least[bin] {
            least[bin] = rest;
            winners[bin] = hash;
        }
    }
    if least.iter().all(|&l| l == u64::MAX) {
        return [0; 64];
    }
    std::array::from_fn(|i| winners[donor(&least, i)])
}

/// The bin whose word bin `i` stands for: itself if a word fell in it, else the first filled
/// bin of its own sequence (at least one is filled).
fn donor(least: &[u64; 64], i: usize) -> usize {
    let (mut j, mut attempt) = (i, 0u64);
    while least[j] == u64::MAX {
        attempt += 1;
        j = (mix(PERMUTATION_SEEDS[i] ^ attempt) >> 58) as usize;
    }
    j
}

/// Spreads hash bits so that each output bit depends on every input bit.
const fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Settings of an [`Index`].
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignSettings {
    /// Length of the sliding window in milliseconds; older entries are forgotten.
    pub window_ms: i64,
    /// Number of distinct readers posting near copies that makes a campaign.
    pub copies: usize,
    /// Largest Hamming distance between the first halves of near copies (at most 63).
    pub max_distance: u32,
    /// Largest distance between whole fingerprints of near copies.
    pub max_total: u32,
    /// Fewest normalised words a text needs to be fingerprinted.
    pub min_words: usize,
    /// Most entries kept; the oldest are forgotten first.
    pub capacity: usize,
}

impl Default for CampaignSettings {
    /// One day, 3 readers, distance 10 on the first half and 18 on the whole, 8 words,
    /// 200,000 entries.
    ///
    /// The distances and 8 words were tuned on this module's evaluation tests: on generated
    /// texts (8 seeds of 10,000 distinct texts and 2,000 copies each) no distinct pair
    /// matches and at least 97.6 % of copies are found; on the labeled corpus 95.0 %, with
    /// 3 matched pairs of distinct texts sharing less than half their words.
    fn default() -> Self {
        CampaignSettings {
            window_ms: 24 * 60 * 60 * 1000,
            copies: 3,
            max_distance: 10,
            max_total: 18,
            min_words: 8,
            capacity: 200_000,
        }
    }
}

/// Answer of [`Index::check`] for one comment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Distinct readers with a near-identical text in the window, this one included.
    pub copies: usize,
    /// Ids of earlier near copies to flag now, from any reader; each id is handed out once.
    ///
    /// Filled only when `campaign` is true, with the matching entries not
    /// reported before.
    pub earlier: Vec<String>,
    /// Whether this comment is a campaign copy.
    ///
    /// True when `copies` reaches [`CampaignSettings::copies`], or when the
    /// text is a near copy of an entry already reported as a campaign copy.
    pub campaign: bool,
    /// Whether the same reader posted a near copy earlier in the window.
    pub repeat: bool,
}

/// Bits of a band key that choose its chain: 262,144 chains a band, so that a chain of a
/// full index rarely holds an entry of another band key (each costs a lookup a cache miss).
const CHAIN_BITS: u32 = 18;

/// Entries added between two sweeps of the chain heads (see [`Index::sweep`]).
const SWEEP_EVERY: u64 = 1 << 30;

/// An entry's place in one band: its band key, and how many sequence numbers back the
/// previous entry of its chain is (0: none, or too far back to matter). Side by side, so that
/// a walk reads one cache line an entry.
#[derive(Clone, Copy, Debug)]
struct Link {
    band: u32,
    back: u32,
}

/// One recorded comment.
#[derive(Clone, Debug)]
struct Entry {
    /// The fingerprint's halves (its bands are in `links`).
    lookup: u64,
    confirm: u64,
    links: [Link; BANDS],
    at_ms: i64,
    reader: u64,
    /// The submission's (its idempotency key's) hash.
    key: u64,
    comment_id: Box<str>,
    reported: bool,
}

/// Fingerprints of recent comments, for finding near copies across readers.
///
/// Entries are kept in arrival order and forgotten when they leave the window or when the
/// index holds `capacity` entries. Each band has a table of chains: the chain of a band key's
/// low [`CHAIN_BITS`] bits starts at its newest entry, and each entry links to the previous
/// one of its chain, newest first, so a forgotten entry needs no unlinking: a walk stops at
/// the first entry no longer kept. Memory is the entries (about 250 bytes each with their
/// comment id) and the chain heads (16 MiB).
///
/// A chain far longer than a full index would make it (a flood of near-identical texts) is
/// walked for its newest entries only, which bounds the cost of a check; the verdict then
/// counts those.
#[derive(Debug)]
pub struct Index {
    settings: CampaignSettings,
    /// For band `b` and chain `c`, at `b << CHAIN_BITS | c`: the low 32 bits of the sequence
    /// number of the chain's newest entry, kept or forgotten ([`Index::kept`] tells).
    heads: Vec<u32>,
    /// Most entries of one chain a lookup walks.
    walk_limit: usize,
    /// [`SWEEP_EVERY`], lower in tests.
    sweep_every: u64,
    entries: VecDeque<Entry>,
    first_seq: u64,
    latest_ms: i64,
}

impl Index {
    /// Creates an empty index.
    pub fn new(settings: CampaignSettings) -> Index {
        let mut settings = settings;
        settings.max_distance = settings.max_distance.min(63);
        settings.capacity = settings.capacity.clamp(1, 1 << 31);
        let expected_chain = settings.capacity >> CHAIN_BITS;
        Index {
            walk_limit: 64 + 4 * expected_chain,
            sweep_every: SWEEP_EVERY,
            settings,
            heads: vec![0; BANDS << CHAIN_BITS],
            entries: VecDeque::new(),
            // From 1, so that the heads' first value, 0, names no entry.
            first_seq: 1,
            latest_ms: i64::MIN,
        }
    }

    /// Sets how many readers make a campaign (at least 1) from now on.
    pub fn set_copies(&mut self, copies: usize) {
        self.settings.copies = copies.max(1);
    }

    /// Settings in force: `max_distance` capped at 63, `capacity` from 1 to 2^31.
    pub fn settings(&self) -> &CampaignSettings {
        &self.settings
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a comment and tells whether it is a campaign copy.
    ///
    /// `now_ms` is the comment's time. Entries handed out in
    /// [`Verdict::earlier`] are marked reported and not handed out again.
    ///
    /// `submission` names the submission (its idempotency key): a retry of one already
    /// recorded is judged without its first attempt and is not recorded again.
    pub fn check(
        &mut self,
        fp: Fingerprint,
        reader: &str,
        submission: &str,
        comment_id: &str,
        now_ms: i64,
    ) -> Verdict {
        self.expire(now_ms);
        let reader = hash_reader(reader);
        let key = hash_reader(submission);
        let mut matches = self.matches(&fp);
        let retried = matches.iter().any(|&s| self.entry(s).key == key);
        matches.retain(|&s| self.entry(s).key != key);
        let verdict = self.judge(&matches, reader);
        if !retried {
            self.push(fp, now_ms, reader, key, comment_id, verdict.campaign);
        }
        verdict
    }

    /// Records a comment seen by another instance, without judging it.
    ///
    /// `reported` tells whether that instance already reported it as a
    /// campaign copy. An entry already outside the window is ignored.
    pub fn insert_seen(
        &mut self,
        fp: Fingerprint,
        reader: &str,
        comment_id: &str,
        at_ms: i64,
        reported: bool,
    ) {
        self.expire(at_ms);
        if self.is_expired(at_ms) {
            return;
        }
        let (reader, key) = (hash_reader(reader), hash_reader(comment_id));
        self.push(fp, at_ms, reader, key, comment_id, reported);
    }

    /// Forgets the entries older than the window ending at `now_ms`.
    ///
    /// [`check`](Index::check) and [`insert_seen`](Index::insert_seen) call
    /// it; call it directly to free memory while no comment arrives. Time
    /// never goes back: an earlier `now_ms` than one seen before expires
    /// nothing.
    pub fn expire(&mut self, now_ms: i64) {
        self.latest_ms = self.latest_ms.max(now_ms);
        while self
            .entries
            .front()
            .is_some_and(|e| self.is_expired(e.at_ms))
        {
            self.entries.pop_front();
            self.first_seq += 1;
        }
    }

    /// Whether a time lies before the window ending at the latest time seen.
    fn is_expired(&self, at_ms: i64) -> bool {
        at_ms <= self.latest_ms.saturating_sub(self.settings.window_ms)
    }

    /// Where band `b`'s chain for a band key starts.
    fn head(b: usize, key: u32) -> usize {
        (b << CHAIN_BITS) | (key as usize & ((1 << CHAIN_BITS) - 1))
    }

    /// Sequence numbers of the entries in the window that share a band with `fp` and are
    /// within the distances of it, oldest first.
    ///
    /// The 16 chains are walked side by side, one entry of each a step: the loads of a step
    /// do not wait for one another, so their cache misses overlap (walked one after the
    /// other, every miss would wait for the one before).
    fn matches(&self, fp: &Fingerprint) -> Vec<u64> {
        let mut at: [Option<u64>; BANDS] =
            std::array::from_fn(|b| self.kept(self.heads[Index::head(b, fp.bands[b])]));
        let mut seqs = Vec::new();
        for _ in 0..self.walk_limit {
            let mut walking = false;
            for (b, cursor) in at.iter_mut().enumerate() {
                let Some(seq) = cursor.filter(|&seq| seq >= self.first_seq) else {
                    continue;
                };
                let entry = self.entry(seq);
                if is_first_shared_band(fp, entry, b) && self.is_near(fp, entry) {
                    seqs.push(seq);
                }
                *cursor = match entry.links[b].back {
                    0 => None,
                    back => seq.checked_sub(u64::from(back)),
                };
                walking = true;
            }
            if !walking {
                break;
            }
        }
        seqs.sort_unstable();
        seqs
    }

    /// The sequence number of the kept entry whose low 32 bits are `low`, if one is.
    ///
    /// Fewer than 2^31 entries are kept, so one at most has them; a head naming an entry
    /// forgotten less than 2^32 - 2^31 entries ago names none kept, and [`Index::sweep`]
    /// keeps every head that recent.
    fn kept(&self, low: u32) -> Option<u64> {
        let seq = self.first_seq + u64::from(low.wrapping_sub(self.first_seq as u32));
        (seq < self.first_seq + self.entries.len() as u64).then_some(seq)
    }

    /// Points every head naming no kept entry at the entry forgotten last, so that no head
    /// comes to name a kept entry by the wrapping of its 32 bits: called every
    /// [`SWEEP_EVERY`] entries (2^30), well before one could.
    fn sweep(&mut self) {
        let forgotten = (self.first_seq - 1) as u32;
        for i in 0..self.heads.len() {
            if self.kept(self.heads[i]).is_none() {
                self.heads[i] = forgotten;
            }
        }
    }

    /// Whether a kept entry is a near copy of `fp` in the window.
    fn is_near(&self, fp: &Fingerprint, e: &Entry) -> bool {
        let (lookup, confirm) = (fp.lookup ^ e.lookup, fp.confirm ^ e.confirm);
        lookup.count_ones() <= self.settings.max_distance
            && lookup.count_ones() + confirm.count_ones() <= self.settings.max_total
            && !self.is_expired(e.at_ms)
    }

    /// Builds the verdict for a new entry and marks the entries reported.
    fn judge(&mut self, matches: &[u64], reader: u64) -> Verdict {
        let mut readers: Vec<u64> = matches.iter().map(|&s| self.entry(s).reader).collect();
        let repeat = readers.contains(&reader);
        readers.push(reader);
        readers.sort_unstable();
        readers.dedup();
        let copies = readers.len();
        let known = matches.iter().any(|&s| self.entry(s).reported);
        let campaign = copies >= self.settings.copies || known;
        let earlier = if campaign {
            self.report(matches)
        } else {
            Vec::new()
        };
        Verdict {
            copies,
            earlier,
            campaign,
            repeat,
        }
    }

    /// Marks entries reported; returns the ids of those not reported before.
    fn report(&mut self, seqs: &[u64]) -> Vec<String> {
        let mut ids = Vec::new();
        for &seq in seqs {
            let entry = self.entry_mut(seq);
            if !entry.reported {
                entry.reported = true;
                ids.push(entry.comment_id.to_string());
            }
        }
        ids
    }

    /// Appends an entry at the head of its chains, forgetting the oldest one if the index is
    /// full.
    fn push(
        &mut self,
        fp: Fingerprint,
        at_ms: i64,
        reader: u64,
        key: u64,
        id: &str,
        reported: bool,
    ) {
        if self.entries.len() >= self.settings.capacity {
            self.entries.pop_front();
            self.first_seq += 1;
        }
        let seq = self.first_seq + self.entries.len() as u64;
        if seq.is_multiple_of(self.sweep_every) {
            self.sweep();
        }
        let links = std::array::from_fn(|b| {
            let head = Index::head(b, fp.bands[b]);
            let back = self.kept(self.heads[head]).map_or(0, |older| seq - older);
            self.heads[head] = seq as u32;
            Link {
                band: fp.bands[b],
                back: u32::try_from(back).unwrap_or(0),
            }
        });
        self.entries.push_back(Entry {
            lookup: fp.lookup,
            confirm: fp.confirm,
            links,
            at_ms,
            reader,
            key,
            comment_id: id.into(),
            reported,
        });
    }

    /// The entry with a sequence number known to be kept.
    fn entry(&self, seq: u64) -> &Entry {
        &self.entries[(seq - self.first_seq) as usize]
    }

    /// The entry with a sequence number known to be kept, for marking.
    fn entry_mut(&mut self, seq: u64) -> &mut Entry {
        &mut self.entries[(seq - self.first_seq) as usize]
    }
}

/// Whether band `b` is the first band `fp` and an entry share: an entry sharing an earlier
/// one was found in that band's chain, so each entry is found once.
fn is_first_shared_band(fp: &Fingerprint, e: &Entry, b: usize) -> bool {
    let earlier = fp.bands[..b].iter().zip(&e.links[..b]);
    fp.bands[b] == e.links[b].band && !earlier.into_iter().any(|(x, l)| *x == l.band)
}

/// Seed of the reader hasher.
const READER_SEED: u64 = 0x7265_6164_6572_7321;

/// Hashes a reader identity; only equality of readers matters.
fn hash_reader(reader: &str) -> u64 {
    FixedState::with_seed(READER_SEED).hash_one(reader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Instant;

    /// A 16-word Vietnamese comment.
    const TEXT: &str =
        "Ứng viên này đã hứa giảm thuế cho toàn bộ người lao động trong năm tới, thật đáng tin!";

    fn fp(text: &str) -> Fingerprint {
        fingerprint(text, 8).expect("long enough")
    }

    fn small_index() -> Index {
        Index::new(CampaignSettings {
            window_ms: 60_000,
            capacity: 1000,
            ..CampaignSettings::default()
        })
    }

    /// A fingerprint of random halves and bands; the bands' chains are among the first
    /// `chains` of each band, so that chains hold several band keys.
    fn random_fp(rng: &mut fastrand::Rng, chains: u32) -> Fingerprint {
        Fingerprint {
            lookup: rng.u64(..),
            confirm: rng.u64(..),
            bands: std::array::from_fn(|_| (rng.u32(..) & !0xFFFF) | rng.u32(..chains)),
        }
    }

    /// A fingerprint up to `flips` bits from `fp` in each half, with `fresh` of its bands
    /// drawn anew.
    fn near_fp(rng: &mut fastrand::Rng, fp: Fingerprint, flips: u32, fresh: usize) -> Fingerprint {
        let mut near = fp;
        for _ in 0..rng.u32(0..=flips) {
            near.lookup ^= 1 << rng.u32(0..64);
            near.confirm ^= 1 << rng.u32(0..64);
        }
        for _ in 0..fresh {
            near.bands[rng.usize(..BANDS)] = rng.u32(..);
        }
        near
    }

    #[test]
    fn normalise_folds_case_marks_and_invisible_characters() {
        assert_eq!(
            normalise("  Đường   PHỐ\u{200B}Huế!!  😂 số 12,5 "),
            "duong phohue so 12 5"
        );
        assert_eq!(
            normalise("ca\u{200D}fe\u{0301} na\u{00EF}ve\u{202E}"),
            "cafe naive"
        );
        assert_eq!(normalise("Bài viết hay quá."), "bai viet hay qua");
        assert_eq!(normalise("…!? 👍"), "");
    }

    #[test]
    fn short_texts_have_no_fingerprint() {
        assert_eq!(fingerprint("Bài viết hay quá 👍👍", 8), None);
        assert_eq!(fingerprint("một hai ba bốn năm sáu bảy", 8), None);
        assert!(fingerprint("một hai ba bốn năm sáu bảy tám", 8).is_some());
        assert_eq!(fingerprint("", 0), None);
    }

    #[test]
    fn changes_of_form_keep_the_fingerprint() {
        let base = fp(TEXT);
        let forms = [
            "ỨNG VIÊN NÀY ĐÃ HỨA GIẢM THUẾ CHO TOÀN BỘ NGƯỜI LAO ĐỘNG TRONG NĂM TỚI THẬT ĐÁNG TIN",
            "Ung vien nay da hua giam thue cho toan bo nguoi lao dong trong nam toi, that dang tin!",
            "Ứng\u{200B} viên này đã  hứa giảm\tthuế cho toàn bộ người lao động trong năm tới 😂😂 thật đáng tin",
            "năm tới ứng viên này đã hứa giảm thuế cho toàn bộ người lao động trong, thật đáng tin!",
        ];
        for form in forms {
            assert_eq!(fp(form), base, "{form}");
        }
    }

    #[test]
    fn light_edits_stay_near_and_other_texts_far() {
        let base = fp(TEXT);
        let edited = fp(
            "Ứng viên này đã hứa giảm thuế cho toàn bộ người lao động ngay trong năm tới, thật đáng tin!",
        );
        let other = fp(
            "Đội tuyển chơi quá tệ trong hiệp hai, huấn luyện viên cần thay người sớm hơn nhiều.",
        );
        assert!(base.distance(edited) <= 8, "{}", base.distance(edited));
        assert!(base.distance(other) > 16, "{}", base.distance(other));
    }

    #[test]
    fn fingerprints_are_stable_across_builds() {
        // Instances share fingerprints: a change here breaks mixed deployments.
        let fp = fp(TEXT);
        assert_eq!((fp.lookup, fp.confirm), STABLE_HALVES);
        assert_eq!(fp.bands_hex(), STABLE_BANDS);
        assert_eq!(Fingerprint::parse_bands(STABLE_BANDS), Some(fp.bands));
    }

    const STABLE_HALVES: (u64, u64) = (0x5c02_0b4a_bcbb_35ee, 0xb15e_6a41_ecf3_63af);
    const STABLE_BANDS: &str = "fc07ea7092ebcddbfc6faa23d9f025f96fd8906aaedafec7b4cf4de93b778482\
                                ff832aec7d5bd6c52567d2aedf95430bb108dbfab8e12cccd8a6da4d0fd4e854";

    #[test]
    fn band_keys_in_hex_refuse_what_is_not_16_keys() {
        let bands = fp(TEXT).bands_hex();
        assert_eq!(bands.len(), 128);
        assert_eq!(Fingerprint::parse_bands(&bands[1..]), None);
        assert_eq!(Fingerprint::parse_bands(&format!("{bands}0")), None);
        assert_eq!(Fingerprint::parse_bands(&bands.replacen('0', "g", 1)), None);
        assert_eq!(Fingerprint::parse_bands(&"é".repeat(64)), None);
    }

    #[test]
    fn third_reader_makes_a_campaign_and_earlier_ids_are_handed_out_once() {
        let mut index = small_index();
        let a = index.check(fp(TEXT), "a@example.com", "c1", "c1", 1000);
        assert_eq!(
            a,
            Verdict {
                copies: 1,
                ..Verdict::default()
            }
        );
        let b = index.check(fp(&TEXT.to_uppercase()), "b@example.com", "c2", "c2", 2000);
        assert_eq!((b.copies, b.campaign, b.earlier.len()), (2, false, 0));
        let c = index.check(
            fp(&TEXT.replace("thật", "rất")),
            "c@example.com",
            "c3",
            "c3",
            3000,
        );
        assert_eq!(
            c,
            Verdict {
                copies: 3,
                earlier: vec!["c1".into(), "c2".into()],
                campaign: true,
                repeat: false
            }
        );
        let d = index.check(fp(TEXT), "d@example.com", "c4", "c4", 4000);
        assert_eq!(
            d,
            Verdict {
                copies: 4,
                earlier: vec![],
                campaign: true,
                repeat: false
            }
        );
    }

    #[test]
    fn a_near_copy_of_a_reported_entry_is_a_campaign_copy() {
        let mut index = Index::new(CampaignSettings {
            copies: 2,
            ..CampaignSettings::default()
        });
        index.check(fp(TEXT), "a", "c1", "c1", 0);
        assert!(index.check(fp(TEXT), "b", "c2", "c2", 1).campaign);
        let mut seen = Index::new(CampaignSettings::default());
        seen.insert_seen(fp(TEXT), "a", "c1", 0, true);
        let v = seen.check(fp(TEXT), "b", "c2", "c2", 1);
        assert_eq!(
            v,
            Verdict {
                copies: 2,
                earlier: vec![],
                campaign: true,
                repeat: false
            }
        );
    }

    #[test]
    fn a_retry_is_judged_without_its_first_attempt_and_recorded_once() {
        let mut index = small_index();
        assert!(!index.check(fp(TEXT), "a", "key-1", "c1", 0).repeat);
        let retry = index.check(fp(TEXT), "a", "key-1", "c1b", 1);
        assert_eq!(
            (retry.repeat, retry.copies),
            (false, 1),
            "a retry is no repeat"
        );
        assert_eq!(index.len(), 1);
        assert!(
            index.check(fp(TEXT), "a", "key-2", "c2", 2).repeat,
            "a new post is"
        );
    }

    #[test]
    fn same_reader_repeats_are_flagged_and_count_once() {
        let mut index = small_index();
        assert!(!index.check(fp(TEXT), "a", "c1", "c1", 0).repeat);
        let again = index.check(fp(TEXT), "a", "c2", "c2", 1);
        assert_eq!(
            (again.copies, again.repeat, again.campaign),
            (1, true, false)
        );
        index.check(fp(TEXT), "b", "c3", "c3", 2);
        let third = index.check(fp(TEXT), "a", "c4", "c4", 3);
        assert_eq!(
            (third.copies, third.repeat, third.campaign),
            (2, true, false)
        );
        let campaign = index.check(fp(TEXT), "c", "c5", "c5", 4);
        assert_eq!(campaign.earlier, ["c1", "c2", "c3", "c4"]);
    }

    #[test]
    fn expired_entries_do_not_count() {
        let mut index = small_index();
        index.check(fp(TEXT), "a", "c1", "c1", 0);
        index.check(fp(TEXT), "b", "c2", "c2", 30_000);
        let v = index.check(fp(TEXT), "c", "c3", "c3", 60_000);
        assert_eq!((v.copies, v.campaign), (2, false));
        assert_eq!(index.len(), 2);
        index.expire(200_000);
        assert!(index.is_empty());
        assert!(
            index.matches(&fp(TEXT)).is_empty(),
            "chains lead to no forgotten entry"
        );
        index.insert_seen(fp(TEXT), "d", "c4", 100_000, false);
        assert!(
            index.is_empty(),
            "an entry older than the window is ignored"
        );
    }

    #[test]
    fn capacity_bounds_memory() {
        let settings = CampaignSettings {
            capacity: 500,
            ..CampaignSettings::default()
        };
        let mut index = Index::new(settings);
        let mut rng = fastrand::Rng::with_seed(3);
        let fps: Vec<Fingerprint> = (0..5000).map(|_| random_fp(&mut rng, 16)).collect();
        for (i, &fp) in fps.iter().enumerate() {
            let id = format!("c{i}");
            index.check(fp, &format!("r{i}"), &id, &id, i as i64);
            assert!(index.len() <= 500);
        }
        assert_eq!(index.len(), 500);
        assert!(index.matches(&fps[4499]).is_empty(), "forgotten");
        assert_eq!(index.matches(&fps[4500]), vec![4501]);
        assert_eq!(index.matches(&fps[4999]), vec![5000]);
    }

    #[test]
    fn sequence_numbers_past_32_bits_keep_lookups_exact() {
        let settings = CampaignSettings {
            capacity: 300,
            ..CampaignSettings::default()
        };
        let mut index = Index::new(settings);
        // As after 2^32 - 1,000 comments, with the heads swept every 512.
        index.first_seq = (1 << 32) - 1000;
        index.sweep_every = 512;
        let mut rng = fastrand::Rng::with_seed(4);
        let fps: Vec<Fingerprint> = (0..3000).map(|_| random_fp(&mut rng, 64)).collect();
        for (i, &fp) in fps.iter().enumerate() {
            let id = format!("c{i}");
            let v = index.check(fp, &format!("r{i}"), &id, &id, i as i64);
            assert_eq!(v.copies, 1, "a random fingerprint matches nothing ({i})");
            if i >= 300 {
                assert!(index.matches(&fps[i - 300]).is_empty(), "forgotten ({i})");
            }
            let newest = index.first_seq + index.len() as u64 - 1;
            assert_eq!(index.matches(&fp), vec![newest], "kept ({i})");
        }
        assert!(index.first_seq > 1 << 32);
    }

    #[test]
    fn a_flood_of_copies_stays_a_campaign_at_bounded_cost() {
        let mut index = Index::new(CampaignSettings::default());
        for i in 0..5000 {
            index.check(
                fp(TEXT),
                &format!("r{i}"),
                &format!("c{i}"),
                &format!("c{i}"),
                i,
            );
        }
        let v = index.check(fp(TEXT), "last", "c-last", "c-last", 5000);
        assert!(v.campaign && v.earlier.is_empty());
        assert!((3..1000).contains(&v.copies), "{} copies seen", v.copies);
    }

    #[test]
    fn index_finds_exactly_the_near_fingerprints_sharing_a_band() {
        let mut rng = fastrand::Rng::with_seed(5);
        for (max_distance, max_total) in [(0, 0), (3, 5), (10, 18), (13, u32::MAX)] {
            let settings = CampaignSettings {
                max_distance,
                max_total,
                copies: usize::MAX,
                ..CampaignSettings::default()
            };
            let mut index = Index::new(settings);
            let mut kept: Vec<Fingerprint> = Vec::new();
            for i in 0..3000 {
                let fp = if kept.is_empty() || rng.bool() {
                    random_fp(&mut rng, 1024)
                } else {
                    let base = kept[rng.usize(..kept.len())];
                    let fresh = rng.usize(..=BANDS);
                    near_fp(&mut rng, base, max_distance / 2 + 2, fresh)
                };
                let near = |k: &&Fingerprint| {
                    k.distance(fp) <= max_distance
                        && k.total_distance(fp) <= max_total
                        && k.shares_band(&fp)
                };
                let expected = kept.iter().filter(near).count();
                let id = format!("r{i}");
                let v = index.check(fp, &id, &id, "c", 0);
                assert_eq!(
                    v.copies,
                    expected + 1,
                    "d={max_distance} t={max_total} at {i}"
                );
                kept.push(fp);
            }
        }
    }

    #[test]
    #[ignore = "timing: cargo test --release check_timing -- --ignored --nocapture"]
    fn check_timing_with_100000_entries() {
        let mode = if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        };
        println!(
            "fingerprint of a 40-word comment: {:.2} µs ({mode})",
            time_fingerprint()
        );
        let settings = CampaignSettings {
            capacity: 100_000,
            ..CampaignSettings::default()
        };
        let us = time_checks(Index::new(settings.clone()), 0);
        println!("check with 100,000 entries: {us:.2} µs ({mode})");
        let us = time_checks(Index::new(settings), 20_000);
        println!("check with 100,000 entries, 20,000 of them one text: {us:.2} µs ({mode})");
    }

    /// Microseconds per fingerprint of a 40-word Vietnamese comment.
    fn time_fingerprint() -> f64 {
        let words: Vec<&str> = TEXT.split_whitespace().cycle().take(40).collect();
        let text = words.join(" ");
        let rounds = 20_000;
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(fingerprint(std::hint::black_box(&text), 8));
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    }

    /// Microseconds per check in an index kept at 100,000 entries, the newest
    /// `flood` of them with one fingerprint; a third of the checks are near copies.
    ///
    /// Each check adds an entry and so forgets the oldest.
    fn time_checks(mut index: Index, flood: usize) -> f64 {
        let mut rng = fastrand::Rng::with_seed(9);
        let flooded = random_fp(&mut rng, 1 << 16);
        let kept: Vec<Fingerprint> = (0..100_000)
            .map(|i| {
                if i < 100_000 - flood {
                    random_fp(&mut rng, 1 << 16)
                } else {
                    flooded
                }
            })
            .collect();
        for (i, &fp) in kept.iter().enumerate() {
            let id = format!("c{i}");
            index.check(fp, &format!("r{i}"), &id, &id, 0);
        }
        let queries: Vec<Fingerprint> = (0..30_000)
            .map(|i| {
                if i % 3 == 0 {
                    let base = kept[rng.usize(..kept.len())];
                    near_fp(&mut rng, base, 4, 8)
                } else {
                    random_fp(&mut rng, 1 << 16)
                }
            })
            .collect();
        let ids: Vec<String> = (0..queries.len()).map(|i| format!("q{i}")).collect();
        let start = Instant::now();
        for (fp, id) in queries.iter().zip(&ids) {
            std::hint::black_box(index.check(*fp, id, id, id, 1));
        }
        start.elapsed().as_secs_f64() * 1e6 / queries.len() as f64
    }

    /// One comment of an evaluation, with the corpus source it comes from.
    #[derive(Clone)]
    struct Sample {
        text: String,
        source: String,
    }

    /// Distinct texts for false matches, and edited copies of some of them.
    struct Dataset {
        distinct: Vec<Sample>,
        families: Vec<Family>,
    }

    /// A base text and its edited copies, with the edits made.
    struct Family {
        base: String,
        copies: Vec<(String, Vec<edits::Op>)>,
    }

    impl Dataset {
        /// The first `bases` distinct texts get two copies with `edits` edits each.
        fn new(
            distinct: Vec<Sample>,
            bases: usize,
            edits: usize,
            editor: &mut edits::Editor,
        ) -> Dataset {
            let family = |base: &Sample| Family {
                base: base.text.clone(),
                copies: (0..2).map(|_| editor.copy(&base.text, edits)).collect(),
            };
            let families = distinct[..bases].iter().map(family).collect();
            Dataset { distinct, families }
        }
    }

    /// Samples with distinct normalised texts of at least `min_words` words, shuffled.
    fn distinct_samples(samples: Vec<Sample>, min_words: usize, seed: u64) -> Vec<Sample> {
        let mut seen = HashSet::new();
        let keep =
            |s: &Sample| edits::word_count(&s.text) >= min_words && seen.insert(normalise(&s.text));
        let mut out: Vec<Sample> = samples.into_iter().filter(keep).collect();
        fastrand::Rng::with_seed(seed).shuffle(&mut out);
        out
    }

    /// 10,000 distinct synthetic comments; the first 1000 have copies.
    fn synthetic_dataset(seed: u64, edits: usize) -> Dataset {
        let mut rng = fastrand::Rng::with_seed(seed);
        let vocab = synthetic::syllables(&mut rng, 3000);
        // Exponent 0.8 puts the commonest syllable near 5 %, as in Vietnamese text.
        let zipf = synthetic::Zipf::new(vocab.len(), 0.8);
        let comment = |rng: &mut fastrand::Rng| synthetic::comment(rng, &vocab, &zipf);
        let samples = (0..10_500).map(|_| Sample {
            text: comment(&mut rng),
            source: "synthetic".into(),
        });
        let mut distinct = distinct_samples(samples.collect(), 8, seed);
        distinct.truncate(10_000);
        let mut editor = edits::Editor { rng, vocab };
        Dataset::new(distinct, 1000, edits, &mut editor)
    }

    /// 10,000 distinct corpus comments; the first 2000 have copies.
    fn corpus_dataset(samples: Vec<Sample>, min_words: usize, seed: u64, edits: usize) -> Dataset {
        let mut all = distinct_samples(samples, min_words, seed);
        assert!(all.len() > 20_000, "corpus too small: {}", all.len());
        let words = |s: &Sample| {
            s.text
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let vocab: Vec<String> = all[10_000..20_000].iter().flat_map(words).collect();
        all.truncate(10_000);
        let mut editor = edits::Editor {
            rng: fastrand::Rng::with_seed(seed ^ 1),
            vocab,
        };
        Dataset::new(all, 2000, edits, &mut editor)
    }

    /// Found and total copies for one edit kind or base length.
    type Tally = std::collections::BTreeMap<String, (usize, usize)>;

    /// Figures of one evaluation.
    #[derive(Default)]
    struct Figures {
        /// Edited copies made.
        copies: usize,
        /// Copies within the distances of their base or of an earlier copy.
        found: usize,
        /// Of those, copies sharing a band with one within the distances (found by a lookup).
        found_by_bands: usize,
        /// Copies with no fingerprint: edits took them below `min_words`.
        too_short: usize,
        /// Families whose second copy, the third reader, made a campaign in the index.
        campaigns: usize,
        families: usize,
        /// Pairs of distinct texts within the distance: (i, j, distance).
        close: Vec<(usize, usize, u32)>,
        /// Distinct texts that the index judged campaign copies.
        false_campaigns: usize,
        by_edit: Tally,
        by_length: Tally,
    }

    impl Figures {
        /// Share of copies a lookup finds.
        fn recall(&self) -> f64 {
            self.found_by_bands as f64 / self.copies as f64
        }

        fn print(&self, name: &str) {
            println!(
                "{name}: recall {:.4} ({} of {} copies, {} within the distances; {} fell below \
                 min_words), campaigns {} of {} families; among distinct texts {} pairs matched, \
                 {} campaign copies",
                self.recall(),
                self.found_by_bands,
                self.copies,
                self.found,
                self.too_short,
                self.campaigns,
                self.families,
                self.close.len(),
                self.false_campaigns
            );
            for (label, tally) in [("edit", &self.by_edit), ("base length", &self.by_length)] {
                let cells: Vec<String> = tally
                    .iter()
                    .map(|(k, (f, n))| format!("{k} {:.3}", *f as f64 / *n as f64))
                    .collect();
                println!("  recall by {label}: {}", cells.join(", "));
            }
        }
    }

    type Fingerprinter<'a> = &'a dyn Fn(&str) -> Option<Fingerprint>;

    /// Runs the distinct texts, then the copies, through one index.
    fn evaluate(
        data: &Dataset,
        settings: &CampaignSettings,
        fingerprinter: Fingerprinter,
    ) -> Figures {
        let wide = CampaignSettings {
            window_ms: i64::MAX,
            capacity: 1 << 20,
            ..settings.clone()
        };
        let mut index = Index::new(wide);
        let prints: Vec<Option<Fingerprint>> = data
            .distinct
            .iter()
            .map(|s| fingerprinter(&s.text))
            .collect();
        let (mut matched, mut false_campaigns) = (0, 0);
        for (i, fp) in prints.iter().enumerate() {
            let Some(fp) = fp else { continue };
            let verdict = index.check(*fp, &format!("d{i}"), &format!("d{i}"), &format!("d{i}"), 0);
            matched += verdict.copies - 1;
            false_campaigns += usize::from(verdict.campaign);
        }
        let close = close_pairs(&prints, settings);
        let mut figures = Figures {
            close,
            false_campaigns,
            ..Figures::default()
        };
        assert_eq!(
            matched,
            figures.close.len(),
            "the index finds what brute force finds"
        );
        for (f, family) in data.families.iter().enumerate() {
            add_family(&mut figures, &mut index, f, family, fingerprinter);
        }
        figures
    }

    /// Checks the copies of one family and tallies them.
    fn add_family(
        figures: &mut Figures,
        index: &mut Index,
        f: usize,
        family: &Family,
        fingerprinter: Fingerprinter,
    ) {
        let (d, t) = (index.settings().max_distance, index.settings().max_total);
        let mut earlier = vec![fingerprinter(&family.base)];
        let length = length_bucket(edits::word_count(&family.base));
        figures.families += 1;
        for (k, (text, ops)) in family.copies.iter().enumerate() {
            let copy = fingerprinter(text);
            let near =
                |e: &Fingerprint, c: Fingerprint| e.distance(c) <= d && e.total_distance(c) <= t;
            let found = copy.is_some_and(|c| earlier.iter().flatten().any(|e| near(e, c)));
            let banded = |c: Fingerprint| {
                let mut near = earlier.iter().flatten().filter(|e| near(e, c));
                near.any(|e| e.shares_band(&c))
            };
            figures.found_by_bands += usize::from(copy.is_some_and(banded));
            if let Some(c) = copy {
                let v = index.check(c, &format!("f{f}-{k}"), &format!("f{f}-{k}"), "copy", 0);
                figures.campaigns += usize::from(k == 1 && v.campaign);
            }
            figures.copies += 1;
            figures.found += usize::from(found);
            figures.too_short += usize::from(copy.is_none());
            for key in ops
                .iter()
                .map(|op| format!("{op:?}"))
                .chain([length.clone()])
            {
                let tally = if key.starts_with(char::is_numeric) {
                    &mut figures.by_length
                } else {
                    &mut figures.by_edit
                };
                let cell = tally.entry(key).or_default();
                *cell = (cell.0 + usize::from(found), cell.1 + 1);
            }
            earlier.push(copy);
        }
    }

    fn length_bucket(words: usize) -> String {
        let bounds = [(8, 11), (12, 19), (20, 39)];
        let (low, high) = bounds
            .into_iter()
            .find(|&(_, high)| words <= high)
            .unwrap_or((40, usize::MAX));
        if high == usize::MAX {
            format!("{low}+")
        } else {
            format!("{low}-{high}")
        }
    }

    /// Pairs (i, j, distance) of fingerprints within the distances and sharing a band, by
    /// brute force.
    fn close_pairs(
        prints: &[Option<Fingerprint>],
        settings: &CampaignSettings,
    ) -> Vec<(usize, usize, u32)> {
        let mut out = Vec::new();
        for (i, a) in prints.iter().enumerate() {
            let Some(a) = a else { continue };
            for (j, b) in prints.iter().enumerate().skip(i + 1) {
                let Some(b) = b else { continue };
                if a.distance(*b) <= settings.max_distance
                    && a.total_distance(*b) <= settings.max_total
                    && a.shares_band(b)
                {
                    out.push((i, j, a.distance(*b)));
                }
            }
        }
        out
    }

    /// Jaccard similarity of the normalised word sets of two texts.
    fn word_jaccard(a: &str, b: &str) -> f64 {
        let set = |t: &str| {
            normalise(t)
                .split(' ')
                .map(str::to_string)
                .collect::<HashSet<_>>()
        };
        let (a, b) = (set(a), set(b));
        a.intersection(&b).count() as f64 / a.union(&b).count() as f64
    }

    #[test]
    #[ignore]
    fn synthetic_seeds() {
        for (d, t) in [(7, 14), (7, 16), (8, 16), (9, 18), (10, 18), (11, 20)] {
            let (mut worst, mut pairs) = (1.0f64, 0);
            for seed in 1..=8 {
                let settings = CampaignSettings {
                    max_distance: d,
                    max_total: t,
                    ..CampaignSettings::default()
                };
                let fingerprinter = |x: &str| fingerprint(x, settings.min_words);
                let f = evaluate(&synthetic_dataset(seed, 1), &settings, &fingerprinter);
                worst = worst.min(f.recall());
                pairs += f.close.len();
            }
            println!("SEED d={d} t={t} worst recall={worst:.4} pairs over 8 seeds={pairs}");
        }
    }

    #[test]
    fn band_lookup_loses_no_copy() {
        let settings = CampaignSettings::default();
        let fingerprinter = |t: &str| fingerprint(t, settings.min_words);
        for seed in [3, 7] {
            let figures = evaluate(&synthetic_dataset(seed, 1), &settings, &fingerprinter);
            assert!(figures.found > 1900, "{} found", figures.found);
            assert_eq!(figures.found_by_bands, figures.found, "seed {seed}");
        }
    }

    #[test]
    fn synthetic_recall_and_false_matches() {
        let settings = CampaignSettings::default();
        let fingerprinter = |t: &str| fingerprint(t, settings.min_words);
        let figures = evaluate(&synthetic_dataset(7, 1), &settings, &fingerprinter);
        figures.print("synthetic, one edit per copy");
        assert!(
            figures.close.is_empty(),
            "false matches: {}",
            figures.close.len()
        );
        assert!(figures.recall() >= 0.95, "recall {:.4}", figures.recall());
        evaluate(&synthetic_dataset(7, 2), &settings, &fingerprinter)
            .print("synthetic, two edits per copy");
    }

    #[test]
    #[ignore = "evaluation on the labeled corpus: cargo test --release --lib corpus_recall -- --ignored --nocapture"]
    fn corpus_recall_and_false_matches() {
        let Some(lines) = corpus::texts() else {
            println!("skipped: no corpus at {}", corpus::dir().display());
            return;
        };
        let samples: Vec<Sample> = lines
            .into_iter()
            .map(|(text, source)| Sample { text, source })
            .collect();
        let settings = CampaignSettings::default();
        let fingerprinter = |t: &str| fingerprint(t, settings.min_words);
        let data = corpus_dataset(samples.clone(), settings.min_words, 11, 1);
        let figures = evaluate(&data, &settings, &fingerprinter);
        figures.print("corpus, one edit per copy");
        let unlike = describe_close_pairs(&data, &figures.close);
        let two = evaluate(
            &corpus_dataset(samples, settings.min_words, 11, 2),
            &settings,
            &fingerprinter,
        );
        two.print("corpus, two edits per copy");
        assert!(figures.recall() >= 0.90, "recall {:.4}", figures.recall());
        assert!(
            unlike <= 20,
            "{unlike} matched pairs share less than half their words"
        );
    }

    /// Prints how alike the matched distinct texts are; returns how many share less than half their words.
    ///
    /// Their texts are printed only with CAMPAIGN_SHOW_PAIRS set.
    fn describe_close_pairs(data: &Dataset, close: &[(usize, usize, u32)]) -> usize {
        let show = std::env::var_os("CAMPAIGN_SHOW_PAIRS").is_some();
        let mut bands = [0usize; 3];
        let mut sources = std::collections::BTreeMap::<String, usize>::new();
        let mut least: f64 = 1.0;
        for &(i, j, dist) in close {
            let (a, b) = (&data.distinct[i], &data.distinct[j]);
            let jaccard = word_jaccard(&a.text, &b.text);
            least = least.min(jaccard);
            bands[usize::from(jaccard >= 0.5) + usize::from(jaccard >= 0.8)] += 1;
            let pair = format!(
                "{}/{}",
                (&a.source).min(&b.source),
                (&a.source).max(&b.source)
            );
            *sources.entry(pair.clone()).or_default() += 1;
            if show {
                println!(
                    "--- distance {dist}, word Jaccard {jaccard:.2}, {pair}\n  {}\n  {}",
                    a.text, b.text
                );
            }
        }
        println!(
            "  matched distinct pairs by word Jaccard: <0.5 {}, 0.5-0.8 {}, >=0.8 {}; least {least:.2}; by source {sources:?}",
            bands[0], bands[1], bands[2]
        );
        bands[0]
    }

    type Sketch = dyn Fn(&str) -> Option<Fingerprint>;

    /// Tuning table: recall and matched distinct pairs per sketch, distance and min_words.
    ///
    /// `cargo test --release tuning_table -- --ignored --nocapture`; MIN_WORDS and
    /// EDITS (1 or 2) change the setting.
    #[test]
    #[ignore]
    fn tuning_table() {
        let env = |k: &str, default: usize| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let (min_words, edits) = (env("MIN_WORDS", 8), env("EDITS", 1));
        let sketches: [(&str, Box<Sketch>); 1] = [(
            "minhash words",
            Box::new(move |t: &str| fingerprint(t, min_words)),
        )];
        let mut sets = vec![("synthetic", synthetic_dataset(7, edits))];
        if let Some(lines) = corpus::texts() {
            let samples = lines
                .into_iter()
                .map(|(text, source)| Sample { text, source })
                .collect();
            sets.push(("corpus", corpus_dataset(samples, min_words, 11, edits)));
        }
        for (set, data) in &sets {
            for (name, sketch) in &sketches {
                for d in 4..=12 {
                    let settings = CampaignSettings {
                        max_distance: d,
                        min_words,
                        ..CampaignSettings::default()
                    };
                    let f = evaluate(data, &settings, sketch.as_ref());
                    let unlike = f.close.iter().filter(|c| {
                        word_jaccard(&data.distinct[c.0].text, &data.distinct[c.1].text) < 0.5
                    });
                    println!(
                        "{set:9} {name:20} min_words {min_words} edits {edits} d {d:2}: recall {:.4} \
                         pairs {} (Jaccard < 0.5: {}) campaign copies {}",
                        f.recall(),
                        f.close.len(),
                        unlike.count(),
                        f.false_campaigns
                    );
                }
            }
        }
    }

    mod edits {
        use super::super::normalise;
        use unicode_normalization::UnicodeNormalization;
        use unicode_normalization::char::is_combining_mark;

        /// Kinds of light edit.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Op {
            /// Replace one or two words by vocabulary words.
            Change,
            /// Insert one or two vocabulary words.
            Insert,
            /// Delete one or two words.
            Delete,
            /// Swap two adjacent words.
            Swap,
            /// Remove all punctuation and symbols, or add one mark.
            Punctuation,
            /// Add one to three emoji after words.
            Emoji,
            /// Upper-case, lower-case or capitalise every word.
            Case,
            /// Strip diacritics from the whole text or from one to three words.
            Diacritics,
            /// Put a greeting first.
            Greeting,
            /// Add a trailing phrase.
            Trailer,
            /// Put zero-width characters inside or after some words.
            ZeroWidth,
            /// Double spaces, tabs or line breaks between words.
            Spaces,
        }

        /// Every kind of edit, drawn uniformly.
        pub const OPS: [Op; 12] = [
            Op::Change,
            Op::Insert,
            Op::Delete,
            Op::Swap,
            Op::Punctuation,
            Op::Emoji,
            Op::Case,
            Op::Diacritics,
            Op::Greeting,
            Op::Trailer,
            Op::ZeroWidth,
            Op::Spaces,
        ];

        /// Greetings of two to four words.
        const GREETINGS: &[&str] = &[
            "Chào mọi người,",
            "Mọi người ơi,",
            "Xin chào cả nhà!",
            "Ad ơi cho hỏi,",
            "Theo mình thì",
            "Hi everyone,",
            "Hello guys!",
            "Honestly,",
        ];

        /// Trailing phrases of two to five words.
        const TRAILERS: &[&str] = &[
            "Mọi người thấy sao?",
            "Share cho mọi người biết.",
            "Đúng không các bạn?",
            "Like và share nhé!",
            "Cảm ơn ad.",
            "Just my opinion.",
            "What do you think?",
            "Thanks for reading!",
        ];

        /// Emoji added by [`Op::Emoji`].
        const EMOJI: &[&str] = &["😂", "👍", "❤️", "🤣", "😡", "🙏", "🔥", "👉👉"];

        /// Invisible characters added by [`Op::ZeroWidth`].
        const ZERO_WIDTH: &[char] = &['\u{200B}', '\u{200C}', '\u{200D}', '\u{FEFF}', '\u{2060}'];

        /// Makes edited copies of texts; replacement words come from `vocab`.
        pub struct Editor {
            pub rng: fastrand::Rng,
            pub vocab: Vec<String>,
        }

        impl Editor {
            /// A copy of `text` with `count` distinct random edits; returns the edits too.
            pub fn copy(&mut self, text: &str, count: usize) -> (String, Vec<Op>) {
                let mut ops = Vec::with_capacity(count);
                while ops.len() < count {
                    let op = OPS[self.rng.usize(..OPS.len())];
                    if !ops.contains(&op) {
                        ops.push(op);
                    }
                }
                let edited = ops
                    .iter()
                    .fold(text.to_string(), |t, &op| self.apply(op, &t));
                (edited, ops)
            }

            /// Applies one edit.
            pub fn apply(&mut self, op: Op, text: &str) -> String {
                let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
                match op {
                    Op::Change => self.change(&mut words),
                    Op::Insert => self.insert(&mut words),
                    Op::Delete => self.delete(&mut words),
                    Op::Swap => self.swap(&mut words),
                    Op::Punctuation => return self.punctuation(text),
                    Op::Emoji => self.emoji(&mut words),
                    Op::Case => return self.case(text),
                    Op::Diacritics => self.diacritics(&mut words),
                    Op::Greeting => words.insert(0, self.pick(GREETINGS).to_string()),
                    Op::Trailer => words.push(self.pick(TRAILERS).to_string()),
                    Op::ZeroWidth => self.zero_width(&mut words),
                    Op::Spaces => return self.spaces(&words),
                }
                words.join(" ")
            }

            /// A random item of a list.
            fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
                list[self.rng.usize(..list.len())]
            }

            /// A random vocabulary word.
            fn word(&mut self) -> String {
                self.vocab[self.rng.usize(..self.vocab.len())].clone()
            }

            fn change(&mut self, words: &mut [String]) {
                for _ in 0..self.rng.usize(1..=2) {
                    let i = self.rng.usize(..words.len());
                    words[i] = self.word();
                }
            }

            fn insert(&mut self, words: &mut Vec<String>) {
                for _ in 0..self.rng.usize(1..=2) {
                    let i = self.rng.usize(..=words.len());
                    let w = self.word();
                    words.insert(i, w);
                }
            }

            fn delete(&mut self, words: &mut Vec<String>) {
                for _ in 0..self.rng.usize(1..=2) {
                    if words.len() > 1 {
                        words.remove(self.rng.usize(..words.len()));
                    }
                }
            }

            fn swap(&mut self, words: &mut [String]) {
                if words.len() > 1 {
                    let i = self.rng.usize(..words.len() - 1);
                    words.swap(i, i + 1);
                }
            }

            /// Removes all punctuation and symbols, or adds some.
            fn punctuation(&mut self, text: &str) -> String {
                if self.rng.bool() {
                    return text
                        .chars()
                        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
                        .collect();
                }
                let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
                let i = self.rng.usize(..words.len());
                let mark = self.pick(&[",", "!!!", "...", "?", " -", ":)", "\"", "."]);
                words[i].push_str(mark);
                words.join(" ")
            }

            fn emoji(&mut self, words: &mut [String]) {
                for _ in 0..self.rng.usize(1..=3) {
                    let i = self.rng.usize(..words.len());
                    let e = self.pick(EMOJI);
                    words[i].push_str(e);
                }
            }

            fn case(&mut self, text: &str) -> String {
                match self.rng.usize(..3) {
                    0 => text.to_uppercase(),
                    1 => text.to_lowercase(),
                    _ => text
                        .split(' ')
                        .map(capitalise)
                        .collect::<Vec<_>>()
                        .join(" "),
                }
            }

            /// Strips diacritics from the whole text or from a few words.
            fn diacritics(&mut self, words: &mut [String]) {
                if self.rng.bool() {
                    words.iter_mut().for_each(|w| *w = strip_marks(w));
                    return;
                }
                for _ in 0..self.rng.usize(1..=3) {
                    let i = self.rng.usize(..words.len());
                    words[i] = strip_marks(&words[i]);
                }
            }

            /// Zero-width characters after some words, or inside one word.
            fn zero_width(&mut self, words: &mut [String]) {
                for _ in 0..self.rng.usize(1..=words.len()) {
                    let i = self.rng.usize(..words.len());
                    let z = ZERO_WIDTH[self.rng.usize(..ZERO_WIDTH.len())];
                    let chars: Vec<char> = words[i].chars().collect();
                    let at = self.rng.usize(..=chars.len());
                    words[i] = chars[..at]
                        .iter()
                        .chain([z].iter())
                        .chain(&chars[at..])
                        .collect();
                }
            }

            /// Doubled spaces, tabs or line breaks between words.
            fn spaces(&mut self, words: &[String]) -> String {
                let mut out = String::new();
                for (i, w) in words.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.pick(&[" ", "  ", "   ", " \n", "\t"]));
                    }
                    out.push_str(w);
                }
                out
            }
        }

        /// The word with its first letter in upper case.
        fn capitalise(word: &str) -> String {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }

        /// Removes diacritics but keeps case and punctuation.
        pub fn strip_marks(word: &str) -> String {
            let stripped = word.nfd().filter(|&c| !is_combining_mark(c));
            stripped
                .map(|c| match c {
                    'đ' => 'd',
                    'Đ' => 'D',
                    c => c,
                })
                .collect()
        }

        /// Normalised word count.
        pub fn word_count(text: &str) -> usize {
            normalise(text).split(' ').filter(|w| !w.is_empty()).count()
        }
    }

    /// Synthetic Vietnamese-like comments.
    mod synthetic {
        use super::super::normalise;
        use unicode_normalization::UnicodeNormalization;

        /// Initial consonants of a syllable; "" for none.
        const ONSETS: &[&str] = &[
            "", "b", "c", "ch", "d", "đ", "g", "gh", "h", "k", "kh", "l", "m", "n", "ng", "nh",
            "p", "ph", "qu", "r", "s", "t", "th", "tr", "v", "x",
        ];
        /// Vowels of a syllable.
        const NUCLEI: &[&str] = &[
            "a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y", "ai", "ao", "au", "ay",
            "âu", "ây", "eo", "êu", "ia", "iê", "iu", "oa", "oe", "oi", "ôi", "ơi", "ua", "uâ",
            "uê", "ui", "uô", "ưa", "ươ", "ưu", "uy",
        ];
        /// Final consonants; "" twice, as open syllables are common.
        const CODAS: &[&str] = &["", "", "c", "ch", "m", "n", "ng", "nh", "p", "t"];
        /// Tone marks, combining; "" for the level tone.
        const TONES: &[&str] = &["", "\u{301}", "\u{300}", "\u{309}", "\u{303}", "\u{323}"];

        /// `count` syllables with distinct normalised forms.
        pub fn syllables(rng: &mut fastrand::Rng, count: usize) -> Vec<String> {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(count);
            while out.len() < count {
                let s = syllable(rng);
                if seen.insert(normalise(&s)) {
                    out.push(s);
                }
            }
            out
        }

        /// A random syllable, in NFC, with its tone on the first vowel.
        fn syllable(rng: &mut fastrand::Rng) -> String {
            let pick =
                |rng: &mut fastrand::Rng, list: &[&'static str]| list[rng.usize(..list.len())];
            let (onset, nucleus) = (pick(rng, ONSETS), pick(rng, NUCLEI));
            let (tone, coda) = (pick(rng, TONES), pick(rng, CODAS));
            let mut chars = nucleus.chars();
            let first: String = chars.next().into_iter().collect();
            format!("{onset}{first}{tone}{}{coda}", chars.as_str())
                .nfc()
                .collect()
        }

        /// Word sampler with Zipf-like frequencies of exponent `s`.
        pub struct Zipf {
            cdf: Vec<f64>,
        }

        impl Zipf {
            /// A sampler over ranks `0..n`.
            pub fn new(n: usize, s: f64) -> Zipf {
                let mut total = 0.0;
                let cdf = (1..=n)
                    .map(|r| {
                        total += 1.0 / (r as f64).powf(s);
                        total
                    })
                    .collect();
                Zipf { cdf }
            }

            /// A random rank.
            pub fn sample(&self, rng: &mut fastrand::Rng) -> usize {
                let u = rng.f64() * self.cdf[self.cdf.len() - 1];
                self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
            }
        }

        /// A comment of 8 to 40 words, capitalised, with some punctuation.
        pub fn comment(rng: &mut fastrand::Rng, vocab: &[String], zipf: &Zipf) -> String {
            let len = rng.usize(8..=40);
            let mut out = String::new();
            for i in 0..len {
                if i > 0 {
                    out.push_str(if rng.usize(..10) == 0 { ", " } else { " " });
                }
                out.push_str(&vocab[zipf.sample(rng)]);
            }
            out.push('.');
            let mut chars = out.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }

    /// Reading the labeled corpus by path.
    mod corpus {
        use std::path::PathBuf;

        /// Folder of the corpus: `$CAMPAIGN_CORPUS_DIR`, else `../shared/data/corpus`.
        pub fn dir() -> PathBuf {
            match std::env::var_os("CAMPAIGN_CORPUS_DIR") {
                Some(dir) => PathBuf::from(dir),
                None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/corpus"),
            }
        }

        /// (text, source) of each line of dev.jsonl and train.jsonl; `None` if a file is absent.
        pub fn texts() -> Option<Vec<(String, String)>> {
            let mut out = Vec::new();
            for name in ["dev.jsonl", "train.jsonl"] {
                let data = std::fs::read_to_string(dir().join(name)).ok()?;
                let line = |l: &str| {
                    Some((
                        json_field(l, "text")?,
                        json_field(l, "source").unwrap_or_default(),
                    ))
                };
                out.extend(data.lines().filter_map(line));
            }
            Some(out)
        }

        /// The string value of a key of a one-line JSON object.
        pub fn json_field(line: &str, key: &str) -> Option<String> {
            let at = line.find(&format!("\"{key}\""))? + key.len() + 2;
            let rest = line[at..]
                .trim_start()
                .strip_prefix(':')?
                .trim_start()
                .strip_prefix('"')?;
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => return Some(out),
                    '\\' => unescape(&mut chars, &mut out)?,
                    c => out.push(c),
                }
            }
            None
        }

        /// Decodes one escape after a backslash.
        fn unescape(chars: &mut std::str::Chars, out: &mut String) -> Option<()> {
            match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' | 'f' => out.push(' '),
                'u' => out.push(unicode_escape(chars)?),
                c => out.push(c),
            }
            Some(())
        }

        /// Decodes `XXXX` after `\u`, with a following low surrogate if needed.
        fn unicode_escape(chars: &mut std::str::Chars) -> Option<char> {
            let hex = |chars: &mut std::str::Chars| {
                u32::from_str_radix(&chars.by_ref().take(4).collect::<String>(), 16).ok()
            };
            let high = hex(chars)?;
            if !(0xD800..0xDC00).contains(&high) {
                return Some(char::from_u32(high).unwrap_or('\u{FFFD}'));
            }
            let low = chars.as_str().strip_prefix("\\u").and_then(|_| {
                chars.nth(1);
                hex(chars)
            })?;
            char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF))
        }
    }
}
