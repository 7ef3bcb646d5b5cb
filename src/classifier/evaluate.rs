//! Scoring a labeled set with a model and reporting, per head and per source: precision,
//! recall, F1 and ROC-AUC, calibration, and the band table ops use to pick thresholds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::corpus::Record;
use super::metrics::{self, Bands, CalibrationBin, Classification};
use super::model::{HeadKind, Model, Scores};

/// Figures for one head on one group of records.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// The source name, or `all`.
    pub source: String,
    /// Records with a label for this head.
    pub count: usize,
    /// Of which positive.
    pub positives: usize,
    /// ROC-AUC (absent when only one class is present).
    pub roc_auc: Option<f64>,
    /// Precision, recall, F1 at a probability of 0.5.
    pub at_half: Classification,
}

/// Everything measured for one head.
#[derive(Clone, Debug, Serialize)]
pub struct HeadReport {
    /// `spam` or `toxic`.
    pub head: String,
    /// Figures over all labeled records.
    pub overall: Figures,
    /// Figures per source.
    pub sources: Vec<Figures>,
    /// Reliability table.
    pub calibration: Vec<CalibrationBin>,
    /// Expected calibration error.
    pub calibration_error: f64,
    /// Bands for candidate threshold pairs (spam), or single thresholds (toxic: accept below =
    /// reject at = the candidate).
    pub bands: Vec<Bands>,
}

/// An evaluation of one model on one labeled set.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The model's name.
    pub model: String,
    /// Records read.
    pub records: usize,
    /// Both heads.
    pub heads: Vec<HeadReport>,
    /// Scoring throughput in comments per second, over all cores.
    pub comments_per_second: f64,
}

/// Scores every record on every core, in order.
pub fn score_all(model: &Model, records: &[Record]) -> Vec<Scores> {
    super::parallel_chunks(records, |_, part| {
        part.iter()
            .map(|r| model.score(&r.text, r.author.as_deref()))
            .collect()
    })
}

/// Evaluates `model` on `records`.
pub fn evaluate(model: &Model, records: &[Record]) -> Report {
    let started = std::time::Instant::now();
    let scores = score_all(model, records);
    let comments_per_second = records.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let heads = HeadKind::ALL
        .iter()
        .map(|&head| head_report(head, records, &scores))
        .collect();
    Report {
        model: model.info().name.clone(),
        records: records.len(),
        heads,
        comments_per_second,
    }
}

fn head_report(head: HeadKind, records: &[Record], scores: &[Scores]) -> HeadReport {
    let pick = |s: &Scores| match head {
        HeadKind::Spam => s.spam,
        HeadKind::Toxic => s.toxic,
    };
    let mut by_source: BTreeMap<&str, (Vec<f32>, Vec<bool>)> = BTreeMap::new();
    let mut all = (Vec::new(), Vec::new());
    for (record, score) in records.iter().zip(scores) {
        if let Some(label) = record.label(head) {
            let entry = by_source.entry(record.source_name()).or_default();
            entry.0.push(pick(score));
            entry.1.push(label);
            all.0.push(pick(score));
            all.1.push(label);
        }
    }
    let figures = |source: &str, (s, l): &(Vec<f32>, Vec<bool>)| Figures {
        source: source.to_owned(),
        count: s.len(),
        positives: l.iter().filter(|&&x| x).count(),
        roc_auc: metrics::roc_auc(s, l),
        at_half: metrics::classification(s, l, 0.5),
    };
    let (calibration, calibration_error) = metrics::calibration(&all.0, &all.1);
    let bands = match head {
        HeadKind::Spam => metrics::candidate_bands(),
        HeadKind::Toxic => [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
            .iter()
            .map(|&t| (t, t))
            .collect(),
    }
    .into_iter()
    .map(|(a, r)| metrics::bands(&all.0, &all.1, a, r))
    .collect();
    HeadReport {
        head: head.name().to_owned(),
        overall: figures("all", &all),
        sources: by_source.iter().map(|(s, v)| figures(s, v)).collect(),
        calibration,
        calibration_error,
        bands,
    }
}

/// The report as text for people.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model {} on {} records ({:.0} comments/s)",
        report.model, report.records, report.comments_per_second
    );
    for head in &report.heads {
        let _ = writeln!(out, "\n== {}", head.head);
        let _ = writeln!(
            out,
            "  {:<24} {:>6} {:>6}  {:>6} {:>6} {:>6} {:>7} {:>8}",
            "source", "n", "pos", "P@.5", "R@.5", "F1@.5", "AUC", "flagged"
        );
        for f in std::iter::once(&head.overall).chain(&head.sources) {
            let auc = f.roc_auc.map_or("-".to_owned(), |a| format!("{a:.4}"));
            let _ = writeln!(
                out,
                "  {:<24} {:>6} {:>6}  {:>6.3} {:>6.3} {:>6.3} {:>7} {:>7.2}%",
                f.source,
                f.count,
                f.positives,
                f.at_half.precision,
                f.at_half.recall,
                f.at_half.f1,
                auc,
                f.at_half.positive_rate * 100.0
            );
        }
        let _ = writeln!(
            out,
            "  calibration (expected error {:.3}): score bin → observed share",
            head.calibration_error
        );
        for bin in head.calibration.iter().filter(|b| b.count > 0) {
            let _ = writeln!(
                out,
                "    [{:.1}, {:.1})  n={:>5}  mean score {:.3}  observed {:.3}",
                bin.low, bin.high, bin.count, bin.mean_score, bin.positive_share
            );
        }
        let _ = writeln!(
            out,
            "  bands: accept below / reject at → accepted (share clean) | review (share positive) | rejected (share positive)"
        );
        for b in &head.bands {
            let _ = writeln!(
                out,
                "    {:.2} / {:.2}  → {:>6} ({:.3}) | {:>6} ({:.3}) | {:>6} ({:.3})",
                b.accept_below,
                b.reject_at,
                b.accepted,
                b.accepted_precision,
                b.review,
                b.review_positive_share,
                b.rejected,
                b.rejected_precision
            );
        }
    }
    out
}
