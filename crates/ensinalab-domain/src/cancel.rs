//! The cancel rule, whole: who may cancel what, and what a cancel writes.
//!
//! A cancel is decided here from a resource's status and a [`CancelReason`]; the stores execute
//! the decided [`Cancel`] as one guarded write (`UPDATE … SET <write> WHERE status IN <from>`),
//! so a cancel racing a completion ends in exactly one terminal state, and no adapter decides
//! again in its own words.

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

/// A cancel refused because of the resource's current status; carries that status so the API
/// can say "Status atual: completed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot cancel in status {current}")]
pub struct NotCancellable<S: fmt::Display + fmt::Debug> {
    /// The status the resource is in.
    pub current: S,
}

/// A cancel the rule allows, as the one guarded write that carries it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cancel<S: 'static> {
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
    /// The cancel for `reason`, whatever the row's status turns out to be: a store executes it
    /// as one conditional write, without reading the status first.
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

    /// Whether the guard lets a row in `current` move.
    pub fn allows(&self, current: S) -> bool {
        self.from.contains(&current)
    }
}

/// The rule for one row: a resource in `current` cancelled for `reason`.
///
/// # Errors
/// [`NotCancellable`] with the current status when `reason` may not cancel from it.
pub fn decide_cancel<S: Lifecycle>(
    current: S,
    reason: CancelReason,
) -> Result<Cancel<S>, NotCancellable<S>> {
    let cancel = Cancel::new(reason);
    if cancel.allows(current) {
        Ok(cancel)
    } else {
        Err(NotCancellable { current })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BriefingStatus as B, VideoStatus as V};
    use CancelReason::{Revoked, Timeout, User, UserAll};

    /// Every status × reason: allowed or not, and what the allowed ones write.
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
                match decide_cancel(status, reason) {
                    Ok(cancel) => {
                        assert!(expected, "{status} × {reason} allowed");
                        assert_eq!(cancel.to, Cancelled);
                        assert_eq!(cancel.progress, None, "briefings have no progress");
                        assert_eq!(cancel.reason, reason);
                    }
                    Err(refused) => {
                        assert!(!expected, "{status} × {reason} refused");
                        assert_eq!(refused.current, status);
                    }
                }
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
                let decided = decide_cancel(status, reason);
                assert_eq!(decided.is_ok(), expected, "{status} × {reason}");
                if let Err(refused) = decided {
                    assert_eq!(refused.current, status);
                }
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
                assert!(decide_cancel(s, reason).is_err(), "{s} {reason}");
            }
            for &s in V::TERMINAL {
                assert!(decide_cancel(s, reason).is_err(), "{s} {reason}");
            }
        }
    }

    #[test]
    fn reasons_have_their_wire_names() {
        let names: Vec<&str> = CancelReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["user", "user_all", "timeout", "revoked"]);
    }
}
