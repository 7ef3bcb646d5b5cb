//! Figures for judging a head on labeled comments: precision, recall, F1, ROC-AUC, calibration,
//! and the band table ops read to pick thresholds.

use serde::Serialize;

/// Precision, recall and F1 at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Classification {
    /// Threshold: a score at or above it is called positive.
    pub threshold: f32,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives.
    pub fn_: usize,
    /// True negatives.
    pub tn: usize,
    /// tp / (tp + fp); 0 when nothing was called positive.
    pub precision: f64,
    /// tp / (tp + fn); 0 when there are no positives.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Share of all rows called positive.
    pub positive_rate: f64,
}

/// Counts and rates for `scores` against `labels` at `threshold`.
pub fn classification(scores: &[f32], labels: &[bool], threshold: f32) -> Classification {
    let mut c = Classification {
        threshold,
        ..Classification::default()
    };
    for (&s, &l) in scores.iter().zip(labels) {
        match (s >= threshold, l) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, true) => c.fn_ += 1,
            (false, false) => c.tn += 1,
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    c.precision = ratio(c.tp, c.tp + c.fp);
    c.recall = ratio(c.tp, c.tp + c.fn_);
    c.f1 = if c.precision + c.recall == 0.0 {
        0.0
    } else {
        2.0 * c.precision * c.recall / (c.precision + c.recall)
    };
    c.positive_rate = ratio(c.tp + c.fp, scores.len());
    c
}

/// Area under the ROC curve (ties count one half); `None` unless both classes are present.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mann–Whitney U from average ranks.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += average_rank;
            }
        }
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// One bin of a reliability table: comments scored in `[low, high)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Lower edge.
    pub low: f32,
    /// Upper edge.
    pub high: f32,
    /// Comments in the bin.
    pub count: usize,
    /// Their mean score.
    pub mean_score: f64,
    /// The share of them that were positive.
    pub positive_share: f64,
}

/// Ten equal-width bins of scores with the observed positive share in each, and the expected
/// calibration error (count-weighted mean gap between score and observed share).
pub fn calibration(scores: &[f32], labels: &[bool]) -> (Vec<CalibrationBin>, f64) {
    let mut bins: Vec<CalibrationBin> = (0..10)
        .map(|b| CalibrationBin {
            low: b as f32 / 10.0,
            high: (b + 1) as f32 / 10.0,
            count: 0,
            mean_score: 0.0,
            positive_share: 0.0,
        })
        .collect();
    for (&s, &l) in scores.iter().zip(labels) {
        let b = ((s * 10.0) as usize).min(9);
        bins[b].count += 1;
        bins[b].mean_score += f64::from(s);
        bins[b].positive_share += if l { 1.0 } else { 0.0 };
    }
    let mut ece = 0.0;
    for bin in &mut bins {
        if bin.count > 0 {
            bin.mean_score /= bin.count as f64;
            bin.positive_share /= bin.count as f64;
            ece += bin.count as f64 * (bin.mean_score - bin.positive_share).abs();
        }
    }
    let total = scores.len().max(1) as f64;
    (bins, ece / total)
}

/// What a pair of thresholds would do: below `accept_below` accepted, at or above `reject_at`
/// rejected, between sent to review.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Bands {
    /// Scores below this are accepted.
    pub accept_below: f32,
    /// Scores at or above this are rejected.
    pub reject_at: f32,
    /// Comments accepted.
    pub accepted: usize,
    /// Share of accepted comments that were really negative (the accept band's precision).
    pub accepted_precision: f64,
    /// Comments sent to review.
    pub review: usize,
    /// Share of reviewed comments that were positive (how much of moderators' time is spent on
    /// real cases).
    pub review_positive_share: f64,
    /// Comments rejected.
    pub rejected: usize,
    /// Share of rejected comments that were really positive (the reject band's precision).
    pub rejected_precision: f64,
}

/// Band counts and precisions for `accept_below` / `reject_at`.
pub fn bands(scores: &[f32], labels: &[bool], accept_below: f32, reject_at: f32) -> Bands {
    let (mut a, mut a_ok, mut r, mut r_ok, mut v, mut v_pos) = (0, 0, 0, 0, 0, 0);
    for (&s, &l) in scores.iter().zip(labels) {
        if s < accept_below {
            a += 1;
            a_ok += usize::from(!l);
        } else if s >= reject_at {
            r += 1;
            r_ok += usize::from(l);
        } else {
            v += 1;
            v_pos += usize::from(l);
        }
    }
    let ratio = |x: usize, n: usize| if n == 0 { 1.0 } else { x as f64 / n as f64 };
    Bands {
        accept_below,
        reject_at,
        accepted: a,
        accepted_precision: ratio(a_ok, a),
        review: v,
        review_positive_share: if v == 0 { 0.0 } else { v_pos as f64 / v as f64 },
        rejected: r,
        rejected_precision: ratio(r_ok, r),
    }
}

/// The candidate threshold pairs of the band table `evaluate` prints.
pub fn candidate_bands() -> Vec<(f32, f32)> {
    let accepts = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5];
    let rejects = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98];
    let mut pairs = Vec::new();
    for &a in &accepts {
        for &r in &rejects {
            if a <= r {
                pairs.push((a, r));
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_one_for_a_perfect_ranking_and_half_for_ties() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(roc_auc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.9, 0.1], &[false, true]), Some(0.0));
        assert_eq!(roc_auc(&[0.9, 0.1], &[true, true]), None);
    }

    #[test]
    fn classification_counts_each_cell() {
        let c = classification(&[0.9, 0.6, 0.4, 0.1], &[true, false, true, false], 0.5);
        assert_eq!((c.tp, c.fp, c.fn_, c.tn), (1, 1, 1, 1));
        assert!((c.precision - 0.5).abs() < 1e-9);
        assert!((c.f1 - 0.5).abs() < 1e-9);
    }

    #[test]
    fn bands_split_scores_into_three() {
        let b = bands(
            &[0.05, 0.15, 0.5, 0.95, 0.99],
            &[false, true, true, true, false],
            0.1,
            0.9,
        );
        assert_eq!((b.accepted, b.review, b.rejected), (1, 2, 2));
        assert_eq!(b.accepted_precision, 1.0);
        assert_eq!(b.rejected_precision, 0.5);
        assert_eq!(b.review_positive_share, 1.0);
    }

    #[test]
    fn calibration_error_is_the_mean_gap_between_score_and_outcome() {
        let scores = [0.05, 0.05, 0.95, 0.95];
        let (_, ece) = calibration(&scores, &[false, false, true, true]);
        assert!((ece - 0.05).abs() < 1e-6);
    }
}
