//! The small dense model on top of the sparse one: logistic regression (fitted with
//! linfa-logistic) over the sparse model's log-odds and the dense signals. It is fitted on
//! out-of-fold log-odds, so it also calibrates: its output is a probability, not just a score.

use anyhow::{Context, Result, ensure};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::features::{DENSE_LEN, DenseSignals};

/// Inputs of the stacked model: the sparse log-odds, then the dense signals.
pub const INPUTS: usize = 1 + DENSE_LEN;

/// A fitted stacked model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stacker {
    /// Coefficients, in the order of [`INPUTS`].
    pub coefficients: Vec<f32>,
    /// Intercept.
    pub intercept: f32,
    /// Mean of each input over the training rows, so an explanation can say how much an input
    /// moved a score away from a typical comment.
    pub means: Vec<f32>,
}

impl Stacker {
    /// Log-odds for a comment with sparse log-odds `logit` and dense signals `dense`.
    pub fn logit(&self, logit: f32, dense: &DenseSignals) -> f32 {
        let mut z = self.intercept + self.coefficients[0] * logit;
        for (c, v) in self.coefficients[1..].iter().zip(dense.values.iter()) {
            z += c * v;
        }
        z
    }

    /// How far each input moved this comment's log-odds from a typical comment's, in the order
    /// of [`INPUTS`].
    pub fn contributions(&self, logit: f32, dense: &DenseSignals) -> [f32; INPUTS] {
        let mut out = [0.0; INPUTS];
        out[0] = self.coefficients[0] * (logit - self.means[0]);
        for k in 0..DENSE_LEN {
            out[k + 1] = self.coefficients[k + 1] * (dense.values[k] - self.means[k + 1]);
        }
        out
    }

    /// Fits the model with linfa-logistic (L-BFGS, L2 penalty `alpha`).
    pub fn fit(logits: &[f32], dense: &[DenseSignals], labels: &[bool], alpha: f64) -> Result<Self> {
        ensure!(
            logits.len() == dense.len() && dense.len() == labels.len(),
            "stacker inputs differ in length"
        );
        ensure!(
            labels.iter().any(|&l| l) && labels.iter().any(|&l| !l),
            "stacker needs both positive and negative rows"
        );
        let rows = logits.len();
        let mut x = Array2::<f64>::zeros((rows, INPUTS));
        for r in 0..rows {
            x[(r, 0)] = f64::from(logits[r]);
            for k in 0..DENSE_LEN {
                x[(r, k + 1)] = f64::from(dense[r].values[k]);
            }
        }
        let means: Vec<f32> = x
            .mean_axis(ndarray::Axis(0))
            .context("no rows")?
            .iter()
            .map(|&m| m as f32)
            .collect();
        let y = Array1::from_vec(labels.to_vec());
        let dataset = Dataset::new(x, y);
        let fitted = LogisticRegression::default()
            .alpha(alpha)
            .max_iterations(300)
            .fit(&dataset)
            .context("fitting the stacked logistic model")?;
        // linfa models the probability of the *more frequent* class (`labels().pos`), which
        // for spam and abuse is usually `false`: flip the signs so the model gives P(true).
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        let coefficients = fitted.params().iter().map(|&c| (sign * c) as f32).collect();
        Ok(Stacker {
            coefficients,
            intercept: (sign * fitted.intercept()) as f32,
            means,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::linear::sigmoid;

    /// Rows where positives have high sparse log-odds and often a link; `positive` picks which
    /// rows are positive.
    fn rows(positive: impl Fn(usize) -> bool) -> (Vec<f32>, Vec<DenseSignals>, Vec<bool>) {
        let (mut logits, mut dense, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..300 {
            let p = positive(i);
            let noise = (i % 7) as f32 * 0.3 - 1.0;
            logits.push(if p { 2.0 + noise } else { -2.0 + noise });
            let mut d = DenseSignals::default();
            d.values[0] = if p && i % 2 == 0 { 0.69 } else { 0.0 };
            dense.push(d);
            labels.push(p);
        }
        (logits, dense, labels)
    }

    #[test]
    fn fitted_model_gives_the_probability_of_true_whichever_class_is_more_frequent() {
        for (name, positive) in [
            ("positives rare", Box::new(|i: usize| i % 3 == 0) as Box<dyn Fn(usize) -> bool>),
            ("positives common", Box::new(|i: usize| i % 3 != 0)),
            ("positives rare, first row negative", Box::new(|i: usize| i % 3 == 1)),
            ("positives common, first row positive", Box::new(|i: usize| i % 3 != 1)),
        ] {
            let (logits, dense, labels) = rows(positive);
            let stacker = Stacker::fit(&logits, &dense, &labels, 0.01).unwrap();
            let mut link = DenseSignals::default();
            link.values[0] = 0.69;
            let high = sigmoid(stacker.logit(2.0, &link));
            let low = sigmoid(stacker.logit(-2.0, &DenseSignals::default()));
            assert!(high > 0.8, "{name}: positive-looking row scored {high}");
            assert!(low < 0.2, "{name}: negative-looking row scored {low}");
            assert!(stacker.coefficients[0] > 0.0, "{name}");
        }
    }

    #[test]
    fn fitting_refuses_a_single_class() {
        let dense = vec![DenseSignals::default(); 3];
        assert!(Stacker::fit(&[1.0, 2.0, 3.0], &dense, &[true, true, true], 1.0).is_err());
    }
}
