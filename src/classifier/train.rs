//! Training both heads from labeled records: features are extracted once and weighed with IDF
//! learnt from them; each head's sparse model is trained K times on K−1 folds to get honest
//! (out-of-fold) log-odds for every row, the calibration is fitted on those, then the sparse
//! model is trained once more on all rows. The two heads train on separate threads.

use std::time::Instant;

use anyhow::{Result, ensure};

use super::analyze::{Analysis, analyze_into};
use super::calibration::Calibration;
use super::corpus::Record;
use super::features::{Extractor, FeatureSettings, Features, Group, Idf, Lexicon, Sparse};
use super::linear::{SgdSettings, SparseLogistic, sigmoid};
use super::metrics;
use super::model::{HeadKind, Model, ModelInfo, Thresholds, TrainedHead};
use super::parallel_chunks;

/// Everything that shapes training.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// Feature extraction.
    pub features: FeatureSettings,
    /// Sparse model training for the spam head.
    pub spam: SgdSettings,
    /// Sparse model training for the toxic head.
    pub toxic: SgdSettings,
    /// Folds for the out-of-fold log-odds the calibration is fitted on.
    pub folds: usize,
    /// L2 penalty of the calibration.
    pub calibration_alpha: f64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            features: FeatureSettings::default(),
            spam: SgdSettings::default(),
            toxic: SgdSettings::default(),
            folds: 4,
            calibration_alpha: 1.0,
        }
    }
}

