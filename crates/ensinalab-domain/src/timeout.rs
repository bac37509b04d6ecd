//! The automatic timeout: a job that has run longer than a factor of its expected time is
//! cancelled by the server itself (for [`CancelReason::Timeout`](crate::CancelReason::Timeout),
//! whose cancel moves only running rows). Running time counts from the worker's first report
//! (STARTED or PROGRESS), not from creation: a job waiting in the queue is not running late.
//! [`AutoCancel::cutoff`] is the rule: a store cancels the running jobs that started before it.

use std::time::Duration;

use time::OffsetDateTime;

use crate::status::ResourceKind;

/// When running jobs of each kind are cancelled for running too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoCancel {
    /// A briefing's option generation may run this long.
    pub options: Duration,
    /// A video's generation may run this long.
    pub video: Duration,
}

impl AutoCancel {
    /// `factor` × each kind's expected time; `None` (no automatic timeout) when `factor` is 0.
    /// A factor that is negative or not a number is taken as 0.
    pub fn new(factor: f64, expected_options: Duration, expected_video: Duration) -> Option<Self> {
        if factor.is_nan() || factor <= 0.0 {
            return None;
        }
        let scaled = |expected: Duration| {
            Duration::try_from_secs_f64(expected.as_secs_f64() * factor).unwrap_or(Duration::MAX)
        };
        Some(Self {
            options: scaled(expected_options),
            video: scaled(expected_video),
        })
    }

    /// How long a job of `kind` may run.
    pub fn limit(&self, kind: ResourceKind) -> Duration {
        match kind {
            ResourceKind::Briefing => self.options,
            ResourceKind::Video => self.video,
        }
    }

    /// When a running job of `kind` is late at `now`: it started before this, i.e. it has run
    /// longer than [`Self::limit`]. A limit too long to subtract from `now` puts the cutoff at
    /// the Unix epoch, before any job started.
    pub fn cutoff(&self, kind: ResourceKind, now: OffsetDateTime) -> OffsetDateTime {
        time::Duration::try_from(self.limit(kind))
            .ok()
            .and_then(|limit| now.checked_sub(limit))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_limit_is_the_factor_times_each_kinds_expected_time() {
        let policy = AutoCancel::new(2.0, 5 * MIN, 10 * MIN).unwrap();
        assert_eq!(policy.limit(ResourceKind::Briefing), 10 * MIN);
        assert_eq!(policy.limit(ResourceKind::Video), 20 * MIN);
        let half = AutoCancel::new(1.5, MIN, MIN).unwrap();
        assert_eq!(half.limit(ResourceKind::Video), Duration::from_secs(90));
    }

    #[test]
    fn a_factor_of_zero_or_less_or_not_a_number_turns_it_off() {
        for factor in [0.0, -1.0, f64::NAN] {
            assert_eq!(AutoCancel::new(factor, MIN, MIN), None, "{factor}");
        }
    }

    #[test]
    fn a_job_is_late_once_it_started_before_its_kinds_cutoff() {
        let now = datetime!(2025-11-13 10:30:00 UTC);
        let policy = AutoCancel::new(2.0, 5 * MIN, 10 * MIN).unwrap();
        assert_eq!(
            policy.cutoff(ResourceKind::Briefing, now),
            datetime!(2025-11-13 10:20:00 UTC)
        );
        assert_eq!(
            policy.cutoff(ResourceKind::Video, now),
            datetime!(2025-11-13 10:10:00 UTC)
        );
        // Started exactly at the cutoff: it has run its limit, not longer.
        let table = [
            (ResourceKind::Video, 20 * MIN, false),
            (ResourceKind::Video, 20 * MIN + Duration::from_secs(1), true),
            (ResourceKind::Briefing, 9 * MIN, false),
            (ResourceKind::Briefing, 11 * MIN, true),
        ];
        for (kind, running, late) in table {
            let started_at = now - running;
            assert_eq!(
                started_at < policy.cutoff(kind, now),
                late,
                "{kind} {running:?}"
            );
        }
    }

    #[test]
    fn a_limit_too_long_to_subtract_puts_the_cutoff_before_any_start() {
        let now = datetime!(2025-11-13 10:30:00 UTC);
        let policy = AutoCancel::new(f64::MAX, MIN, MIN).unwrap();
        assert_eq!(
            policy.cutoff(ResourceKind::Video, now),
            OffsetDateTime::UNIX_EPOCH
        );
    }
}
