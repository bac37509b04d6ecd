//! The records' own rules: wire names that read back, which events are routine, which
//! cleanups wait for their revoke.

use ensinalab_domain::ResourceKind;
use ensinalab_ports::{CleanupReason, EventOutcome, ResourceNames, SecurityEventKind};

#[test]
fn event_kinds_round_trip_through_their_names() {
    for kind in SecurityEventKind::ALL {
        assert_eq!(kind.as_str().parse::<SecurityEventKind>(), Ok(kind));
    }
    assert!("Video_Cancelled".parse::<SecurityEventKind>().is_err());
    assert_eq!(
        SecurityEventKind::cancelled(ResourceKind::Video).as_str(),
        "video_cancelled"
    );
}

#[test]
fn outcomes_round_trip_through_their_names() {
    for outcome in EventOutcome::ALL {
        assert_eq!(outcome.as_str().parse::<EventOutcome>(), Ok(outcome));
    }
    assert!("Not_Found".parse::<EventOutcome>().is_err());
}

#[test]
fn only_a_users_cancels_are_routine() {
    let routine: Vec<&str> = SecurityEventKind::ALL
        .into_iter()
        .filter(|k| k.is_routine())
        .map(SecurityEventKind::as_str)
        .collect();
    assert_eq!(
        routine,
        [
            "video_cancelled",
            "briefing_cancelled",
            "tasks_cancelled_all"
        ]
    );
}

#[test]
fn resources_are_named_by_the_namer_given_or_not_at_all() {
    assert_eq!(ResourceNames::default().name(7), None);
    let names = ResourceNames::new(|id| format!("h{id}"));
    assert_eq!(names.name(7).as_deref(), Some("h7"));
}

#[test]
fn wire_strings_read_back_and_only_our_cancels_wait_for_their_revoke() {
    for reason in CleanupReason::ALL {
        assert_eq!(CleanupReason::parse(reason.as_str()), Some(reason));
    }
    assert_eq!(CleanupReason::parse("cancelled"), None);
    let waiting: Vec<_> = CleanupReason::ALL
        .into_iter()
        .filter(|r| r.waits_for_revoke())
        .map(CleanupReason::as_str)
        .collect();
    assert_eq!(waiting, ["user", "user_all", "timeout"]);
}
