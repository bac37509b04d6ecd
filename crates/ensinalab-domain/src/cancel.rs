//! The cancel rule, whole: who may cancel what, and what a cancel writes.
//!
//! [`Cancel::new`] is the rule: for a [`CancelReason`] it says which statuses may be cancelled
//! (the guard) and what the cancel writes. The stores carry out a `Cancel` as one guarded write
//! (`UPDATE … SET <write> WHERE status IN <from>`), so a cancel racing a completion ends in
//! exactly one terminal state; when that write moved nothing, [`Cancel::allows`] on the status
//! read back decides between a refusal and another attempt. No adapter decides again in its
//! own words.

use std::fmt;

use crate::status::Lifecycle;

/// What a user's cancel writes to a row's `error_message` (seed contract).
pub const CANCELLED_BY_USER: &str = "Cancelado pelo usuário";
/// What the automatic timeout writes to a row's `error_message`.
pub const CANCELLED_BY_TIMEOUT: &str = "Cancelado automaticamente: tempo limite excedido";

/// Why a job is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CancelReason {
    /// Its owner cancelled this one resource.
    User,
    /// Its owner cancelled everything they had running.
    UserAll,
    /// It ran longer than its limit, and the server cancelled it.
    Timeout,
    /// The broker reports its task revoked by someone else (an operator, another service).
    Revoked,
}

impl CancelReason {
    /// Every reason.
    pub const ALL: [Self; 4] = [Self::User, Self::UserAll, Self::Timeout, Self::Revoked];

    /// The wire string (`reason` of a change, labels of the metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::UserAll => "user_all",
            Self::Timeout => "timeout",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cancel, as the one guarded write that carries it out: built by [`Cancel::new`], the rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cancel<S: 'static> {
    /// Why: recorded with the row (`cancel_reason`) and in the change it makes.
    pub reason: CancelReason,
    /// The guard: the write happens only from one of these statuses.
    pub from: &'static [S],
    /// The status the row ends in.
    pub to: S,
    /// The row's new `error_message`; `None` leaves it as it is.
    pub error_message: Option<&'static str>,
    /// The row's new progress, for kinds that carry one; `None` leaves it as it is.
    pub progress: Option<f64>,
}

impl<S: Lifecycle> Cancel<S> {
    /// THE cancel rule: the cancel for `reason`, whatever the row's status turns out to be. A
    /// store executes it as one conditional write, without reading the status first.
    ///
    /// - The owner (one resource, or everything) may cancel what [`Lifecycle::CANCELLABLE`]
    ///   allows; the row says [`CANCELLED_BY_USER`] and a video's progress goes back to 0.
    /// - The timeout cancels only what runs ([`Lifecycle::RUNNING`]): a job waiting in the
    ///   queue or for a human is not running late. The row says [`CANCELLED_BY_TIMEOUT`].
    /// - A revoke from elsewhere moves a row that is still [`Lifecycle::IN_FLIGHT`] and writes
    ///   nothing else (the broker said nothing the user should read).
    pub fn new(reason: CancelReason) -> Self {
        let reset = S::HAS_PROGRESS.then_some(0.0);
        let (from, error_message, progress) = match reason {
            CancelReason::User | CancelReason::UserAll => {
                (S::CANCELLABLE, Some(CANCELLED_BY_USER), reset)
            }
            CancelReason::Timeout => (S::RUNNING, Some(CANCELLED_BY_TIMEOUT), reset),
            CancelReason::Revoked => (S::IN_FLIGHT, None, None),
        };
        Self {
            reason,
            from,
            to: S::CANCELLED,
            error_message,
            progress,
        }
    }

