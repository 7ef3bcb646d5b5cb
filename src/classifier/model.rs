//! A trained model: everything needed to score a comment (feature settings, hash seed, offensive
//! lexicon, feature weights, the weights of both heads, their calibrations and recommended
//! thresholds), its file format, scoring and explanations.
//!
//! File layout (little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `CMODMDL\n` |
//! | 4 | file format version ([`FORMAT_VERSION`]) |
//! | 8 | payload length |
//! | n | payload: [`ModelFile`] encoded with postcard |
//! | 4 | CRC-32 of the payload |
//!
//! Weights are stored as 16-bit integers with one scale per head (a quarter of the size of
//! `f32`, and the loss is far below anything that moves a score); the model in memory uses the
//! dequantised values, so a model scores exactly the same before saving and after loading.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::analyze::{Analysis, analyze_into};
use super::calibration::Calibration;
use super::features::{
    Extractor, FEATURE_VERSION, Feature, FeatureSettings, Features, Group, Idf, Lexicon, Sink,
};
use super::linear::{SparseLogistic, sigmoid};

/// Magic bytes opening every model file.
const MAGIC: &[u8; 8] = b"CMODMDL\n";

/// Version of the file layout; a file with another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// The two things the classifier scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeadKind {
    /// Advertising, scams, gibberish, off-topic promotion.
    Spam,
    /// Insults, hate, obscenity.
    Toxic,
}

impl HeadKind {
    /// Both heads, in storage order.
    pub const ALL: [HeadKind; 2] = [HeadKind::Spam, HeadKind::Toxic];

    /// Lower-case name, as in the corpus (`spam`, `toxic`).
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Spam => "spam",
            HeadKind::Toxic => "toxic",
        }
    }

    fn index(self) -> usize {
        match self {
            HeadKind::Spam => 0,
            HeadKind::Toxic => 1,
        }
    }
}

impl fmt::Display for HeadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Thresholds recommended by training, from out-of-fold scores on the training set; ops may
/// override them in the service's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Spam probability below which a comment is accepted.
    pub accept_below: f32,
    /// Spam probability at or above which a comment is rejected.
    pub reject_at: f32,
    /// Toxic probability at or above which a comment goes at least to review.
    pub review_toxic_at: f32,
}

/// Calibrated probabilities of one comment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Probability that the comment is spam.
    pub spam: f32,
    /// Probability that the comment is toxic.
    pub toxic: f32,
}

/// One feature's share in a score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reason {
    /// The feature, readable (`phone number`, `word "nhà cái"`, `link to bit.ly`).
    pub feature: String,
    /// How much it raised the head's calibrated log-odds (weight × value × calibration slope).
    pub weight: f32,
}

/// Why a comment scored as it did: the features that pushed each head up most.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Explanation {
    /// The scores explained.
    pub scores: Scores,
    /// Top contributors to the spam score, largest first.
    pub spam: Vec<Reason>,
    /// Top contributors to the toxic score, largest first.
    pub toxic: Vec<Reason>,
}

/// A model's metadata, for listings and the model card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Version name, reported with every score (e.g. `vi-en-2026-11-27`).
    pub name: String,
    /// When it was trained (RFC 3339, UTC).
    pub trained_at: String,
    /// What it was trained on (file names and row counts).
    pub trained_on: Vec<String>,
}

/// What is stored in the file.
#[derive(Serialize, Deserialize)]
struct ModelFile {
    info: ModelInfo,
    feature_version: u32,
    features: FeatureSettings,
    lexicon: Vec<String>,
    idf: Vec<u8>,
    thresholds: Thresholds,
    heads: Vec<HeadFile>,
}

#[derive(Serialize, Deserialize)]
struct HeadFile {
    kind: HeadKind,
    bias: f32,
    scale: f32,
    weights: Vec<i16>,
    calibration: Calibration,
}

/// One head as trained: the sparse model and its calibration.
#[derive(Clone, Debug)]
pub struct TrainedHead {
    /// Which head.
    pub kind: HeadKind,
    /// The sparse logistic model.
    pub sparse: SparseLogistic,
    /// Its calibration.
    pub calibration: Calibration,
}

