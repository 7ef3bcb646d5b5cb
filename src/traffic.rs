//! Recent traffic as the decision saw it: the inputs of the last decisions this instance made,
//! kept in memory so operators can see the score distributions and what other thresholds
//! would have done to the same comments (the console's what-if), by running the decision
//! function itself on them.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::classifier::Scores;
use crate::decide::{self, BotRules, Outcome, ReasonCode, Seen, Thresholds};

/// How many decisions are kept when the configuration does not say.
pub const DEFAULT_KEPT: usize = 10_000;

/// What one decision was made from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// The scores (`None`: blocked by a list, not scored).
    pub scores: Option<Scores>,
    /// The bot signals, and whether pre-moderation applied.
    pub seen: Seen,
    /// The list that blocked it.
    pub blocked: Option<ReasonCode>,
}

/// How many comments each outcome gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Published.
    pub accepted: usize,
    /// Held for moderators.
    pub held: usize,
    /// Rejected.
    pub rejected: usize,
}

impl Split {
    /// All of them.
    pub fn total(&self) -> usize {
        self.accepted + self.held + self.rejected
    }

    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Accepted => self.accepted += 1,
            Outcome::PendingReview => self.held += 1,
            Outcome::Rejected => self.rejected += 1,
        }
    }
}

/// The last decisions, at most `kept` of them, oldest dropped first.
#[derive(Debug)]
pub struct Recent {
    kept: usize,
    samples: Mutex<VecDeque<Sample>>,
}

impl Default for Recent {
    fn default() -> Self {
        Recent::new(DEFAULT_KEPT)
    }
}

impl Recent {
    /// Keeps the last `kept` decisions.
    pub fn new(kept: usize) -> Self {
        Recent {
            kept: kept.max(1),
            samples: Mutex::new(VecDeque::with_capacity(kept.clamp(1, DEFAULT_KEPT))),
        }
    }

    /// Records one decision's inputs (the hot path: one short lock, no allocation once full).
    pub fn record(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == self.kept {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// A copy of what is kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.iter().copied().collect()
    }
}

/// What `thresholds` decide for `samples`, with the decision function the pipeline uses.
pub fn split(
    samples: &[Sample],
    thresholds: &Thresholds,
    bots: &BotRules,
    classifier_shadow: bool,
) -> Split {
    let mut split = Split::default();
    for s in samples {
        let d = decide::decide_with(
            s.scores,
            thresholds,
            bots,
            s.seen,
            s.blocked,
            classifier_shadow,
        );
        split.add(d.outcome);
    }
    split
}

/// How many scored samples fall in each of `bins` equal bins of [0, 1], for one head.
pub fn histogram(samples: &[Sample], bins: usize, head: fn(&Scores) -> f32) -> Vec<usize> {
    let bins = bins.max(1);
    let mut counts = vec![0; bins];
    for score in samples.iter().filter_map(|s| s.scores.as_ref()).map(head) {
        let bin = ((score.clamp(0.0, 1.0) * bins as f32) as usize).min(bins - 1);
        counts[bin] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(spam: f32, toxic: f32) -> Sample {
        Sample {
            scores: Some(Scores { spam, toxic }),
            seen: Seen::default(),
            blocked: None,
        }
    }

    #[test]
    fn only_the_last_are_kept() {
        let recent = Recent::new(3);
        for k in 0..5 {
            recent.record(scored(k as f32 / 10.0, 0.0));
        }
        let spam: Vec<f32> = recent
            .samples()
            .iter()
            .map(|s| s.scores.unwrap().spam)
            .collect();
        assert_eq!(spam, [0.2, 0.3, 0.4]);
    }

    #[test]
    fn the_split_is_the_decision_functions() {
        let samples = [
            scored(0.1, 0.1),
            scored(0.5, 0.1),
            scored(0.95, 0.1),
            scored(0.1, 0.9),
            Sample {
                scores: None,
                seen: Seen::default(),
                blocked: Some(ReasonCode::BlockedWord),
            },
        ];
        let t = Thresholds {
            accept_below: 0.3,
            reject_at: 0.9,
            review_toxic_at: 0.8,
        };
        let bots = BotRules::default();
        let got = split(&samples, &t, &bots, false);
        assert_eq!(
            got,
            Split {
                accepted: 1,
                held: 2,
                rejected: 2
            }
        );
        let looser = Thresholds {
            accept_below: 0.6,
            ..t
        };
        assert_eq!(split(&samples, &looser, &bots, false).accepted, 2);
        // With the classifier in shadow only the block decides.
        assert_eq!(split(&samples, &t, &bots, true).rejected, 1);
    }

    #[test]
    fn histograms_put_each_score_in_one_bin() {
        let samples = [scored(0.0, 1.0), scored(0.55, 0.5), scored(1.0, 0.99)];
        assert_eq!(histogram(&samples, 4, |s| s.spam), [1, 0, 1, 1]);
        assert_eq!(histogram(&samples, 4, |s| s.toxic), [0, 0, 1, 2]);
    }
}
