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

/// Maps `items` on every core, a contiguous part per core, keeping their order. `map` gets the
/// offset of its part in `items` and the part. A panic in a worker is a bug and is passed on.
pub(crate) fn parallel_chunks<T: Sync, U: Send>(
    items: &[T],
    map: impl Fn(usize, &[T]) -> Vec<U> + Sync,
) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                let map = &map;
                scope.spawn(move || map(k * chunk, part))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
