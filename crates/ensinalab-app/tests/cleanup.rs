//! Cleanup of partial files over the in-memory fakes: every cancel and failure owes one
//! cleanup, taken off the change stream; a cancel's cleanup leaves only after its revoke was
//! delivered; a broker outage delays cleanups and loses none; the orphan sweep names what is
//! still in flight.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::Ordering;

use ensinalab_app::testing::{InMemoryStore, RecordingBroker, caller, service, task, wired};
use ensinalab_app::{Drains, Service, Settings, retry_delay};
use ensinalab_domain::{BriefingStatus, CeleryState, ResourceKind, UserId, VideoStatus};
use ensinalab_ports::{
    CleanupReason, FIRST_ATTEMPT_GRACE, RevokeOutcome, RevokeStatus, TaskKind, TaskSnapshot,
};
use time::{Duration, OffsetDateTime};

const ALICE: UserId = UserId(1);

type Svc = Service<InMemoryStore, RecordingBroker>;

/// What the cleanup job does each tick: record what the stream owes, then dispatch.
async fn tick(svc: &Svc, drains: &mut Drains, now: OffsetDateTime) -> usize {
    svc.record_cleanups(&mut drains.cleanups).await.unwrap();
    svc.dispatch_cleanups(now, 100).await.unwrap().sent
}

/// The cleanup tasks published so far, as (task id, resource, reason).
fn cleanups_sent(broker: &RecordingBroker) -> Vec<(String, (ResourceKind, i64), &'static str)> {
    broker
        .published()
        .into_iter()
        .filter_map(|t| match t.kind {
            TaskKind::CleanupPartialFiles {
                resource,
                task_id,
                reason,
            } => Some((task_id.as_str().to_owned(), resource, reason.as_str())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_cancels_cleanup_waits_for_its_revoke_to_be_delivered_then_leaves_once() {
    let (svc, mut drains, _) = wired(Settings::default());
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    let done = svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    assert!(matches!(done.revoke, RevokeStatus::Done(_)));
    let now = OffsetDateTime::now_utc();

    // The cancel sent the kill itself, but the outbox learns it at the dispatcher's next mark:
    // until then the cleanup is owed and held back.
    assert_eq!(tick(&svc, &mut drains, now).await, 0);
    assert_eq!(svc.store().owed_cleanups().len(), 1);

    svc.record_deliveries(&mut drains.deliveries).await.unwrap();
    assert_eq!(tick(&svc, &mut drains, now).await, 1);
    assert_eq!(
        cleanups_sent(svc.broker()),
        [(
            task(1).as_str().to_owned(),
            (ResourceKind::Video, v.id.0),
            "user"
        )]
    );
    assert!(svc.store().owed_cleanups().is_empty());
    assert_eq!(tick(&svc, &mut drains, now).await, 0, "sent once");
}

#[tokio::test]
async fn with_the_broker_down_a_cleanup_waits_for_the_delayed_revoke_and_is_not_lost() {
    let (svc, mut drains, _) = wired(Settings::default());
    let s = svc.store();
    let b = s.insert_briefing(ALICE, BriefingStatus::Processing, Some(task(2)));
    let v = s.insert_video(ALICE, VideoStatus::Queued, Some(task(3)));
    svc.broker().fail_next.store(1, Ordering::SeqCst);
    let report = svc.cancel_all(&caller(ALICE)).await.unwrap();
    assert!(
        report
            .revokes
            .iter()
            .all(|(_, r)| *r == RevokeStatus::Pending)
    );
    let now = OffsetDateTime::now_utc();
    assert_eq!(tick(&svc, &mut drains, now).await, 0, "no kill sent yet");

    // The dispatcher delivers the revokes once the broker is back; the cleanups follow.
    let later = now + FIRST_ATTEMPT_GRACE + Duration::seconds(1);
    assert_eq!(svc.deliver_revokes(later, 10).await.unwrap().sent, 2);
    assert_eq!(tick(&svc, &mut drains, later).await, 2);
    let mut sent = cleanups_sent(svc.broker());
    sent.sort_by_key(|(task, _, _)| task.clone());
    let mut expected = vec![
        (
            task(2).as_str().to_owned(),
            (ResourceKind::Briefing, b.id.0),
            "user_all",
        ),
        (
            task(3).as_str().to_owned(),
            (ResourceKind::Video, v.id.0),
            "user_all",
        ),
    ];
    expected.sort_by_key(|(task, _, _)| task.clone());
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn a_failures_cleanup_leaves_at_once_and_an_outage_only_delays_it() {
    let (svc, mut drains, _) = wired(Settings::default());
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(4)));
    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Failure,
        error: Some("boom".into()),
        ..TaskSnapshot::pending(task(4))
    });
    svc.reconcile_task(&task(4)).await.unwrap();
    assert_eq!(
        svc.store().video_row(v.id).unwrap().status,
        VideoStatus::Failed
    );

    let now = OffsetDateTime::now_utc();
    svc.record_cleanups(&mut drains.cleanups).await.unwrap();
    svc.broker().fail_next.store(1, Ordering::SeqCst);
    assert!(svc.dispatch_cleanups(now, 100).await.is_err());
    let owed = svc.store().owed_cleanups();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].attempts, 1);
    assert_eq!(owed[0].reason, CleanupReason::Failed);
    // Backed off: not due at once, due after the delay.
    assert_eq!(tick(&svc, &mut drains, now).await, 0);
    assert_eq!(tick(&svc, &mut drains, now + retry_delay(0)).await, 1);
    assert_eq!(
        cleanups_sent(svc.broker()),
        [(
            task(4).as_str().to_owned(),
            (ResourceKind::Video, v.id.0),
            "failed"
        )]
    );
}

