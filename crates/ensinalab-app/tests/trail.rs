//! The use cases write the trail of everything they did or refused: every cancel (single and
//! all), every refused cancel, every refused read, each with the caller and the IP.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::Ordering;

use ensinalab_app::testing::{
    InMemoryStore, RecordingBroker, caller, service, task, wired, write_trail,
};
use ensinalab_app::{RefusalGate, Service, Settings, VideoStatusError};
use ensinalab_domain::{
    BriefingId, BriefingStatus, OptionId, ResourceKind, UserId, VideoId, VideoStatus,
};
use ensinalab_ports::{EventOutcome, SecurityEvent, SecurityEventKind as Kind};
use serde_json::json;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);

/// The one event recorded, with the caller's id and IP on it.
fn only_event(svc: &Service<InMemoryStore, RecordingBroker>, user: UserId) -> SecurityEvent {
    let events = svc.store().events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = events.into_iter().next().unwrap();
    assert_eq!(e.user_id, Some(user));
    assert_eq!(e.client_ip.as_deref(), Some("203.0.113.7"));
    e
}

#[tokio::test]
async fn each_kind_of_cancel_writes_its_own_event() {
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Queued, Some(task(1)));
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    let e = only_event(&svc, ALICE);
    assert_eq!(
        (e.event, e.outcome.as_str(), e.resource, e.task_id),
        (
            Kind::VideoCancelled,
            "cancelled",
            Some((ResourceKind::Video, v.id.get())),
            Some(task(1))
        )
    );

    let svc = service();
    let b = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::Processing, None);
    svc.cancel_briefing(&caller(ALICE), b.id).await.unwrap();
    let e = only_event(&svc, ALICE);
    assert_eq!(e.event, Kind::BriefingCancelled);
    assert_eq!(e.details, json!({"revoked": false, "revoke": "no_task"}));

    let svc = service();
    svc.store()
        .insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    svc.store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(2)));
    svc.cancel_all(&caller(ALICE)).await.unwrap();
    let e = only_event(&svc, ALICE);
    assert_eq!(e.event, Kind::TasksCancelledAll);
    assert_eq!(e.outcome, EventOutcome::Cancelled);
    assert_eq!(e.details, json!({"briefings": 1, "videos": 1}));
}

#[tokio::test]
async fn every_refused_cancel_is_recorded_with_why() {
    let svc = service();
    let s = svc.store();
    let alices = s.insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    let done = s.insert_briefing(BOB, BriefingStatus::OptionsReady, Some(task(2)));

    assert!(svc.cancel_video(&caller(BOB), alices.id).await.is_err());
    assert!(svc.cancel_video(&caller(BOB), VideoId(999)).await.is_err());
    assert!(svc.cancel_briefing(&caller(BOB), done.id).await.is_err());
    assert!(svc.cancel_briefing(&caller(BOB), done.id).await.is_err());

    let events = s.events();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.event, e.outcome.as_str(), e.resource, e.details.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Kind::CancelRefused,
                "not_owner",
                Some((ResourceKind::Video, alices.id.get())),
                json!({})
            ),
            (
                Kind::CancelRefused,
                "not_found",
                Some((ResourceKind::Video, 999)),
                json!({})
            ),
            (
                Kind::CancelRefused,
                "not_cancellable",
                Some((ResourceKind::Briefing, done.id.get())),
                json!({"status": "options_ready"})
            ),
            (
                Kind::CancelRefused,
                "not_cancellable",
                Some((ResourceKind::Briefing, done.id.get())),
                json!({"status": "options_ready"})
            ),
        ],
        "every refused cancel has its row"
    );
    assert!(events.iter().all(|e| e.user_id == Some(BOB)));
}