/// A loaded model, ready to score.
#[derive(Clone, Debug)]
pub struct Model {
    info: ModelInfo,
    extractor: Extractor,
    thresholds: Thresholds,
    /// Per slot: both heads' quantised weights and the slot's IDF byte, side by side, so that
    /// scoring a feature is one memory access (the table is larger than the CPU's fast caches).
    slots: Vec<Slot>,
    /// Dequantisation scale of each head's weights.
    scales: [f32; 2],
    biases: [f32; 2],
    calibrations: [Calibration; 2],
}

/// One slot of [`Model::slots`]: spam weight, toxic weight (both times the head's scale), IDF
/// byte.
type Slot = [i16; 3];

fn build_slots(spam: &[i16], toxic: &[i16], idf: &Idf) -> Vec<Slot> {
    spam.iter()
        .zip(toxic)
        .enumerate()
        .map(|(i, (&s, &t))| [s, t, i16::from(idf.byte(i).unwrap_or(0))])
        .collect()
}

/// Why a model file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or writing the file failed.
    #[error("cannot read or write model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a model file at all.
    #[error("{path} is not a model file (wrong magic bytes)")]
    NotAModel {
        /// The file.
        path: String,
    },
    /// The file was written by another version of the format.
    #[error("{path} has model format version {found}; this build reads version {expected}")]
    FormatVersion {
        /// The file.
        path: String,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// The file is damaged.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is sound but does not fit this build.
    #[error("{path} does not match this build: {reason}")]
    Mismatch {
        /// The file.
        path: String,
        /// What does not match.
        reason: String,
    },
}

