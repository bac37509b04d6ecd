//! Rate-limit adapters behind `ensinalab_ports::RateLimiter`, both GCRA with the same
//! semantics (bursts up to the quota, one request back every `window / quota`):
//! [`InProcessLimiter`] (governor; the default, one instance) and [`RedisLimiter`] (one atomic
//! Lua script; limits shared by every API instance behind a load balancer).

mod memory;
mod redis_gcra;

pub use memory::InProcessLimiter;
pub use redis_gcra::RedisLimiter;

use std::time::Duration;

use ensinalab_ports::RatePolicy;

/// Time between two requests at the sustained rate.
fn emission_interval(policy: &RatePolicy) -> Duration {
    policy.window / policy.quota.max(1)
}
