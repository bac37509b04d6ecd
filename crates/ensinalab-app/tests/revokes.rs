//! The revoke outbox over the in-memory fakes: a cancel owes its revoke in the same step as
//! the status change; delivery retries with backoff; re-broadcast until settled or too old.

use std::sync::atomic::Ordering;

use ensinalab_app::testing::{caller, service, task, wired};
use ensinalab_app::{CancelError, Settings, retry_delay};
use ensinalab_domain::{BriefingStatus, CeleryState, ResourceKind, UserId, VideoStatus};
use ensinalab_ports::{
    ChangeKind, FIRST_ATTEMPT_GRACE, RevokeOutbox, RevokeOutcome, RevokeStatus, TaskSnapshot,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const ALICE: UserId = UserId(1);

fn later() -> OffsetDateTime {
    OffsetDateTime::now_utc() + FIRST_ATTEMPT_GRACE + Duration::seconds(1)
}

#[tokio::test]
async fn a_cancel_delivered_at_once_is_marked_after_the_response_and_leaves_nothing_pending() {
    let (svc, mut drains, _) = wired(Settings::default());
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    let done = svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    assert_eq!(done.revoke, RevokeStatus::Done(RevokeOutcome::Signalled));
    // The cancel answered without writing the delivery: owed, not yet marked, not yet due.
    let owed = svc.store().owed_revokes();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].0.delivered_at, None);
    assert!(
        svc.store()
            .due_revokes(OffsetDateTime::now_utc(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The dispatcher's next tick marks it, once.
    assert_eq!(
        svc.record_deliveries(&mut drains.deliveries).await.unwrap(),
        1
    );
    assert_eq!(
        svc.record_deliveries(&mut drains.deliveries).await.unwrap(),
        0
    );
    let owed = svc.store().owed_revokes();
    assert!(owed[0].0.delivered_at.is_some());
    assert!(
        svc.store()
            .due_revokes(later(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_delivery_never_marked_is_delivered_again_after_its_grace() {
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    // The mark is lost (the process died before the dispatcher's tick): the row is still owed.
    assert_eq!(svc.deliver_revokes(later(), 10).await.unwrap().sent, 1);
    assert_eq!(
        svc.broker().revoke_calls(),
        vec![vec![task(1)], vec![task(1)]]
    );
    assert!(svc.store().owed_revokes()[0].0.delivered_at.is_some());
}

#[tokio::test]
async fn a_refused_cancel_owes_nothing() {
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Completed, Some(task(1)));
    assert!(svc.cancel_video(&caller(ALICE), v.id).await.is_err());
    let b = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::OptionsReady, Some(task(2)));
    assert!(svc.cancel_briefing(&caller(ALICE), b.id).await.is_err());
    assert!(svc.store().owed_revokes().is_empty());
}

#[tokio::test]
async fn a_pending_revoke_is_delivered_once_the_broker_answers_with_backoff_meanwhile() {
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Queued, Some(task(1)));
    // The cancel's look at the task's state, its revoke, and the first retry.
    svc.broker().fail_next.store(3, Ordering::SeqCst);
    let done = svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    assert_eq!(done.revoke, RevokeStatus::Pending);

    // Not due yet: the cancel itself had the first attempt.
    let now = OffsetDateTime::now_utc();
    assert_eq!(svc.deliver_revokes(now, 10).await.unwrap().sent, 0);

    // Due, but the broker is still down: the next attempt is pushed back.
    let t1 = later();
    assert!(svc.deliver_revokes(t1, 10).await.is_err());
    let owed = svc.store().owed_revokes();
    assert_eq!(owed[0].0.attempts, 1);
    assert!(svc.store().due_revokes(t1, 10).await.unwrap().is_empty());

    // After the backoff the broker answers: delivered, with the revoke it was owed.
    let t2 = t1 + retry_delay(0);
    let report = svc.deliver_revokes(t2, 10).await.unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(svc.broker().revoke_calls().last(), Some(&vec![task(1)]));
    assert!(svc.store().owed_revokes()[0].0.delivered_at.is_some());
    assert!(svc.store().due_revokes(t2, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn cancel_all_owes_one_revoke_per_task_and_delivers_them_in_one_call() {
    let svc = service();
    let s = svc.store();
    s.insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    s.insert_video(ALICE, VideoStatus::Queued, Some(task(2)));
    s.insert_video(ALICE, VideoStatus::PendingApproval, None);
    svc.broker().fail_next.store(1, Ordering::SeqCst);

    let report = svc.cancel_all(&caller(ALICE)).await.unwrap();
    assert_eq!(report.total(), 3);
    assert_eq!(
        report.revokes,
        vec![
            (task(1), RevokeStatus::Pending),
            (task(2), RevokeStatus::Pending)
        ]
    );
    assert_eq!(svc.deliver_revokes(later(), 10).await.unwrap().sent, 2);
    assert_eq!(
        svc.broker().revoke_calls().last(),
        Some(&vec![task(1), task(2)])
    );
}

#[tokio::test]
async fn an_unheard_revoke_is_broadcast_again_until_the_task_is_finished() {
    let (svc, mut drains, _) = wired(Settings::default());
    *svc.broker().revoke_outcome.lock().unwrap() = Some(RevokeOutcome::NoWorkerListening);
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Queued, Some(task(1)));
    let done = svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    assert_eq!(
        done.revoke,
        RevokeStatus::Done(RevokeOutcome::NoWorkerListening)
    );
    svc.record_deliveries(&mut drains.deliveries).await.unwrap();
    let since = OffsetDateTime::now_utc() - Duration::hours(24);

    // Still open: said again.
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        svc.rebroadcast_revokes(now, since, 10).await.unwrap().sent,
        1
    );
    assert_eq!(svc.broker().revoke_calls().len(), 2);

    // The broker now reports it finished: settled, never sent again.
    *svc.broker().revoke_outcome.lock().unwrap() = Some(RevokeOutcome::AlreadyFinished);
    assert_eq!(
        svc.rebroadcast_revokes(now, since, 10).await.unwrap().sent,
        1
    );
    assert_eq!(
        svc.rebroadcast_revokes(now, since, 10).await.unwrap().sent,
        0
    );
    assert_eq!(svc.broker().revoke_calls().len(), 3);
    assert!(svc.store().owed_revokes()[0].1);
}

#[tokio::test]
async fn revokes_older_than_the_bound_are_not_broadcast_again() {
    let svc = service();
    *svc.broker().revoke_outcome.lock().unwrap() = Some(RevokeOutcome::Signalled);
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    let since = OffsetDateTime::now_utc() + Duration::seconds(1);
    let report = svc
        .rebroadcast_revokes(OffsetDateTime::now_utc(), since, 10)
        .await
        .unwrap();
    assert_eq!(report.sent, 0);
}

#[tokio::test]
async fn a_cancel_of_a_task_whose_result_says_it_finished_is_refused_and_the_row_takes_the_result()
{
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(6)));
    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Success,
        info: Some(json!({"video_id": v.id.0, "status": "completed", "url": "https://v/1.mp4"})),
        ..TaskSnapshot::pending(task(6))
    });

    let err = svc.cancel_video(&caller(ALICE), v.id).await.unwrap_err();

    assert!(
        matches!(
            err,
            CancelError::NotCancellable {
                status: VideoStatus::Completed
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        svc.store().video_row(v.id).unwrap().status,
        VideoStatus::Completed
    );
    assert!(svc.store().owed_revokes().is_empty());
    assert!(svc.broker().revoke_calls().is_empty());
}

#[tokio::test]
async fn a_kill_confirmed_after_the_cancel_answered_settles_its_revoke_as_one_killed_change() {
    let (svc, mut drains, sink) = wired(Settings::default());
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(7)));
    let done = svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    assert_eq!(done.revoke, RevokeStatus::Done(RevokeOutcome::Signalled));
    svc.record_deliveries(&mut drains.deliveries).await.unwrap();

    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Revoked,
        error: Some("terminated".into()),
        ..TaskSnapshot::pending(task(7))
    });
    // Every server hears the worker's write; one settles it.
    svc.reconcile_task(&task(7)).await.unwrap();
    svc.reconcile_task(&task(7)).await.unwrap();

    let killed: Vec<_> = sink
        .changes()
        .into_iter()
        .filter(|c| c.kind == ChangeKind::Revoke(RevokeStatus::Done(RevokeOutcome::Killed)))
        .collect();
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(killed[0].resource, (ResourceKind::Video, v.id.0));
    assert!(svc.store().owed_revokes()[0].1, "settled");
    assert_eq!(
        svc.store().video_row(v.id).unwrap().status,
        VideoStatus::Cancelled
    );
}