thread_local! {
    /// Per-thread buffers, so scoring allocates nothing once warm.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Default)]
struct Scratch {
    text: Analysis,
    author: Analysis,
    features: Features,
}

impl Model {
    /// Builds a model from trained heads (quantising the weights as saving would).
    pub fn from_trained(
        info: ModelInfo,
        extractor: Extractor,
        thresholds: Thresholds,
        spam: TrainedHead,
        toxic: TrainedHead,
    ) -> Self {
        let (spam_q, spam_scale) = quantize(&spam.sparse.weights);
        let (toxic_q, toxic_scale) = quantize(&toxic.sparse.weights);
        Model {
            info,
            slots: build_slots(&spam_q, &toxic_q, extractor.idf()),
            extractor,
            thresholds,
            scales: [spam_scale, toxic_scale],
            biases: [spam.sparse.bias, toxic.sparse.bias],
            calibrations: [spam.calibration, toxic.calibration],
        }
    }

    /// The model's name and provenance.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The thresholds recommended at training.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// The feature extractor (settings and lexicon) the model was trained with.
    pub fn extractor(&self) -> &Extractor {
        &self.extractor
    }

    /// Scores one comment; `author` is the display name, if known.
    pub fn score(&self, text: &str, author: Option<&str>) -> Scores {
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            let (logits, _) = self.sparse_logits(text, author, scratch);
            self.calibrate(logits)
        })
    }

    /// Reads a comment and returns both heads' sparse log-odds and the scales of the words and
    /// character groups. This is [`Extractor::weigh`] and the dot product with both heads'
    /// weights in one pass: a group's unit-length scale is a common factor of its features, so
    /// it is applied to the group's sum at the end instead of to each feature.
    fn sparse_logits(
        &self,
        text: &str,
        author: Option<&str>,
        scratch: &mut Scratch,
    ) -> ([f32; 2], [f32; 2]) {
        analyze_into(text, &mut scratch.text);
        let author = match author {
            Some(name) if self.extractor.settings().use_author => {
                analyze_into(name, &mut scratch.author);
                Some(&scratch.author)
            }
            _ => None,
        };
        let mut sink = ScoreSink {
            slots: &self.slots,
            features: &mut scratch.features,
            squares: [0.0; 3],
            sums: [[0.0; 2]; 3],
        };
        sink.features.reset();
        self.extractor.visit(&scratch.text, author, &mut sink);
        let ScoreSink { squares, sums, .. } = sink;
        let scales = [squares[0], squares[1]].map(|s| if s > 0.0 { 1.0 / s.sqrt() } else { 0.0 });
        let logits = [0, 1].map(|h| {
            let sum = scales[0] * sums[0][h] + scales[1] * sums[1][h] + sums[2][h];
            self.biases[h] + self.scales[h] * sum
        });
        (logits, scales)
    }

    fn calibrate(&self, logits: [f32; 2]) -> Scores {
        Scores {
            spam: sigmoid(self.calibrations[0].logit(logits[0])),
            toxic: sigmoid(self.calibrations[1].logit(logits[1])),
        }
    }

    /// Scores one comment and names the `top` features that raised each head most.
    pub fn explain(&self, text: &str, author: Option<&str>, top: usize) -> Explanation {
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            let (logits, scales) = self.sparse_logits(text, author, scratch);
            let scores = self.calibrate(logits);
            let mut sink = ExplainSink {
                model: self,
                scales,
                seen: foldhash::HashSet::default(),
                totals: foldhash::HashMap::default(),
            };
            let author = author
                .filter(|_| self.extractor.settings().use_author)
                .map(|_| &scratch.author);
            self.extractor.visit(&scratch.text, author, &mut sink);
            let totals = sink.totals;
            Explanation {
                scores,
                spam: top_reasons(&totals, 0, top),
                toxic: top_reasons(&totals, 1, top),
            }
        })
    }

    /// Writes the model to `path`.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let io = |source| ModelError::Io {
            path: path.display().to_string(),
            source,
        };
        // Written beside the target and renamed, so a reader never sees half a model.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, self.to_bytes()).map_err(io)?;
        std::fs::rename(&partial, path).map_err(io)
    }

    /// The model file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&self.file())
    }

    fn file(&self) -> ModelFile {
        ModelFile {
            info: self.info.clone(),
            feature_version: FEATURE_VERSION,
            features: self.extractor.settings().clone(),
            lexicon: self.extractor.lexicon().entries.clone(),
            idf: self.extractor.idf().as_bytes().to_vec(),
            thresholds: self.thresholds,
            heads: HeadKind::ALL
                .iter()
                .map(|&kind| {
                    let h = kind.index();
                    HeadFile {
                        kind,
                        bias: self.biases[h],
                        scale: self.scales[h],
                        weights: self.slots.iter().map(|slot| slot[h]).collect(),
                        calibration: self.calibrations[h],
                    }
                })
                .collect(),
        }
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: name.clone(),
            source,
        })?;
        Self::from_bytes(&bytes, &name)
    }

    /// Checks and decodes the bytes of a model file; `name` is used in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, ModelError> {
        let corrupt = |reason: String| ModelError::Corrupt {
            path: name.to_owned(),
            reason,
        };
        let mismatch = |reason: String| ModelError::Mismatch {
            path: name.to_owned(),
            reason,
        };
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(ModelError::NotAModel {
                path: name.to_owned(),
            });
        }
        if bytes.len() < 24 {
            return Err(corrupt("truncated header".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
        if version != FORMAT_VERSION {
            return Err(ModelError::FormatVersion {
                path: name.to_owned(),
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let length = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
        let expected_len = usize::try_from(length).ok().and_then(|l| l.checked_add(24));
        if expected_len != Some(bytes.len()) {
            return Err(corrupt(format!(
                "payload length says {length} bytes but the file has {}",
                bytes.len().saturating_sub(24)
            )));
        }
        let payload = &bytes[20..bytes.len() - 4];
        let stored = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap_or_default());
        if crc32fast::hash(payload) != stored {
            return Err(corrupt(
                "checksum does not match (the file was damaged)".into(),
            ));
        }
        let (file, rest): (ModelFile, &[u8]) = postcard::take_from_bytes(payload)
            .map_err(|e| corrupt(format!("cannot decode: {e}")))?;
        if !rest.is_empty() {
            return Err(corrupt(format!(
                "{} bytes left over after the model",
                rest.len()
            )));
        }
        if file.feature_version != FEATURE_VERSION {
            return Err(mismatch(format!(
                "trained with feature extractor version {}, this build has version {}",
                file.feature_version, FEATURE_VERSION
            )));
        }
        let settings = file.features;
        if let Some(problem) = settings.problem() {
            return Err(mismatch(format!("unusable feature settings: {problem}")));
        }
        let t = file.thresholds;
        let in_unit = |v: f32| (0.0..=1.0).contains(&v);
        if !(in_unit(t.accept_below)
            && in_unit(t.reject_at)
            && in_unit(t.review_toxic_at)
            && t.accept_below <= t.reject_at)
        {
            return Err(mismatch(format!("thresholds out of range: {t:?}")));
        }
        let dimension = settings.dimension();
        if !file.idf.is_empty() && file.idf.len() != dimension {
            return Err(mismatch(format!(
                "the feature weights have {} slots, the feature settings need {dimension}",
                file.idf.len()
            )));
        }
        let mut weights: [Vec<i16>; 2] = [Vec::new(), Vec::new()];
        let mut biases = [0.0; 2];
        let mut scales = [0.0; 2];
        let mut calibrations: [Option<Calibration>; 2] = [None, None];
        for head in file.heads {
            let h = head.kind.index();
            if calibrations[h].is_some() {
                return Err(mismatch(format!("head {} appears twice", head.kind)));
            }
            if head.weights.len() != dimension {
                return Err(mismatch(format!(
                    "head {} has {} weights, the feature settings need {dimension}",
                    head.kind,
                    head.weights.len()
                )));
            }
            // Bounds far outside anything training produces, but tight enough that no
            // combination of weights can overflow to an infinite or NaN score.
            let sane = |v: f32, bound: f32| v.is_finite() && v.abs() <= bound;
            let usable = sane(head.bias, 1e3)
                && sane(head.scale, 1.0)
                && head.scale >= 0.0
                && sane(head.calibration.slope, 1e2)
                && sane(head.calibration.intercept, 1e3);
            if !usable {
                return Err(mismatch(format!(
                    "head {} has parameters out of range",
                    head.kind
                )));
            }
            weights[h] = head.weights;
            biases[h] = head.bias;
            scales[h] = head.scale;
            calibrations[h] = Some(head.calibration);
        }
        let [Some(spam), Some(toxic)] = calibrations else {
            return Err(mismatch("the file lacks the spam or the toxic head".into()));
        };
        let idf = Idf::from_bytes(file.idf);
        Ok(Model {
            info: file.info,
            slots: build_slots(&weights[0], &weights[1], &idf),
            extractor: Extractor::new(settings, Lexicon::new(file.lexicon), idf),
            thresholds: file.thresholds,
            biases,
            calibrations: [spam, toxic],
            scales,
        })
    }
}

/// Frames a model file: magic, format version, length, payload, checksum.
fn encode(file: &ModelFile) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail.
    let payload = postcard::to_stdvec(file).unwrap_or_default();
    let mut bytes = Vec::with_capacity(payload.len() + 24);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes
}

/// Quantises weights to 16-bit integers with one scale for all of them.
fn quantize(weights: &[f32]) -> (Vec<i16>, f32) {
    let max = weights.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    if max == 0.0 || !max.is_finite() {
        return (vec![0; weights.len()], 0.0);
    }
    let scale = max / f32::from(i16::MAX);
    let q = weights.iter().map(|w| (w / scale).round() as i16).collect();
    (q, scale)
}

/// Scores features as they are extracted: each new slot's weights are read as soon as its
/// feature is met, so the memory reads overlap the hashing of the next features.
struct ScoreSink<'a> {
    slots: &'a [Slot],
    /// Holds the set of slots met (each feature counts once).
    features: &'a mut Features,
    /// Per group: sum of squared values.
    squares: [f32; 3],
    /// Per group: both heads' weighted sums.
    sums: [[f32; 2]; 3],
}

impl Sink for ScoreSink<'_> {
    #[inline]
    fn add(&mut self, group: Group, index: u32, _label: impl FnOnce() -> Feature) {
        if !self.features.insert(group, index) {
            return;
        }
        let [spam, toxic, idf] = self.slots[index as usize];
        let g = group as usize;
        let v = if group == Group::Signals {
            1.0
        } else {
            Idf::value(idf as u8)
        };
        self.squares[g] += v * v;
        self.sums[g][0] += f32::from(spam) * v;
        self.sums[g][1] += f32::from(toxic) * v;
    }
}

