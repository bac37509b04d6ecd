//! Celery task states and what the API says about them.

use std::fmt;

/// A task state as Celery's result backend stores it (`status` of `celery-task-meta-<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CeleryState {
    /// No result yet, or an id Celery never saw (the two look the same).
    Pending,
    /// Received by a worker (not written by a default Redis setup, but valid).
    Received,
    /// Running (written when the worker has `task_track_started`).
    Started,
    /// Finished with a return value.
    Success,
    /// Raised, or its worker process died.
    Failure,
    /// Waiting to be retried after an error.
    Retry,
    /// Revoked: discarded before running, expired, or terminated while running.
    Revoked,
    /// Rejected by a worker (`acks_late` + reject).
    Rejected,
    /// A custom state from `update_state`, e.g. `PROGRESS`; its name is kept as sent.
    Custom(String),
}

impl CeleryState {
    /// Reads a backend `status`. Never fails: unknown names are custom states.
    pub fn parse(raw: &str) -> Self {
        match raw {
            "PENDING" => Self::Pending,
            "RECEIVED" => Self::Received,
            "STARTED" => Self::Started,
            "SUCCESS" => Self::Success,
            "FAILURE" => Self::Failure,
            "RETRY" => Self::Retry,
            "REVOKED" => Self::Revoked,
            "REJECTED" => Self::Rejected,
            other => Self::Custom(other.to_owned()),
        }
    }

    /// The name, as Celery spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "PENDING",
            Self::Received => "RECEIVED",
            Self::Started => "STARTED",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Retry => "RETRY",
            Self::Revoked => "REVOKED",
            Self::Rejected => "REJECTED",
            Self::Custom(name) => name,
        }
    }

    /// The API's `ready`, as the seed's contract shows it: true for SUCCESS and FAILURE only.
    /// The seed's REVOKED example says `ready: false`, and clients rely on it, so REVOKED is not
    /// "ready" here even though Celery counts it as such; use [`Self::is_final`] for the rule.
    pub fn ready(&self) -> bool {
        matches!(self, Self::Success | Self::Failure)
    }

    /// The API's `successful`: `None` until [`Self::ready`].
    pub fn successful(&self) -> Option<bool> {
        self.ready().then(|| *self == Self::Success)
    }

    /// The API's `failed`: `None` until [`Self::ready`].
    pub fn failed(&self) -> Option<bool> {
        self.ready().then(|| *self == Self::Failure)
    }

    /// Celery's own READY_STATES: no worker will write this task again.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Revoked)
    }

    /// A worker is executing it (started, or reporting a custom state such as PROGRESS).
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Started | Self::Custom(_))
    }
}

impl fmt::Display for CeleryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress in `0.0..=1.0` from a task's `{current, total}` meta: clamped, and 0 when `total`
/// is zero, negative or not a number (a task that has not sized its work has made no progress).
pub fn progress_fraction(current: f64, total: f64) -> f64 {
    if total.is_nan() || total <= 0.0 || current.is_nan() {
        return 0.0;
    }
    (current / total).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CeleryState as S;

    #[test]
    fn every_state_reports_the_seeds_ready_successful_failed_triple() {
        let table = [
            (S::Pending, false, None, None),
            (S::Received, false, None, None),
            (S::Started, false, None, None),
            (S::Success, true, Some(true), Some(false)),
            (S::Failure, true, Some(false), Some(true)),
            (S::Retry, false, None, None),
            (S::Revoked, false, None, None),
            (S::Rejected, false, None, None),
            (S::Custom("PROGRESS".into()), false, None, None),
        ];
        for (state, ready, successful, failed) in table {
            assert_eq!(state.ready(), ready, "{state}");
            assert_eq!(state.successful(), successful, "{state}");
            assert_eq!(state.failed(), failed, "{state}");
        }
    }

    #[test]
    fn state_names_round_trip_and_custom_names_are_kept() {
        for name in [
            "PENDING",
            "RECEIVED",
            "STARTED",
            "SUCCESS",
            "FAILURE",
            "RETRY",
            "REVOKED",
            "REJECTED",
            "PROGRESS",
            "rendering",
        ] {
            assert_eq!(S::parse(name).as_str(), name);
        }
        assert_eq!(S::parse("PROGRESS"), S::Custom("PROGRESS".into()));
    }

    #[test]
    fn final_and_running_states_follow_celery() {
        let table = [
            (S::Pending, false, false),
            (S::Received, false, false),
            (S::Started, false, true),
            (S::Success, true, false),
            (S::Failure, true, false),
            (S::Retry, false, false),
            (S::Revoked, true, false),
            (S::Rejected, false, false),
            (S::Custom("PROGRESS".into()), false, true),
        ];
        for (state, is_final, running) in table {
            assert_eq!(state.is_final(), is_final, "{state}");
            assert_eq!(state.is_running(), running, "{state}");
        }
    }

    #[test]
    fn progress_is_a_clamped_fraction_and_zero_without_a_total() {
        let table = [
            (50.0, 100.0, 0.5),
            (0.0, 30.0, 0.0),
            (30.0, 30.0, 1.0),
            (31.0, 30.0, 1.0),
            (-5.0, 30.0, 0.0),
            (5.0, 0.0, 0.0),
            (5.0, -1.0, 0.0),
            (f64::NAN, 10.0, 0.0),
            (5.0, f64::NAN, 0.0),
            (f64::INFINITY, 10.0, 1.0),
        ];
        for (current, total, expected) in table {
            assert_eq!(
                progress_fraction(current, total),
                expected,
                "{current}/{total}"
            );
        }
    }
}
