//! In-process limiter: one governor keyed GCRA per policy.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ensinalab_ports::{RateDecision, RateLimitError, RateLimiter, RatePolicy};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Gcra};

use crate::emission_interval;

/// Idle keys of every policy are dropped every this many checks (of any policy), so memory
/// stays bounded with many users/IPs.
const EVICT_EVERY: u64 = 10_000;

type Keyed = Gcra<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

struct Limiters {
    by_policy: HashMap<&'static str, Keyed>,
    checks: u64,
}

/// The default limiter: per-process state, no IO.
pub struct InProcessLimiter {
    limiters: Mutex<Limiters>,
    clock: DefaultClock,
}

impl Default for InProcessLimiter {
    fn default() -> Self {
        Self {
            limiters: Mutex::new(Limiters {
                by_policy: HashMap::new(),
                checks: 0,
            }),
            clock: DefaultClock::default(),
        }
    }
}

impl InProcessLimiter {
    /// Keys currently held, over all policies.
    pub fn keys(&self) -> usize {
        let limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        limiters.by_policy.values().map(|l| l.len()).sum()
    }

    /// Drops keys whose quota is full again (they carry no information).
    pub fn evict_idle(&self) {
        let limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        for limiter in limiters.by_policy.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn decide(&self, policy: &RatePolicy, key: &str) -> RateDecision {
        let quota = NonZeroU32::new(policy.quota).unwrap_or(NonZeroU32::MIN);
        let interval = emission_interval(policy).max(Duration::from_nanos(1));
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        limiters.checks += 1;
        let evict = limiters.checks.is_multiple_of(EVICT_EVERY);
        let limiter = limiters.by_policy.entry(policy.name).or_insert_with(|| {
            let q = Quota::with_period(interval).unwrap_or_else(|| Quota::per_second(quota));
            Gcra::keyed(q.allow_burst(quota)).with_middleware::<StateInformationMiddleware>()
        });
        let decision = match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateDecision {
                    allowed: true,
                    remaining,
                    reset_after: interval * (policy.quota.saturating_sub(remaining)),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                RateDecision {
                    allowed: false,
                    remaining: 0,
                    reset_after: wait + interval * policy.quota.saturating_sub(1),
                    retry_after: Some(wait),
                }
            }
        };
        if evict {
            // Every policy's idle keys: the one checked now may not be the one that grew.
            for limiter in limiters.by_policy.values() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        decision
    }
}

impl RateLimiter for InProcessLimiter {
    async fn check(&self, policy: &RatePolicy, key: &str) -> Result<RateDecision, RateLimitError> {
        Ok(self.decide(policy, key))
    }
}
