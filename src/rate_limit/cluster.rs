//! The cluster-wide limiter, the source of truth shared by every instance: GCRA ("generic cell
//! rate algorithm") state per bucket key in the store, all of a request's buckets tested and
//! charged at once, in one round trip, all or nothing. Time is the store's own clock, so
//! instances with skewed clocks agree.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT) of the next request at the
//! quota's pace. A request at `now` is admitted when `max(TAT, now) + interval − burst ·
//! interval <= now`; admitting moves TAT to `max(TAT, now) + interval`. Unlike fixed windows,
//! it never lets twice the quota through at a window's edge. [`gcra`] is the rule; a backend
//! applies it atomically ([`CounterStore`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Bucket, Buckets, Charges, Verdict};

/// Why the cluster tier gave no verdict.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(pub String);

/// One bucket key to test and charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The bucket.
    pub bucket: Bucket,
    /// The key within it (an address, a keyed hash, an article).
    pub key: String,
    /// Time between two admissions in the long run.
    pub interval: Duration,
    /// Admissions at once after a quiet spell (at least 1).
    pub burst: u32,
    /// Counts what it would refuse without refusing.
    pub shadow: bool,
}

/// What a store answered for a set of cells (positions index the cells given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Charged {
    /// Every non-shadow cell admitted and was charged.
    Admitted {
        /// Shadow cells that would have refused.
        shadow_refusals: Vec<usize>,
    },
    /// A cell refused (the one with the longest wait); nothing was charged.
    Refused {
        /// Its position.
        position: usize,
        /// How long until it would admit.
        wait: Duration,
        /// Shadow cells that would have refused.
        shadow_refusals: Vec<usize>,
    },
}

/// The GCRA rule for one cell: given its theoretical arrival time (µs, `None` when the key is
/// new) at `now` (µs), the wait before it admits (0: admits now) and its TAT after admitting.
/// Backends apply this (the Redis backend's script is the same rule in Lua).
pub fn gcra(tat: Option<u64>, now: u64, interval: u64, burst: u32) -> (u64, u64) {
    let tat = tat.unwrap_or(now).max(now);
    let next = tat.saturating_add(interval);
    let allowance = interval.saturating_mul(u64::from(burst.max(1)));
    let wait = next.saturating_sub(allowance).saturating_sub(now);
    (wait, next)
}

/// Where the limiter's counters are kept: tests and charges cells all or nothing, at the
/// store's clock.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Applies [`gcra`] to every cell atomically: charges them all if every non-shadow cell
    /// admits, none otherwise.
    async fn charge(&self, cells: &[Cell]) -> Result<Charged, ClusterError>;
}

/// The cluster tier. Its counters are either in a store of their own (`rate_limit.redis_url`)
/// and charged by a call of their own, or in the submissions' store and charged with the
/// submission, in the same atomic call that stores it ([`crate::store::Admission`]).
#[derive(Clone)]
pub struct ClusterLimiter {
    /// `None`: the counters are in the submissions' store.
    store: Option<Arc<dyn CounterStore>>,
    buckets: Buckets,
}

impl ClusterLimiter {
    /// A limiter over a counter store of its own.
    pub fn new(store: Arc<dyn CounterStore>, buckets: &Buckets) -> Self {
        ClusterLimiter {
            store: Some(store),
            buckets: buckets.clone(),
        }
    }

    /// A limiter whose counters the submissions' store charges with each submission.
    pub fn with_submissions(buckets: &Buckets) -> Self {
        ClusterLimiter {
            store: None,
            buckets: buckets.clone(),
        }
    }

    /// Whether the submissions' store charges the counters.
    pub fn with_each_submission(&self) -> bool {
        self.store.is_none()
    }

    /// The same limiter with other quotas.
    pub fn with_buckets(&self, buckets: &Buckets) -> Self {
        ClusterLimiter {
            buckets: buckets.clone(),
            ..self.clone()
        }
    }

    /// The cells of `charges` under the quotas in force.
    pub fn cells(&self, charges: &Charges) -> Vec<Cell> {
        charges
            .items
            .iter()
            .filter_map(|(bucket, key)| {
                let quota = self.buckets.get(*bucket)?;
                Some(Cell {
                    bucket: *bucket,
                    key: key.clone(),
                    interval: quota.interval(),
                    burst: quota.burst.max(1),
                    shadow: quota.shadow,
                })
            })
            .collect()
    }

    /// Tests and charges every bucket of `charges`, all or nothing, in the limiter's own store
    /// (with the submissions' store, nothing is charged here: see [`ClusterLimiter::cells`]).
    pub async fn charge(&self, charges: &Charges) -> Result<Verdict, ClusterError> {
        let cells = self.cells(charges);
        let Some(store) = self.store.as_ref().filter(|_| !cells.is_empty()) else {
            return Ok(Verdict::Admitted {
                shadow_refusals: Vec::new(),
            });
        };
        verdict(&cells, store.charge(&cells).await?)
    }
}

/// What a store's answer for `cells` means, by bucket.
pub fn verdict(cells: &[Cell], charged: Charged) -> Result<Verdict, ClusterError> {
    let bucket_at = |positions: Vec<usize>| -> Vec<Bucket> {
        positions
            .into_iter()
            .filter_map(|p| cells.get(p).map(|c| c.bucket))
            .collect()
    };
    match charged {
        Charged::Admitted { shadow_refusals } => Ok(Verdict::Admitted {
            shadow_refusals: bucket_at(shadow_refusals),
        }),
        Charged::Refused {
            position,
            wait,
            shadow_refusals,
        } => {
            let bucket = cells
                .get(position)
                .map(|c| c.bucket)
                .ok_or_else(|| ClusterError(format!("the store named cell {position}")))?;
            Ok(Verdict::Refused {
                bucket,
                retry_after: wait,
                shadow_refusals: bucket_at(shadow_refusals),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_admits_a_burst_then_one_per_interval() {
        let (interval, burst) = (1_000, 3);
        let mut tat = None;
        let mut now = 10_000;
        for _ in 0..3 {
            let (wait, next) = gcra(tat, now, interval, burst);
            assert_eq!(wait, 0);
            tat = Some(next);
        }
        let (wait, _) = gcra(tat, now, interval, burst);
        assert_eq!(wait, 1_000, "the fourth waits one interval");
        now += 1_000;
        assert_eq!(gcra(tat, now, interval, burst).0, 0);
        // A long quiet spell does not save up more than the burst.
        let (wait, _) = gcra(Some(0), 1_000_000, interval, burst);
        assert_eq!(wait, 0);
    }
}