/// A single feature's contribution below this (in log-odds) is not given a label: it could
/// not change a ranking even added to hundreds like it.
const TINY: f32 = 1e-4;

/// A reason whose total is below this (in log-odds) is not worth naming.
const NEGLIGIBLE: f32 = 0.005;

/// Adds up each feature's contribution to both heads' calibrated log-odds, by readable label.
struct ExplainSink<'a> {
    model: &'a Model,
    /// Scales of the words and chars groups for this comment.
    scales: [f32; 2],
    /// Slots already counted: weighing counts each feature once, so must the explanation.
    seen: foldhash::HashSet<u32>,
    totals: foldhash::HashMap<Feature, [f32; 2]>,
}

impl Sink for ExplainSink<'_> {
    fn add(&mut self, group: Group, index: u32, label: impl FnOnce() -> Feature) {
        if !self.seen.insert(index) {
            return;
        }
        let value = self.model.extractor.value(index, group, self.scales);
        let slot = self.model.slots[index as usize];
        let c = [0, 1].map(|h| {
            let weight = f32::from(slot[h]) * self.model.scales[h];
            self.model.calibrations[h].slope * weight * value
        });
        if c[0].abs() < TINY && c[1].abs() < TINY {
            return;
        }
        let total = self.totals.entry(label()).or_insert([0.0; 2]);
        total[0] += c[0];
        total[1] += c[1];
    }
}

