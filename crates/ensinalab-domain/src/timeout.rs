//! The automatic timeout: a job that has run longer than a factor of its expected time is
//! cancelled by the server itself (for [`CancelReason::Timeout`](crate::CancelReason::Timeout),
//! whose cancel moves only running rows). Running time counts from the worker's first report
//! (STARTED or PROGRESS), not from creation: a job waiting in the queue is not running late.

use std::time::Duration;

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

    /// Whether a job of `kind` that has run `running` is past its limit.
    pub fn is_late(&self, kind: ResourceKind, running: Duration) -> bool {
        running > self.limit(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_job_is_late_only_past_its_limit() {
        let policy = AutoCancel::new(2.0, 5 * MIN, 5 * MIN).unwrap();
        let table = [
            (ResourceKind::Video, 10 * MIN, false),
            (ResourceKind::Video, 10 * MIN + Duration::from_secs(1), true),
            (ResourceKind::Briefing, 9 * MIN, false),
        ];
        for (kind, running, late) in table {
            assert_eq!(policy.is_late(kind, running), late, "{kind} {running:?}");
        }
    }
}