    /// Whether the guard lets a row in `current` move. A store whose guarded write moved
    /// nothing reads the row's status and asks this: `false` is the refusal (the use case's
    /// `NotCancellable`, carrying `current`), `true` means the row changed in between and the
    /// write is tried again.
    pub fn allows(&self, current: S) -> bool {
        self.from.contains(&current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BriefingStatus as B, VideoStatus as V};
    use CancelReason::{Revoked, Timeout, User, UserAll};

    /// Every status × reason: allowed or not, and where the cancel ends.
    #[test]
    fn every_briefing_status_and_reason_is_decided() {
        use B::*;
        let allowed: [(B, [bool; 4]); 7] = [
            //                     User   UserAll Timeout Revoked
            (Pending, [false, false, false, true]),
            (Processing, [true, true, true, true]),
            (GeneratingOptions, [true, true, true, true]),
            (OptionsReady, [false, false, false, false]),
            (Completed, [false, false, false, false]),
            (Failed, [false, false, false, false]),
            (Cancelled, [false, false, false, false]),
        ];
        assert_eq!(allowed.len(), B::ALL.len());
        for (status, row) in allowed {
            for (reason, expected) in CancelReason::ALL.into_iter().zip(row) {
                let cancel = Cancel::new(reason);
                assert_eq!(cancel.allows(status), expected, "{status} × {reason}");
                assert_eq!(cancel.to, Cancelled);
                assert_eq!(cancel.progress, None, "briefings have no progress");
                assert_eq!(cancel.reason, reason);
            }
        }
    }

    #[test]
    fn every_video_status_and_reason_is_decided() {
        use V::*;
        let allowed: [(V, [bool; 4]); 6] = [
            //                     User   UserAll Timeout Revoked
            (Queued, [true, true, false, true]),
            (Processing, [true, true, true, true]),
            (PendingApproval, [true, true, false, false]),
            (Completed, [false, false, false, false]),
            (Failed, [false, false, false, false]),
            (Cancelled, [false, false, false, false]),
        ];
        assert_eq!(allowed.len(), V::ALL.len());
        for (status, row) in allowed {
            for (reason, expected) in CancelReason::ALL.into_iter().zip(row) {
                let cancel = Cancel::new(reason);
                assert_eq!(cancel.allows(status), expected, "{status} × {reason}");
                assert_eq!(cancel.to, Cancelled);
                assert_eq!(cancel.reason, reason);
            }
        }
    }

    #[test]
    fn what_a_cancel_writes_depends_on_its_reason_only() {
        let table = [
            (User, Some(CANCELLED_BY_USER), Some(0.0)),
            (UserAll, Some(CANCELLED_BY_USER), Some(0.0)),
            (Timeout, Some(CANCELLED_BY_TIMEOUT), Some(0.0)),
            (Revoked, None, None),
        ];
        for (reason, message, video_progress) in table {
            let video = Cancel::<V>::new(reason);
            assert_eq!(video.to, V::Cancelled);
            assert_eq!(video.error_message, message, "{reason}");
            assert_eq!(video.progress, video_progress, "{reason}");
            let briefing = Cancel::<B>::new(reason);
            assert_eq!(briefing.to, B::Cancelled);
            assert_eq!(briefing.error_message, message, "{reason}");
            assert_eq!(briefing.progress, None);
        }
    }

    #[test]
    fn the_users_guard_is_exactly_what_the_active_list_calls_cancellable() {
        for reason in [User, UserAll] {
            assert_eq!(Cancel::<B>::new(reason).from, B::CANCELLABLE);
            assert_eq!(Cancel::<V>::new(reason).from, V::CANCELLABLE);
        }
    }

    #[test]
    fn nothing_cancels_a_terminal_row() {
        for reason in CancelReason::ALL {
            for &s in B::TERMINAL {
                assert!(!Cancel::new(reason).allows(s), "{s} {reason}");
            }
            for &s in V::TERMINAL {
                assert!(!Cancel::new(reason).allows(s), "{s} {reason}");
            }
        }
    }

    #[test]
    fn reasons_have_their_wire_names() {
        let names: Vec<&str> = CancelReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["user", "user_all", "timeout", "revoked"]);
    }
}