fn top_reasons(
    totals: &foldhash::HashMap<Feature, [f32; 2]>,
    head: usize,
    top: usize,
) -> Vec<Reason> {
    let mut items: Vec<(&Feature, f32)> = totals
        .iter()
        .map(|(f, c)| (f, c[head]))
        .filter(|(_, c)| *c >= NEGLIGIBLE)
        .collect();
    // The order is total (largest first, then by label), so the first `top` after a partial
    // selection are those a full sort would give, in the same order once sorted.
    let order =
        |a: &(&Feature, f32), b: &(&Feature, f32)| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0));
    if items.len() > top && top > 0 {
        items.select_nth_unstable_by(top - 1, order);
        items.truncate(top);
    }
    items.sort_by(order);
    items
        .into_iter()
        .take(top)
        .map(|(f, c)| Reason {
            feature: f.to_string(),
            weight: (c * 1000.0).round() / 1000.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        let settings = FeatureSettings {
            hash_bits: 10,
            ..FeatureSettings::default()
        };
        let head = |kind| TrainedHead {
            kind,
            sparse: SparseLogistic {
                weights: vec![0.25; 1 << 10],
                bias: -1.0,
            },
            calibration: Calibration {
                slope: 1.0,
                intercept: 0.0,
            },
        };
        Model::from_trained(
            ModelInfo {
                name: "tiny".into(),
                trained_at: "2026-11-27T00:00:00Z".into(),
                trained_on: vec![],
            },
            Extractor::new(settings, Lexicon::default(), Idf::default()),
            Thresholds {
                accept_below: 0.3,
                reject_at: 0.8,
                review_toxic_at: 0.5,
            },
            head(HeadKind::Spam),
            head(HeadKind::Toxic),
        )
    }

    /// The error for a well-framed file whose content was changed by `edit`.
    fn refusal(edit: impl FnOnce(&mut ModelFile)) -> ModelError {
        let mut file = tiny().file();
        edit(&mut file);
        Model::from_bytes(&encode(&file), "edited").unwrap_err()
    }

    #[test]
    fn a_sound_file_loads_and_scores_like_the_original() {
        let model = tiny();
        let loaded = Model::from_bytes(&model.to_bytes(), "tiny").unwrap();
        assert_eq!(
            model.score("xin chào", None),
            loaded.score("xin chào", None)
        );
    }

    #[test]
    fn files_that_do_not_fit_this_build_are_refused_with_the_reason() {
        type Edit = Box<dyn FnOnce(&mut ModelFile)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "feature extractor version",
                Box::new(|f| f.feature_version = 1),
            ),
            ("hash_bits", Box::new(|f| f.features.hash_bits = 40)),
            ("character n-grams", Box::new(|f| f.features.char_max = 0)),
            ("thresholds", Box::new(|f| f.thresholds.reject_at = 0.1)),
            (
                "weights",
                Box::new(|f| f.heads[0].weights.pop().map(drop).unwrap_or(())),
            ),
            ("feature weights", Box::new(|f| f.idf = vec![0; 3])),
            ("out of range", Box::new(|f| f.heads[1].scale = f32::MAX)),
            (
                "out of range",
                Box::new(|f| f.heads[0].calibration.slope = f32::NAN),
            ),
            ("twice", Box::new(|f| f.heads[1].kind = HeadKind::Spam)),
            ("lacks", Box::new(|f| drop(f.heads.pop()))),
        ];
        for (expected, edit) in cases {
            let err = refusal(edit);
            assert!(
                matches!(err, ModelError::Mismatch { .. }),
                "{expected}: {err}"
            );
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}
