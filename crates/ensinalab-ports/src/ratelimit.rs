//! The rate-limit port: per-key quotas shared by every route handler, in-process by default,
//! in Redis when several API instances must share limits.

use std::future::Future;
use std::time::Duration;

use crate::error::BoxError;

/// A named quota: at most `quota` requests per `window` per key (GCRA, bursts up to `quota`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePolicy {
    /// Appears in `RateLimit-Policy` / `RateLimit` headers and in storage keys.
    pub name: &'static str,
    pub quota: u32,
    pub window: Duration,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// Requests left in the current window after this one.
    pub remaining: u32,
    /// Until the key is back to its full quota.
    pub reset_after: Duration,
    /// When refused: how long until one request would be allowed.
    pub retry_after: Option<Duration>,
}

/// The limiter could not answer (e.g. Redis down). Callers decide whether to fail open.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable")]
pub struct RateLimitError(#[source] pub BoxError);

/// Counts one request against `policy` for `key`.
pub trait RateLimiter: Send + Sync {
    /// Records the request if allowed; a refused request MUST NOT consume quota.
    ///
    /// # Errors
    /// [`RateLimitError`] when the backing store cannot be reached.
    fn check(
        &self,
        policy: &RatePolicy,
        key: &str,
    ) -> impl Future<Output = Result<RateDecision, RateLimitError>> + Send;
}
