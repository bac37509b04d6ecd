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

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource kind string this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource kind {0:?}")]
pub struct UnknownKind(
    /// The offending string (truncated).
    pub String,
);

impl FromStr for ResourceKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "briefing" => Ok(Self::Briefing),
            "video" => Ok(Self::Video),
            other => Err(UnknownKind(other.chars().take(64).collect())),
        }
    }
}

/// What the rules need to know of a status type, whatever the resource: its kind, its sets and
/// its cancelled status. Implemented by [`BriefingStatus`] and [`VideoStatus`], so a rule (the
/// cancel) and its executors (the stores) are written once for both.
pub trait Lifecycle:
    Copy
    + Eq
    + std::hash::Hash
    + fmt::Debug
    + fmt::Display
    + FromStr<Err = UnknownStatus>
    + Send
    + Sync
    + 'static
{
    /// The resource kind these statuses belong to.
    const KIND: ResourceKind;
    /// Every status, in lifecycle order.
    const ALL: &'static [Self];
    /// Statuses a user may cancel; also what "active" means for listing and cancel-all.
    const CANCELLABLE: &'static [Self];
    /// Statuses a task may still move (a task report writes only from these).
    const IN_FLIGHT: &'static [Self];
    /// Statuses in which a worker is running the task (once it has reported its start).
    const RUNNING: &'static [Self];
    /// Statuses that hold one of the user's job slots (`MAX_ACTIVE_JOBS_PER_USER`): in flight or
    /// cancellable, i.e. neither final nor waiting for the user's choice.
    const ACTIVE: &'static [Self];
    /// Final statuses: nothing moves a row out of them.
    const TERMINAL: &'static [Self];
    /// Where every cancel ends.
    const CANCELLED: Self;
    /// Whether rows of this kind carry a progress fraction.
    const HAS_PROGRESS: bool;

    /// The wire and storage string.
    fn as_str(self) -> &'static str;
}

macro_rules! status_enum {
    (
        $(#[$doc:meta])* $name:ident, $kind:ident, $kind_str:literal,
        [$($variant:ident => $wire:literal),+ $(,)?],
        cancellable: [$($c:ident),+],
        in_flight: [$($f:ident),+],
        running: [$($r:ident),+],
        active: [$($a:ident),+],
        terminal: [$($t:ident),+],
        cancelled: $cancelled:ident,
        has_progress: $progress:literal $(,)?
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
        pub enum $name {
            $(#[doc = concat!("`", $wire, "`")] $variant,)+
        }

        impl Lifecycle for $name {
            const KIND: ResourceKind = ResourceKind::$kind;
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            const CANCELLABLE: &'static [Self] = &[$(Self::$c),+];
            const IN_FLIGHT: &'static [Self] = &[$(Self::$f),+];
            const RUNNING: &'static [Self] = &[$(Self::$r),+];
            const ACTIVE: &'static [Self] = &[$(Self::$a),+];
            const TERMINAL: &'static [Self] = &[$(Self::$t),+];
            const CANCELLED: Self = Self::$cancelled;
            const HAS_PROGRESS: bool = $progress;

            fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }
        }

        impl $name {
            /// Every status, in lifecycle order.
            pub const ALL: &'static [Self] = <Self as Lifecycle>::ALL;
            /// See [`Lifecycle::CANCELLABLE`].
            pub const CANCELLABLE: &'static [Self] = <Self as Lifecycle>::CANCELLABLE;
            /// See [`Lifecycle::IN_FLIGHT`].
            pub const IN_FLIGHT: &'static [Self] = <Self as Lifecycle>::IN_FLIGHT;
            /// See [`Lifecycle::TERMINAL`].
            pub const TERMINAL: &'static [Self] = <Self as Lifecycle>::TERMINAL;

            /// The wire and storage string.
            pub fn as_str(self) -> &'static str {
                <Self as Lifecycle>::as_str(self)
            }

            /// Whether a user may cancel a resource in this status.
            pub fn is_cancellable(self) -> bool {
                Self::CANCELLABLE.contains(&self)
            }

            /// Whether this status is final.
            pub fn is_terminal(self) -> bool {
                Self::TERMINAL.contains(&self)
            }

            /// Whether the owner's active list (`GET /tasks/active`, its live stream, cancel-all)
            /// holds a resource in this status: exactly [`Lifecycle::CANCELLABLE`], so the list
            /// shows what its `Cancelar` may act on.
            pub fn is_listed(self) -> bool {
                self.is_cancellable()
            }

            /// Whether a task report may still change a row in this status.
            pub fn is_in_flight(self) -> bool {
                Self::IN_FLIGHT.contains(&self)
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
                        kind: $kind_str,
                        value: other.chars().take(64).collect(),
                    }),
                }
            }
        }
    };
}

