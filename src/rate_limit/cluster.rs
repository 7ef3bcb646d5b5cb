//! The cluster-wide limiter, the source of truth shared by every instance: GCRA ("generic cell
//! rate algorithm") state per bucket key in Redis, all of a request's buckets tested and charged
//! by one Lua script, in one round trip, all or nothing. Time is Redis's own clock, so instances
//! with skewed clocks agree.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT) of the next request at the
//! quota's pace. A request at `now` is admitted when `max(TAT, now) + interval − burst ·
//! interval <= now`; admitting moves TAT to `max(TAT, now) + interval`. Unlike fixed windows,
//! it never lets twice the quota through at a window's edge.

use std::time::Duration;

use crate::store::redis::Connection;

use super::{Bucket, Buckets, Charges, Verdict};

/// KEYS: one per bucket. ARGV: per bucket, its interval (µs), burst and shadow flag (1/0).
/// Returns {admitted (1/0), refused bucket's position (1-based, 0 if none), wait (µs), then
/// the positions of shadow buckets that would have refused}.
const CHARGE: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local refused, worst = 0, 0
local shadow = {}
local next_tat = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[i * 3 - 2])
  local burst = tonumber(ARGV[i * 3 - 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local wait = new_tat - interval * burst - now
  if wait > 0 then
    if ARGV[i * 3] == '1' then
      shadow[#shadow + 1] = i
    elseif wait > worst then
      refused, worst = i, wait
    end
  else
    next_tat[i] = new_tat
  end
end
if refused == 0 then
  for i = 1, #KEYS do
    if next_tat[i] then
      redis.call('SET', KEYS[i], next_tat[i], 'PX', math.ceil((next_tat[i] - now) / 1000) + 1000)
    end
  end
end
local answer = {refused == 0 and 1 or 0, refused, worst}
for _, i in ipairs(shadow) do answer[#answer + 1] = i end
return answer
"#;

/// Why the cluster tier gave no verdict.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(String);

/// The cluster tier.
#[derive(Clone)]
pub struct ClusterLimiter {
    connection: Connection,
    prefix: String,
    buckets: Buckets,
    script: redis::Script,
}

impl ClusterLimiter {
    /// A limiter over `connection`, keys under `prefix`.
    pub fn new(connection: Connection, prefix: &str, buckets: &Buckets) -> Self {
        ClusterLimiter {
            connection,
            prefix: prefix.to_owned(),
            buckets: buckets.clone(),
            script: redis::Script::new(CHARGE),
        }
    }

    /// The same limiter with other quotas.
    pub fn with_buckets(&self, buckets: &Buckets) -> Self {
        ClusterLimiter {
            buckets: buckets.clone(),
            ..self.clone()
        }
    }

    /// The Redis key of a bucket key.
    pub fn key(&self, bucket: Bucket, key: &str) -> String {
        format!("{}rl:{}:{}", self.prefix, bucket.name(), key)
    }

    /// Tests and charges every bucket of `charges`, all or nothing.
    pub async fn charge(&self, charges: &Charges) -> Result<Verdict, ClusterError> {
        let mut invocation = self.script.prepare_invoke();
        let mut order = Vec::with_capacity(charges.items.len());
        for (bucket, key) in &charges.items {
            let Some(quota) = self.buckets.get(*bucket) else {
                continue;
            };
            order.push(*bucket);
            invocation
                .key(self.key(*bucket, key))
                .arg(u64::try_from(quota.interval().as_micros()).unwrap_or(u64::MAX))
                .arg(quota.burst.max(1))
                .arg(if quota.shadow { "1" } else { "0" });
        }
        if order.is_empty() {
            return Ok(Verdict::Admitted {
                shadow_refusals: Vec::new(),
            });
        }
        let answer: Vec<i64> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| ClusterError(e.to_string()))?;
        let bucket_at = |position: i64| {
            usize::try_from(position - 1)
                .ok()
                .and_then(|i| order.get(i).copied())
        };
        let shadow_refusals = answer
            .iter()
            .skip(3)
            .filter_map(|&p| bucket_at(p))
            .collect();
        match answer.as_slice() {
            [1, ..] => Ok(Verdict::Admitted { shadow_refusals }),
            [0, position, wait, ..] => {
                let bucket = bucket_at(*position)
                    .ok_or_else(|| ClusterError(format!("the limiter named bucket {position}")))?;
                Ok(Verdict::Refused {
                    bucket,
                    retry_after: Duration::from_micros(u64::try_from(*wait).unwrap_or(0)),
                    shadow_refusals,
                })
            }
            other => Err(ClusterError(format!("unexpected answer {other:?}"))),
        }
    }
}