#[tokio::test]
async fn a_cleanup_the_database_could_not_take_is_kept_for_the_next_tick() {
    let (svc, mut drains, _) = wired(Settings::default());
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(5)));
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    svc.store().down.store(true, Ordering::SeqCst);
    assert!(svc.record_cleanups(&mut drains.cleanups).await.is_err());
    svc.store().down.store(false, Ordering::SeqCst);
    assert_eq!(svc.record_cleanups(&mut drains.cleanups).await.unwrap(), 1);
    assert_eq!(svc.store().owed_cleanups().len(), 1);
}

#[tokio::test]
async fn the_orphan_sweep_names_every_task_in_flight_and_spares_fresh_directories() {
    let svc = service();
    let s = svc.store();
    s.insert_video(ALICE, VideoStatus::Processing, Some(task(6)));
    s.insert_briefing(ALICE, BriefingStatus::Processing, Some(task(7)));
    s.insert_video(ALICE, VideoStatus::Completed, Some(task(8)));
    let now = OffsetDateTime::now_utc();

    assert_eq!(
        svc.sweep_orphans(now, Duration::minutes(2)).await.unwrap(),
        Some(2)
    );
    let published = svc.broker().published();
    let [sweep] = published.as_slice() else {
        panic!("one sweep task: {published:?}")
    };
    let TaskKind::SweepOrphans {
        in_flight,
        modified_before,
    } = &sweep.kind
    else {
        panic!("{sweep:?}")
    };
    let mut names: Vec<_> = in_flight.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, [task(6).as_str(), task(7).as_str()]);
    assert_eq!(*modified_before, now - Duration::minutes(2));
}

#[tokio::test]
async fn a_task_claimed_before_any_worker_is_owed_no_cleanup() {
    let (svc, mut drains, _) = wired(Settings::default());
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Queued, Some(task(5)));
    *svc.broker().revoke_outcome.lock().unwrap() = Some(RevokeOutcome::Claimed);
    let done = svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    assert_eq!(done.revoke, RevokeStatus::Done(RevokeOutcome::Claimed));
    svc.record_deliveries(&mut drains.deliveries).await.unwrap();

    assert_eq!(tick(&svc, &mut drains, OffsetDateTime::now_utc()).await, 0);
    assert!(cleanups_sent(svc.broker()).is_empty());
    assert!(
        svc.store().owed_cleanups().is_empty(),
        "dropped, not held back"
    );
}

#[tokio::test]
async fn a_task_that_finished_before_its_kill_is_owed_the_cleanup_of_its_output() {
    let (svc, mut drains, _) = wired(Settings::default());
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(6)));
    *svc.broker().revoke_outcome.lock().unwrap() = Some(RevokeOutcome::FinishedFirst);
    let done = svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    assert_eq!(
        done.revoke,
        RevokeStatus::Done(RevokeOutcome::FinishedFirst)
    );
    assert!(!done.revoke.revoked());
    svc.record_deliveries(&mut drains.deliveries).await.unwrap();

    assert_eq!(tick(&svc, &mut drains, OffsetDateTime::now_utc()).await, 1);
    assert_eq!(
        cleanups_sent(svc.broker()),
        [(
            task(6).as_str().to_owned(),
            (ResourceKind::Video, v.id.0),
            "finished_first"
        )]
    );
}
