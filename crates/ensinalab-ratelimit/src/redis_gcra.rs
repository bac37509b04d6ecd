//! Shared limiter: GCRA in Redis, one `EVALSHA` per request.

use std::time::Duration;

use ensinalab_ports::{RateDecision, RateLimitError, RateLimiter, RatePolicy};
use redis::aio::ConnectionManager;

use crate::emission_interval;

/// KEYS[1] = the key; ARGV = emission interval (µs), window (µs). The theoretical arrival time
/// (TAT) is stored in µs of the Redis server's clock, so every API instance agrees on "now".
/// A refused request does not move the TAT. Returns {allowed, remaining, reset_us, retry_us}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((window - (new_tat - now)) / interval), new_tat - now, 0}
";

/// Limits shared through Redis (`RATE_LIMIT_BACKEND=redis`).
#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl RedisLimiter {
    /// Connects to `url`; keys are `<prefix><policy>:<key>`.
    ///
    /// # Errors
    /// [`RateLimitError`] when Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url).map_err(|e| RateLimitError(Box::new(e)))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| RateLimitError(Box::new(e)))?;
        Ok(Self {
            conn,
            script: redis::Script::new(GCRA),
            prefix: prefix.to_owned(),
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn from_micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

impl RateLimiter for RedisLimiter {
    async fn check(&self, policy: &RatePolicy, key: &str) -> Result<RateDecision, RateLimitError> {
        let mut conn = self.conn.clone();
        let (allowed, remaining, reset, retry): (i64, i64, i64, i64) = self
            .script
            .key(format!("{}{}:{key}", self.prefix, policy.name))
            .arg(micros(emission_interval(policy)).max(1))
            .arg(micros(policy.window))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| RateLimitError(Box::new(e)))?;
        Ok(RateDecision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_after: from_micros(reset),
            retry_after: (allowed == 0).then(|| from_micros(retry)),
        })
    }
}
