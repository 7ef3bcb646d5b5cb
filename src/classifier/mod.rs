//! The trained comment classifier: two calibrated heads (`spam`, `toxic`) over hashed word,
//! phrase, entity, character n-gram and signal features of normalised text, with explanations
//! in readable form.
//!
//! Reading order: [`analyze`] (normalisation and tokens) → [`features`] (hashing, weighting,
//! signal buckets) → [`linear`] (sparse logistic regression) → [`calibration`] (linfa logistic
//! regression from log-odds to probability) → [`model`] (the file, scoring, explanations).
//! [`train`], [`evaluate`] and [`batch`] are what the command line runs.

pub mod analyze;
pub mod batch;
pub mod calibration;
pub mod corpus;
pub mod evaluate;
pub mod features;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod train;

/// The model committed with the service and loaded by `serve` unless configured otherwise,
/// relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/vi-en-20261127.model";

pub use model::{Explanation, HeadKind, Model, ModelError, Reason, Scores, Thresholds};
