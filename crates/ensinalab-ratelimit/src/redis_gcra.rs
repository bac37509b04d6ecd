//! Shared limiter: GCRA in Redis, one `EVALSHA` per request.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ensinalab_ports::{RateDecision, RateLimitError, RateLimiter, RatePolicy};
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

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

/// After a failed first connection, checks fail at once for this long instead of each waiting
/// for a connect timeout (the API fails open meanwhile; see `ensinalab-api`).
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// Limits shared through Redis (`RATE_LIMIT_BACKEND=redis`).
#[derive(Clone)]
pub struct RedisLimiter {
    client: redis::Client,
    /// Set by the first successful connection; the manager then reconnects by itself.
    conn: Arc<OnceCell<ConnectionManager>>,
    /// No connection attempt before this instant (after a failed one).
    retry_at: Arc<Mutex<Option<Instant>>>,
    script: redis::Script,
    prefix: String,
}

fn manager_config() -> redis::aio::ConnectionManagerConfig {
    // Few, short retries: a limit check must not hold a request for long while Redis is down
    // (the manager reconnects again on the next use anyway).
    redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
}

impl RedisLimiter {
    /// Connects to `url`; keys are `<prefix><policy>:<key>`.
    ///
    /// # Errors
    /// [`RateLimitError`] when Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RateLimitError> {
        let limiter = Self::lazy(url, prefix)?;
        limiter.connection().await?;
        Ok(limiter)
    }

    /// Checks the URL only; connects on the first check. A Redis that is down at start then
    /// shows up as [`RateLimitError`] on checks, and heals by itself when it comes back.
    ///
    /// # Errors
    /// [`RateLimitError`] when `url` is not a Redis URL.
    pub fn lazy(url: &str, prefix: &str) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url).map_err(|e| RateLimitError(Box::new(e)))?;
        Ok(Self {
            client,
            conn: Arc::new(OnceCell::new()),
            retry_at: Arc::new(Mutex::new(None)),
            script: redis::Script::new(GCRA),
            prefix: prefix.to_owned(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, RateLimitError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let backing_off = self
            .retry_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| Instant::now() < at);
        if backing_off {
            return Err(RateLimitError("Redis unreachable; backing off".into()));
        }
        let result = self
            .conn
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), manager_config())
            })
            .await;
        match result {
            Ok(conn) => Ok(conn.clone()),
            Err(e) => {
                *self.retry_at.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(Instant::now() + RECONNECT_BACKOFF);
                Err(RateLimitError(Box::new(e)))
            }
        }
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
        let mut conn = self.connection().await?;
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
