//! The rate limiter's counters in Redis ([`CounterStore`]): one GCRA state per bucket key
//! (`<prefix>rl:<bucket>:<key>`), every cell of a request tested and charged by one script at
//! Redis' clock, all or nothing.

use std::time::Duration;

use async_trait::async_trait;

use super::Connection;
use crate::rate_limit::cluster::{Cell, Charged, ClusterError, CounterStore};

/// GCRA over `n` cells in Lua, the rule of [`crate::rate_limit::cluster::gcra`]: cell `i`'s
/// counter is `KEYS[ko + i]`, its interval (µs), burst and shadow flag (`1`) are
/// `ARGV[ao + 3i - 2 ..= ao + 3i]`. `gcra_test` returns the refusing cell (0 for none) with the
/// longest wait, that wait, the shadow cells that would refuse and each admitting cell's next
/// TAT; `gcra_charge` writes those TATs. Shared by [`CHARGE`] and the submission script.
pub(super) const GCRA: &str = r#"
local function gcra_test(n, ko, ao, now)
  local refused, worst, shadow, next_tat = 0, 0, {}, {}
  for i = 1, n do
    local interval = tonumber(ARGV[ao + i * 3 - 2])
    local burst = tonumber(ARGV[ao + i * 3 - 1])
    local tat = tonumber(redis.call('GET', KEYS[ko + i]) or now)
    if tat < now then tat = now end
    local new_tat = tat + interval
    local wait = new_tat - interval * burst - now
    if wait > 0 then
      if ARGV[ao + i * 3] == '1' then
        shadow[#shadow + 1] = i
      elseif wait > worst then
        refused, worst = i, wait
      end
    else
      next_tat[i] = new_tat
    end
  end
  return refused, worst, shadow, next_tat
end
local function gcra_charge(n, ko, next_tat, now)
  for i = 1, n do
    if next_tat[i] then
      redis.call('SET', KEYS[ko + i], next_tat[i], 'PX', math.ceil((next_tat[i] - now) / 1000) + 1000)
    end
  end
end
"#;

/// The limiter's own script (with [`GCRA`] before it). KEYS: one per bucket. ARGV: per
/// bucket, its interval (µs), burst and shadow flag (1/0). Returns {admitted (1/0), refused
/// bucket's position (1-based, 0 if none), wait (µs), then the positions of shadow buckets that
/// would have refused}.
const CHARGE: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local refused, worst, shadow, next_tat = gcra_test(#KEYS, 0, 0, now)
if refused == 0 then
  gcra_charge(#KEYS, 0, next_tat, now)
end
local answer = {refused == 0 and 1 or 0, refused, worst}
for _, i in ipairs(shadow) do answer[#answer + 1] = i end
return answer
"#;

/// The key of a cell's counter, the same whether the limiter charges it or the submission does.
pub(super) fn counter_key(prefix: &str, cell: &Cell) -> String {
    format!("{prefix}rl:{}:{}", cell.bucket.name(), cell.key)
}

/// The counters of one Redis.
#[derive(Clone)]
pub struct RedisCounters {
    connection: Connection,
    prefix: String,
    script: redis::Script,
}

impl RedisCounters {
    /// Counters over `connection`, keys under `prefix`.
    pub fn new(connection: Connection, prefix: &str) -> Self {
        RedisCounters {
            connection,
            prefix: prefix.to_owned(),
            script: redis::Script::new(&format!("{GCRA}{CHARGE}")),
        }
    }

    /// The Redis key of a cell.
    pub fn key(&self, cell: &Cell) -> String {
        counter_key(&self.prefix, cell)
    }
}

#[async_trait]
impl CounterStore for RedisCounters {
    async fn charge(&self, cells: &[Cell]) -> Result<Charged, ClusterError> {
        let mut invocation = self.script.prepare_invoke();
        for cell in cells {
            invocation
                .key(self.key(cell))
                .arg(u64::try_from(cell.interval.as_micros()).unwrap_or(u64::MAX))
                .arg(cell.burst.max(1))
                .arg(if cell.shadow { "1" } else { "0" });
        }
        let answer: Vec<i64> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| ClusterError(e.to_string()))?;
        // Positions come back 1-based.
        let positions = |from: &[i64]| -> Vec<usize> {
            from.iter()
                .filter_map(|&p| usize::try_from(p - 1).ok())
                .collect()
        };
        match answer.as_slice() {
            [1, _, _, shadow @ ..] => Ok(Charged::Admitted {
                shadow_refusals: positions(shadow),
            }),
            [0, position, wait, shadow @ ..] => Ok(Charged::Refused {
                position: usize::try_from(position - 1)
                    .map_err(|_| ClusterError(format!("the limiter named bucket {position}")))?,
                wait: Duration::from_micros(u64::try_from(*wait).unwrap_or(0)),
                shadow_refusals: positions(shadow),
            }),
            other => Err(ClusterError(format!("unexpected answer {other:?}"))),
        }
    }
}
