//! Briefing and video statuses, and the rules over them: what a user may cancel, what the
//! background reconciler may still overwrite, what is final.

use std::fmt;
use std::str::FromStr;

/// A status string read from storage or the wire that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} status {value:?}")]
pub struct UnknownStatus {
    /// `"briefing"` or `"video"`.
    pub kind: &'static str,
    /// The offending string (truncated).
    pub value: String,
}

/// A cancel refused because of the resource's current status; carries that status so the API
/// can say "Status atual: completed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot cancel in status {current}")]
pub struct NotCancellable<S: fmt::Display + fmt::Debug> {
    /// The status the resource is in.
    pub current: S,
}

/// Which kind of resource a task belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ResourceKind {
    /// A briefing whose options are being generated.
    Briefing,
    /// A video being generated.
    Video,
}

impl ResourceKind {
    /// Wire string, as the seed's `type`/`resource_type` fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Briefing => "briefing",
            Self::Video => "video",
        }
    }
}

/// What a generation task reported, as far as the database cares.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// Started or reporting progress (videos carry a fraction in `0.0..=1.0`).
    Running {
        /// Progress, when the task reports one.
        progress: Option<f64>,
    },
    /// Finished; the payload is interpreted per resource kind by the caller.
    Succeeded,
    /// Raised, or its worker died; the message is shown to the owner.
    Failed(String),
    /// Revoked (by us or by an operator).
    Revoked,
}