#[tokio::test]
async fn refused_reads_of_every_kind_are_recorded_as_refusals() {
    let (svc, mut drains, _) = wired(Settings::default());
    let mut gate = RefusalGate::default();
    let s = svc.store();
    let b = s.insert_briefing(ALICE, BriefingStatus::OptionsReady, Some(task(1)));
    let o = s.insert_option(b.id);
    let v = s.insert_video(ALICE, VideoStatus::Processing, Some(task(2)));

    // Someone else's: one of each read, each a separate caller so that none is folded.
    let bobs = [UserId(10), UserId(11), UserId(12), UserId(13)];
    assert!(svc.briefing(&caller(bobs[0]), b.id).await.is_err());
    assert!(svc.video_status(&caller(bobs[1]), v.id).await.is_err());
    assert!(svc.select_option(&caller(bobs[2]), o.id).await.is_err());
    assert!(svc.task_status(&caller(bobs[3]), &task(2)).await.is_err());

    write_trail(&svc, &mut drains, &mut gate).await;

    let events = s.events();
    let seen: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.user_id,
                e.event,
                e.outcome.as_str(),
                e.resource,
                e.details["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Some(bobs[0]),
                Kind::ReadRefused,
                "not_owner",
                Some((ResourceKind::Briefing, b.id.get())),
                "read_briefing"
            ),
            (
                Some(bobs[1]),
                Kind::ReadRefused,
                "not_owner",
                Some((ResourceKind::Video, v.id.get())),
                "read_video"
            ),
            (
                Some(bobs[2]),
                Kind::ReadRefused,
                "not_owner",
                Some((ResourceKind::Briefing, b.id.get())),
                "select_option"
            ),
            (
                Some(bobs[3]),
                Kind::ReadRefused,
                "not_owner",
                Some((ResourceKind::Video, v.id.get())),
                "read_task"
            ),
        ]
    );
    assert_eq!(events[2].details["option_id"], o.id.get());
    assert_eq!(events[3].task_id, Some(task(2)));
    assert!(
        events
            .iter()
            .all(|e| e.client_ip.as_deref() == Some("203.0.113.7"))
    );
    assert!(svc.broker().published().is_empty(), "nothing was selected");
}

#[tokio::test]
async fn reading_a_missing_resource_is_a_not_found_refusal_naming_what_was_asked() {
    let (svc, mut drains, _) = wired(Settings::default());
    let mut gate = RefusalGate::default();
    assert!(matches!(
        svc.video_status(&caller(BOB), VideoId(404)).await,
        Err(VideoStatusError::NotFound)
    ));
    write_trail(&svc, &mut drains, &mut gate).await;
    let e = only_event(&svc, BOB);
    assert_eq!(
        (e.event, e.outcome.as_str(), e.resource),
        (
            Kind::ReadRefused,
            "not_found",
            Some((ResourceKind::Video, 404))
        )
    );
}

#[tokio::test]
async fn a_scan_of_ids_writes_one_row_per_caller_and_outcome_not_one_per_id() {
    let (svc, mut drains, _) = wired(Settings::default());
    let mut gate = RefusalGate::default();
    for id in 1..=50 {
        assert!(svc.briefing(&caller(BOB), BriefingId(id)).await.is_err());
        assert!(svc.select_option(&caller(BOB), OptionId(id)).await.is_err());
    }
    write_trail(&svc, &mut drains, &mut gate).await;
    let events = svc.store().events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, EventOutcome::NotFound);

    // Another caller, or another outcome, has its own row.
    let b = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::Processing, None);
    assert!(svc.briefing(&caller(BOB), b.id).await.is_err());
    assert!(
        svc.briefing(&caller(UserId(3)), BriefingId(999))
            .await
            .is_err()
    );
    write_trail(&svc, &mut drains, &mut gate).await;
    let outcomes: Vec<(Option<UserId>, EventOutcome)> = svc
        .store()
        .events()
        .into_iter()
        .map(|e| (e.user_id, e.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (Some(BOB), EventOutcome::NotFound),
            (Some(BOB), EventOutcome::NotOwner),
            (Some(UserId(3)), EventOutcome::NotFound)
        ]
    );
}

#[tokio::test]
async fn the_owners_reads_record_nothing() {
    let svc = service();
    let s = svc.store();
    let b = s.insert_briefing(ALICE, BriefingStatus::OptionsReady, Some(task(1)));
    let v = s.insert_video(ALICE, VideoStatus::Processing, Some(task(2)));
    svc.briefing(&caller(ALICE), b.id).await.unwrap();
    svc.video_status(&caller(ALICE), v.id).await.unwrap();
    svc.task_status(&caller(ALICE), &task(2)).await.unwrap();
    assert!(s.events().is_empty());
}

#[tokio::test]
async fn a_cancel_that_committed_answers_done_even_when_its_event_cannot_be_written() {
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    // The store fails from the first call after the cancel's read and its write: the event's.
    svc.store().fail_after.store(2, Ordering::SeqCst);
    let done = svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    assert_eq!(done.resource.status, VideoStatus::Cancelled);
    assert!(
        svc.store().events().is_empty(),
        "the row could not be written"
    );
}