/// Trains a model on `records`. `progress` receives one line per step.
pub fn train(
    records: &[Record],
    lexicon: Lexicon,
    settings: &TrainSettings,
    info: ModelInfo,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Model> {
    ensure!(settings.folds >= 2, "at least two folds are needed");
    if let Some(problem) = settings.features.problem() {
        anyhow::bail!("unusable feature settings: {problem}");
    }
    let started = Instant::now();
    let extractor = Extractor::new(settings.features.clone(), lexicon, Idf::default());
    let features = extract_all(&extractor, records);
    let extractor = extractor.with_idf(Idf::fit(
        features.iter().map(Vec::as_slice),
        settings.features.dimension(),
        settings.features.min_rows,
    ));
    let rows = weigh_all(&extractor, features);
    progress(&format!(
        "features of {} records extracted in {:.1}s",
        rows.len(),
        started.elapsed().as_secs_f32()
    ));

    let dimension = settings.features.dimension();
    let (spam, toxic) = std::thread::scope(|scope| {
        let spam = scope.spawn(|| {
            train_head(
                HeadKind::Spam,
                records,
                &rows,
                dimension,
                &settings.spam,
                settings,
                progress,
            )
        });
        let toxic = train_head(
            HeadKind::Toxic,
            records,
            &rows,
            dimension,
            &settings.toxic,
            settings,
            progress,
        );
        (spam.join(), toxic)
    });
    let spam = spam.map_err(|_| anyhow::anyhow!("the spam head's training thread panicked"))??;
    let toxic = toxic?;
    let thresholds = Thresholds {
        accept_below: spam.1.0,
        reject_at: spam.1.1,
        review_toxic_at: toxic.1.2,
    };
    progress(&format!(
        "trained in {:.1}s; recommended thresholds: accept spam below {:.2}, reject at {:.2}, review toxic at {:.2}",
        started.elapsed().as_secs_f32(),
        thresholds.accept_below,
        thresholds.reject_at,
        thresholds.review_toxic_at
    ));
    Ok(Model::from_trained(
        info, extractor, thresholds, spam.0, toxic.0,
    ))
}

/// The distinct feature slots of one record, with their groups.
type Grams = Vec<(u32, Group)>;

/// Reads the features of every record, on every core.
fn extract_all(extractor: &Extractor, records: &[Record]) -> Vec<Grams> {
    parallel_chunks(records, |_, part| {
        let mut text = Analysis::default();
        let mut author = Analysis::default();
        let mut features = Features::default();
        part.iter()
            .map(|r| {
                analyze_into(&r.text, &mut text);
                let author = match &r.author {
                    Some(name) => {
                        analyze_into(name, &mut author);
                        Some(&author)
                    }
                    None => None,
                };
                extractor.features(&text, author, &mut features);
                features.grams().to_vec()
            })
            .collect()
    })
}

/// Weighs every row's features into the sparse vectors the models train on.
fn weigh_all(extractor: &Extractor, rows: Vec<Grams>) -> Vec<Sparse> {
    parallel_chunks(&rows, |_, part| {
        part.iter()
            .map(|grams| {
                let mut sparse = Sparse::with_capacity(grams.len());
                extractor.weigh(grams, &mut sparse);
                sparse
            })
            .collect()
    })
}

/// Recommended thresholds from one head's out-of-fold probabilities:
/// (accept spam below, reject spam at, review toxic at).
type Recommended = (f32, f32, f32);

fn train_head(
    kind: HeadKind,
    records: &[Record],
    rows: &[Sparse],
    dimension: usize,
    sgd: &SgdSettings,
    settings: &TrainSettings,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(TrainedHead, Recommended)> {
    let labeled: Vec<(usize, bool)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.label(kind).map(|l| (i, l)))
        .collect();
    ensure!(
        labeled.iter().any(|&(_, l)| l) && labeled.iter().any(|&(_, l)| !l),
        "the {kind} head needs both positive and negative records"
    );
    let started = Instant::now();
    // Folds by a seeded shuffle, so each fold has rows of every source.
    let mut order: Vec<usize> = (0..labeled.len()).collect();
    fastrand::Rng::with_seed(sgd.seed ^ 0x5eed).shuffle(&mut order);
    let mut fold_of = vec![0usize; labeled.len()];
    for (position, &k) in order.iter().enumerate() {
        fold_of[k] = position % settings.folds;
    }
    let mut out_of_fold = vec![0.0f32; labeled.len()];
    for fold in 0..settings.folds {
        let training: Vec<(&Sparse, bool)> = labeled
            .iter()
            .enumerate()
            .filter(|(k, _)| fold_of[*k] != fold)
            .map(|(_, &(i, l))| (&rows[i], l))
            .collect();
        let model = SparseLogistic::train(&training, dimension, sgd);
        for (k, &(i, _)) in labeled.iter().enumerate() {
            if fold_of[k] == fold {
                out_of_fold[k] = model.logit(&rows[i]);
            }
        }
        progress(&format!(
            "{kind}: fold {}/{} trained ({:.1}s)",
            fold + 1,
            settings.folds,
            started.elapsed().as_secs_f32()
        ));
    }
    let all: Vec<(&Sparse, bool)> = labeled.iter().map(|&(i, l)| (&rows[i], l)).collect();
    let sparse = SparseLogistic::train(&all, dimension, sgd);
    let labels: Vec<bool> = labeled.iter().map(|&(_, l)| l).collect();
    let calibration = Calibration::fit(&out_of_fold, &labels, settings.calibration_alpha)?;
    let probabilities: Vec<f32> = out_of_fold
        .iter()
        .map(|&z| sigmoid(calibration.logit(z)))
        .collect();
    let auc = metrics::roc_auc(&probabilities, &labels).unwrap_or(0.0);
    progress(&format!(
        "{kind}: {} rows, out-of-fold ROC-AUC {auc:.4} ({:.1}s)",
        labels.len(),
        started.elapsed().as_secs_f32()
    ));
    let recommended = recommend(&probabilities, &labels);
    Ok((
        TrainedHead {
            kind,
            sparse,
            calibration,
        },
        recommended,
    ))
}

/// Picks thresholds on out-of-fold probabilities:
/// - reject at: the lowest score whose rejected band is at least 97 % positive (a rejected
///   comment is never seen by a person, so false rejections must be rare);
/// - accept below (spam) and review at (toxic): the score with the best F1 for "needs a
///   person", which weighs missed spam or abuse against moderators' time.
///
/// Each is kept within a sane range so a small or odd training set cannot produce a threshold
/// that accepts or rejects nearly everything.
fn recommend(probabilities: &[f32], labels: &[bool]) -> Recommended {
    let grid = |lo: u32, hi: u32| (lo..=hi).map(|p| p as f32 / 100.0);
    let reject_at = grid(50, 99)
        .find(|&t| {
            let c = metrics::classification(probabilities, labels, t);
            c.tp + c.fp > 0 && c.precision >= 0.97
        })
        .unwrap_or(0.99);
    let best_f1 = |lo, hi| {
        grid(lo, hi)
            .max_by(|&a, &b| {
                let fa = metrics::classification(probabilities, labels, a).f1;
                let fb = metrics::classification(probabilities, labels, b).f1;
                fa.total_cmp(&fb)
            })
            .unwrap_or(0.5)
    };
    let accept_below = best_f1(10, 60);
    let review_at = best_f1(20, 90);
    (accept_below, reject_at.max(accept_below), review_at)
}