status_enum!(
    /// Lifecycle of a briefing: its options are generated by a task, then a video is made from one.
    BriefingStatus, Briefing, "briefing",
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
    running: [Processing, GeneratingOptions],
    active: [Pending, Processing, GeneratingOptions],
    terminal: [Completed, Failed, Cancelled],
    cancelled: Cancelled,
    has_progress: false,
);

status_enum!(
    /// Lifecycle of a video. `pending_approval` waits for a human, so it may be cancelled, but no
    /// task writes to it any more.
    VideoStatus, Video, "video",
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
    running: [Processing],
    active: [Queued, Processing, PendingApproval],
    terminal: [Completed, Failed, Cancelled],
    cancelled: Cancelled,
    has_progress: true,
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
        }
    }

    #[test]
    fn queued_processing_and_pending_approval_videos_may_be_cancelled() {
        for &s in V::ALL {
            let expected = matches!(s, V::Queued | V::Processing | V::PendingApproval);
            assert_eq!(s.is_cancellable(), expected, "{s}");
        }
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
    fn the_active_list_holds_exactly_what_may_be_cancelled_pending_approval_included() {
        for &s in B::ALL {
            assert_eq!(s.is_listed(), s.is_cancellable(), "{s}");
        }
        for &s in V::ALL {
            assert_eq!(s.is_listed(), s.is_cancellable(), "{s}");
        }
        assert!(V::PendingApproval.is_listed());
        assert!(!B::Pending.is_listed() && !B::OptionsReady.is_listed());
    }

    #[test]
    fn resource_kinds_have_the_seeds_wire_names() {
        for (kind, wire) in [
            (ResourceKind::Briefing, "briefing"),
            (ResourceKind::Video, "video"),
        ] {
            assert_eq!(kind.as_str(), wire);
            assert_eq!(wire.parse::<ResourceKind>(), Ok(kind));
        }
        assert!("Video".parse::<ResourceKind>().is_err());
    }

    #[test]
    fn each_status_type_names_its_kind_and_running_is_a_subset_of_in_flight_and_cancellable() {
        assert_eq!(<B as Lifecycle>::KIND, ResourceKind::Briefing);
        assert_eq!(<V as Lifecycle>::KIND, ResourceKind::Video);
        for &s in B::RUNNING {
            assert!(s.is_in_flight() && s.is_cancellable(), "{s}");
        }
        for &s in V::RUNNING {
            assert!(s.is_in_flight() && s.is_cancellable(), "{s}");
        }
        assert!(B::CANCELLED.is_terminal() && V::CANCELLED.is_terminal());
    }

    #[test]
    fn a_job_holds_a_slot_exactly_while_it_is_in_flight_or_cancellable() {
        for &s in B::ALL {
            let expected = s.is_in_flight() || s.is_cancellable();
            assert_eq!(B::ACTIVE.contains(&s), expected, "{s}");
        }
        for &s in V::ALL {
            let expected = s.is_in_flight() || s.is_cancellable();
            assert_eq!(V::ACTIVE.contains(&s), expected, "{s}");
        }
    }
}
