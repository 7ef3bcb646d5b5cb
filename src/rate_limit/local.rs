//! The in-process flood gate: governor's keyed GCRA limiters, one per bucket kind, with each
//! quota widened by the configured headroom. It turns away what exceeds a quota several times
//! over on this instance without a Redis round trip, so a flood never reaches Redis; everything
//! it lets through is decided by the cluster tier.
//!
//! governor cannot test a quota without spending it, so a request the gate lets through one
//! bucket and refuses at a later one has spent the earlier one's local quota. Buckets are
//! checked most specific first (e-mail, IP, article, global) so that what is spent belongs to
//! the same reader, and the headroom absorbs it: in steady traffic the gate never refuses what
//! the cluster tier would admit. The cluster tier, the source of truth, charges all or nothing.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota as GovernorQuota, RateLimiter};

use super::{Bucket, Buckets, Charges, Quota};

type Keyed<C> =
    RateLimiter<String, DefaultKeyedStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Checks between two sweeps of keys that have recovered their whole burst.
const SWEEP_EVERY: u64 = 10_000;

/// The flood gate.
pub struct FloodGate<C: Clock> {
    limiters: Vec<(Bucket, Keyed<C>)>,
    clock: C,
    checks: AtomicU64,
}

impl<C: Clock + Clone> FloodGate<C> {
    /// A gate for `buckets`, each quota's rate and burst multiplied by `headroom`.
    pub fn new(buckets: &Buckets, headroom: f64, clock: C) -> Self {
        let limiters = Bucket::ALL
            .iter()
            // A bucket in shadow mode refuses nothing, here either.
            .filter_map(|&b| buckets.get(b).filter(|q| !q.shadow).map(|q| (b, q)))
            .map(|(bucket, quota)| {
                let limiter = RateLimiter::new(
                    widened(quota, headroom),
                    DefaultKeyedStateStore::default(),
                    clock.clone(),
                );
                (bucket, limiter)
            })
            .collect();
        FloodGate {
            limiters,
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Lets `charges` through, or names the first bucket that refuses and how long until it
    /// would admit.
    pub fn check(&self, charges: &Charges) -> Result<(), (Bucket, Duration)> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Keys of readers gone quiet are dropped, so the gate's memory stays bounded.
            for (_, limiter) in &self.limiters {
                limiter.retain_recent();
            }
        }
        for (bucket, key) in &charges.items {
            let Some((_, limiter)) = self.limiters.iter().find(|(b, _)| b == bucket) else {
                continue;
            };
            if let Err(not_until) = limiter.check_key(key) {
                return Err((*bucket, not_until.wait_time_from(self.clock.now())));
            }
        }
        Ok(())
    }
}

/// A bucket's quota, `headroom` times as generous.
fn widened(quota: &Quota, headroom: f64) -> GovernorQuota {
    let interval = quota.interval().div_f64(headroom.max(1.0));
    let burst = (f64::from(quota.burst.max(1)) * headroom).ceil() as u32;
    GovernorQuota::with_period(interval.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| GovernorQuota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn gate(headroom: f64, clock: &FakeRelativeClock) -> FloodGate<FakeRelativeClock> {
        let q = |rate, burst| {
            Some(Quota {
                rate,
                per: Duration::from_secs(60),
                burst,
                shadow: false,
            })
        };
        let buckets = Buckets {
            email: q(6, 2),
            ip: q(60, 5),
            ..Buckets::default()
        };
        FloodGate::new(&buckets, headroom, clock.clone())
    }

    fn charges(email: &str, ip: &str) -> Charges {
        Charges {
            items: vec![(Bucket::Email, email.into()), (Bucket::Ip, ip.into())],
        }
    }

    #[test]
    fn a_burst_passes_then_the_gate_refuses_until_the_rate_refills_it() {
        let clock = FakeRelativeClock::default();
        let gate = gate(1.0, &clock);
        let c = charges("e1", "1.1.1.1");
        assert!(gate.check(&c).is_ok());
        assert!(gate.check(&c).is_ok());
        let (bucket, wait) = gate.check(&c).unwrap_err();
        assert_eq!(bucket, Bucket::Email);
        // 6 per minute: one every 10 s.
        assert_eq!(wait, Duration::from_secs(10));
        clock.advance(Duration::from_secs(9));
        assert!(gate.check(&c).is_err());
        clock.advance(Duration::from_secs(1));
        assert!(gate.check(&c).is_ok());
    }

    #[test]
    fn headroom_widens_burst_and_rate() {
        let clock = FakeRelativeClock::default();
        let gate = gate(2.0, &clock);
        let c = charges("e1", "1.1.1.1");
        for _ in 0..4 {
            assert!(gate.check(&c).is_ok());
        }
        let (_, wait) = gate.check(&c).unwrap_err();
        assert_eq!(wait, Duration::from_secs(5));
    }

    #[test]
    fn keys_are_counted_apart() {
        let clock = FakeRelativeClock::default();
        let gate = gate(1.0, &clock);
        for n in 0..5 {
            // Five readers behind one address: each e-mail has its own burst, the address
            // has five.
            assert!(gate.check(&charges(&format!("e{n}"), "1.1.1.1")).is_ok());
        }
        let (bucket, _) = gate.check(&charges("e9", "1.1.1.1")).unwrap_err();
        assert_eq!(bucket, Bucket::Ip);
        assert!(gate.check(&charges("e9", "2.2.2.2")).is_ok());
    }

    #[test]
    fn a_refusal_by_the_first_bucket_spends_nothing_of_the_next() {
        let clock = FakeRelativeClock::default();
        let gate = gate(1.0, &clock);
        // One reader floods: the e-mail bucket refuses before the address is charged, so
        // others behind the same address still get its whole burst.
        for _ in 0..50 {
            let _ = gate.check(&charges("flood", "1.1.1.1"));
        }
        for n in 0..3 {
            assert!(
                gate.check(&charges(&format!("other{n}"), "1.1.1.1"))
                    .is_ok()
            );
        }
    }
}