macro_rules! status_enum {
    (
        $(#[$doc:meta])* $name:ident, $kind:literal,
        [$($variant:ident => $wire:literal),+ $(,)?],
        cancellable: [$($c:ident),+],
        in_flight: [$($f:ident),+],
        terminal: [$($t:ident),+] $(,)?
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
        pub enum $name {
            $(#[doc = concat!("`", $wire, "`")] $variant,)+
        }

        impl $name {
            /// Every status, in lifecycle order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// Statuses a user may cancel; also what "active" means for listing and cancel-all.
            pub const CANCELLABLE: &'static [Self] = &[$(Self::$c),+];
            /// Statuses a task may still move (the reconciler writes only from these, so a late
            /// worker report never resurrects a cancelled or finished row).
            pub const IN_FLIGHT: &'static [Self] = &[$(Self::$f),+];
            /// Final statuses: nothing moves a row out of them.
            pub const TERMINAL: &'static [Self] = &[$(Self::$t),+];

            /// The wire and storage string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }

            /// Whether a user may cancel a resource in this status.
            pub fn is_cancellable(self) -> bool {
                Self::CANCELLABLE.contains(&self)
            }

            /// Whether this status is final.
            pub fn is_terminal(self) -> bool {
                Self::TERMINAL.contains(&self)
            }

            /// Whether a task report may still change a row in this status.
            pub fn is_in_flight(self) -> bool {
                Self::IN_FLIGHT.contains(&self)
            }

            /// The cancellation rule.
            ///
            /// # Errors
            /// [`NotCancellable`] with the current status when it is not in [`Self::CANCELLABLE`].
            pub fn check_cancellable(self) -> Result<(), NotCancellable<Self>> {
                if self.is_cancellable() {
                    Ok(())
                } else {
                    Err(NotCancellable { current: self })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok(Self::$variant),)+
                    other => Err(UnknownStatus {
                        kind: $kind,
                        value: other.chars().take(64).collect(),
                    }),
                }
            }
        }
    };
}

status_enum!(
    /// Lifecycle of a briefing: its options are generated by a task, then a video is made from one.
    BriefingStatus, "briefing",
    [
        Pending => "pending",
        Processing => "processing",
        GeneratingOptions => "generating_options",
        OptionsReady => "options_ready",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    ],
    cancellable: [Processing, GeneratingOptions],
    in_flight: [Pending, Processing, GeneratingOptions],
    terminal: [Completed, Failed, Cancelled],
);

status_enum!(
    /// Lifecycle of a video. `pending_approval` waits for a human, so it may be cancelled, but no
    /// task writes to it any more.
    VideoStatus, "video",
    [
        Queued => "queued",
        Processing => "processing",
        PendingApproval => "pending_approval",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    ],
    cancellable: [Queued, Processing, PendingApproval],
    in_flight: [Queued, Processing],
    terminal: [Completed, Failed, Cancelled],
);

#[cfg(test)]
mod tests {
    use super::*;
    use BriefingStatus as B;
    use VideoStatus as V;

    #[test]
    fn briefing_statuses_round_trip_through_their_wire_strings() {
        let table = [
            (B::Pending, "pending"),
            (B::Processing, "processing"),
            (B::GeneratingOptions, "generating_options"),
            (B::OptionsReady, "options_ready"),
            (B::Completed, "completed"),
            (B::Failed, "failed"),
            (B::Cancelled, "cancelled"),
        ];
        assert_eq!(table.len(), B::ALL.len());
        for (status, wire) in table {
            assert_eq!(status.as_str(), wire);
            assert_eq!(status.to_string(), wire);
            assert_eq!(wire.parse::<B>(), Ok(status));
        }
    }

    #[test]
    fn video_statuses_round_trip_through_their_wire_strings() {
        let table = [
            (V::Queued, "queued"),
            (V::Processing, "processing"),
            (V::PendingApproval, "pending_approval"),
            (V::Completed, "completed"),
            (V::Failed, "failed"),
            (V::Cancelled, "cancelled"),
        ];
        assert_eq!(table.len(), V::ALL.len());
        for (status, wire) in table {
            assert_eq!(status.as_str(), wire);
            assert_eq!(wire.parse::<V>(), Ok(status));
        }
    }

    #[test]
    fn unknown_status_strings_are_an_error_naming_the_kind() {
        let err = "PROCESSING".parse::<B>().unwrap_err();
        assert_eq!(err.kind, "briefing");
        assert_eq!(err.value, "PROCESSING");
        assert_eq!("".parse::<V>().unwrap_err().kind, "video");
    }

    #[test]
    fn only_processing_and_generating_options_briefings_may_be_cancelled() {
        for &s in B::ALL {
            let expected = matches!(s, B::Processing | B::GeneratingOptions);
            assert_eq!(s.is_cancellable(), expected, "{s}");
            match s.check_cancellable() {
                Ok(()) => assert!(expected),
                Err(e) => assert_eq!(e.current, s),
            }
        }
    }

    #[test]
    fn queued_processing_and_pending_approval_videos_may_be_cancelled() {
        for &s in V::ALL {
            let expected = matches!(s, V::Queued | V::Processing | V::PendingApproval);
            assert_eq!(s.is_cancellable(), expected, "{s}");
            assert_eq!(s.check_cancellable().is_ok(), expected);
        }
    }

    #[test]
    fn a_rejection_carries_the_current_status() {
        let err = V::Completed.check_cancellable().unwrap_err();
        assert_eq!(
            err,
            NotCancellable {
                current: V::Completed
            }
        );
        assert_eq!(err.current.as_str(), "completed");
    }

    #[test]
    fn terminal_statuses_are_neither_cancellable_nor_in_flight() {
        for &s in B::ALL {
            if s.is_terminal() {
                assert!(!s.is_cancellable() && !s.is_in_flight(), "{s}");
            }
        }
        for &s in V::ALL {
            if s.is_terminal() {
                assert!(!s.is_cancellable() && !s.is_in_flight(), "{s}");
            }
        }
        assert_eq!(B::TERMINAL, &[B::Completed, B::Failed, B::Cancelled]);
        assert_eq!(V::TERMINAL, &[V::Completed, V::Failed, V::Cancelled]);
    }

    #[test]
    fn pending_approval_videos_are_cancellable_but_no_task_writes_to_them() {
        assert!(V::PendingApproval.is_cancellable());
        assert!(!V::PendingApproval.is_in_flight());
        assert!(!B::OptionsReady.is_in_flight());
    }

    #[test]
    fn resource_kinds_have_the_seeds_wire_names() {
        assert_eq!(ResourceKind::Briefing.as_str(), "briefing");
        assert_eq!(ResourceKind::Video.as_str(), "video");
    }
}
