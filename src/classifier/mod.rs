//! The trained comment classifier: two calibrated heads (`spam`, `toxic`) over hashed word,
//! phrase, entity and character n-gram features of normalised text, with a small dense model
//! stacked on top, and explanations in readable form.
//!
//! Reading order: [`analyze`] (normalisation and tokens) → [`features`] (hashing, dense
//! signals) → [`linear`] (sparse logistic regression) → [`stacker`] (linfa logistic
//! regression over its log-odds and the signals, which also calibrates) → [`model`] (the file,
//! scoring, explanations). [`train`], [`evaluate`] and [`batch`] are what the command line runs.

pub mod analyze;
pub mod batch;
pub mod corpus;
pub mod evaluate;
pub mod features;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod stacker;
pub mod train;

pub use model::{Explanation, HeadKind, Model, ModelError, Reason, Scores, Thresholds};
