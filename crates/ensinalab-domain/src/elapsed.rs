//! How long a job has been running, whether it is stuck, and when its worker counts as lost.

use std::time::Duration;

use time::OffsetDateTime;

/// Celery's `task_time_limit` in the seed deployment: a job running longer is flagged as stuck.
pub const DEFAULT_TASK_TIME_LIMIT_SECS: u64 = 300;

/// How long a task the result backend shows running may go without a live worker executing it
/// before its worker counts as lost and its row is failed: twice the task time limit (a limit
/// of zero counts as one second). Twice, so a job is first flagged stuck ([`Elapsed::is_stuck`])
/// and stays cancellable by its owner a while before the rule fails it.
pub fn lost_worker_grace(task_time_limit_secs: u64) -> Duration {
    Duration::from_secs(task_time_limit_secs.max(1).saturating_mul(2))
}

/// Whole seconds since a resource was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Elapsed {
    /// Never negative: a `created_at` in the future (clock skew between hosts) counts as zero.
    pub seconds: u64,
}

impl Elapsed {
    /// Time from `since` to `now`, truncated to whole seconds.
    pub fn between(since: OffsetDateTime, now: OffsetDateTime) -> Self {
        let secs = (now - since).whole_seconds();
        Self {
            seconds: u64::try_from(secs).unwrap_or(0),
        }
    }

    /// The seed's format: `"45s"` under a minute, `"2m 25s"` under an hour, `"1h 2m 5s"` above
    /// (hours keep counting past a day: a job that old is an incident, not a calendar entry).
    pub fn formatted(self) -> String {
        let (h, m, s) = (
            self.seconds / 3600,
            self.seconds % 3600 / 60,
            self.seconds % 60,
        );
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) => format!("{m}m {s}s"),
            _ => format!("{h}h {m}m {s}s"),
        }
    }

    /// Stuck means running longer than the task time limit. It only flags; nothing is killed.
    pub fn is_stuck(self, limit_secs: u64) -> bool {
        self.seconds > limit_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn elapsed_time_is_formatted_like_the_seed() {
        let table = [
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "1m 0s"),
            (145, "2m 25s"),
            (265, "4m 25s"),
            (3599, "59m 59s"),
            (3600, "1h 0m 0s"),
            (3725, "1h 2m 5s"),
            (93_784, "26h 3m 4s"),
        ];
        for (seconds, text) in table {
            assert_eq!(Elapsed { seconds }.formatted(), text, "{seconds}");
        }
    }

    #[test]
    fn elapsed_is_measured_between_creation_and_now_in_whole_seconds() {
        let created = datetime!(2025-11-13 10:30:00 UTC);
        let now = created + Duration::milliseconds(145_900);
        assert_eq!(Elapsed::between(created, now).seconds, 145);
    }

    #[test]
    fn a_creation_time_in_the_future_counts_as_zero() {
        let now = datetime!(2025-11-13 10:30:00 UTC);
        assert_eq!(Elapsed::between(now + Duration::minutes(5), now).seconds, 0);
    }

    #[test]
    fn a_worker_is_lost_after_twice_the_time_limit_and_never_at_once() {
        let table = [(300, 600), (60, 120), (1, 2), (0, 2)];
        for (limit, grace) in table {
            assert_eq!(
                lost_worker_grace(limit),
                std::time::Duration::from_secs(grace),
                "{limit}"
            );
        }
        assert_eq!(
            lost_worker_grace(u64::MAX),
            std::time::Duration::from_secs(u64::MAX)
        );
    }

    #[test]
    fn a_job_is_stuck_only_past_the_limit() {
        let table = [
            (0, 300, false),
            (300, 300, false),
            (301, 300, true),
            (61, 60, true),
        ];
        for (seconds, limit, stuck) in table {
            assert_eq!(
                Elapsed { seconds }.is_stuck(limit),
                stuck,
                "{seconds}/{limit}"
            );
        }
        assert!(!Elapsed { seconds: 300 }.is_stuck(DEFAULT_TASK_TIME_LIMIT_SECS));
    }
}
