//! The change stream: every committed change a user could see is emitted once, by the use case
//! that made it; nothing is emitted for a refused or a failed (rolled back) one.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ensinalab_app::testing::{
    InMemoryStore, RecordingBroker, RecordingSink, caller, recorded_service, task,
};
use ensinalab_app::{Service, Settings};
use ensinalab_domain::{
    BriefingDraft, BriefingStatus, CancelReason, CeleryState, ResourceKind, TaskId, UserId,
    VideoStatus,
};
use ensinalab_ports::{
    AnyStatus, ChangeKind, RevokeOutcome, RevokeStatus, TaskChange, TaskSnapshot,
};
use serde_json::json;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);

fn service() -> (Service<InMemoryStore, RecordingBroker>, Arc<RecordingSink>) {
    recorded_service(Settings::default())
}

/// What a test compares: everything but the instant.
fn shape(
    c: &TaskChange,
) -> (
    UserId,
    (ResourceKind, i64),
    Option<TaskId>,
    ChangeKind,
    AnyStatus,
    Option<f64>,
) {
    (
        c.user_id,
        c.resource,
        c.task_id.clone(),
        c.kind,
        c.status,
        c.progress,
    )
}

#[tokio::test]
async fn a_cancel_emits_cancelled_then_its_revoke_once() {
    let (svc, sink) = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));

    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();

    let key = (ResourceKind::Video, v.id.get());
    let cancelled = AnyStatus::Video(VideoStatus::Cancelled);
    assert_eq!(
        sink.changes().iter().map(shape).collect::<Vec<_>>(),
        vec![
            (
                ALICE,
                key,
                Some(task(1)),
                ChangeKind::Cancelled(CancelReason::User),
                cancelled,
                Some(0.0)
            ),
            (
                ALICE,
                key,
                Some(task(1)),
                ChangeKind::Revoke(RevokeStatus::Done(RevokeOutcome::Signalled)),
                cancelled,
                Some(0.0)
            ),
        ]
    );
}

#[tokio::test]
async fn a_refused_cancel_emits_nothing() {
    let (svc, sink) = service();
    let s = svc.store();
    let alices = s.insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    let done = s.insert_briefing(ALICE, BriefingStatus::Completed, Some(task(2)));

    assert!(svc.cancel_video(&caller(BOB), alices.id).await.is_err());
    assert!(svc.cancel_briefing(&caller(ALICE), done.id).await.is_err());

    assert!(sink.changes().is_empty(), "{:?}", sink.changes());
}

#[tokio::test]
async fn a_cancel_whose_transaction_failed_emits_nothing() {
    let (svc, sink) = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.store().down.store(true, Ordering::SeqCst);

    assert!(svc.cancel_video(&caller(ALICE), v.id).await.is_err());
    assert!(svc.cancel_all(&caller(ALICE)).await.is_err());

    assert!(sink.changes().is_empty());
}

#[tokio::test]
async fn a_second_cancel_of_the_same_row_emits_nothing_more() {
    let (svc, sink) = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Queued, Some(task(1)));
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    let after_first = sink.changes().len();
    assert!(svc.cancel_video(&caller(ALICE), v.id).await.is_err());
    svc.cancel_all(&caller(ALICE)).await.unwrap();
    assert_eq!(sink.changes().len(), after_first);
}

#[tokio::test]
async fn cancel_all_emits_one_cancelled_and_one_revoke_per_moved_row() {
    let (svc, sink) = service();
    let s = svc.store();
    let b = s.insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    let v = s.insert_video(ALICE, VideoStatus::PendingApproval, None);
    s.insert_video(ALICE, VideoStatus::Completed, Some(task(3)));
    s.insert_video(BOB, VideoStatus::Processing, Some(task(4)));
    svc.broker().fail_next.store(1, Ordering::SeqCst);

    svc.cancel_all(&caller(ALICE)).await.unwrap();

    let b_key = (ResourceKind::Briefing, b.id.get());
    let v_key = (ResourceKind::Video, v.id.get());
    let b_status = AnyStatus::Briefing(BriefingStatus::Cancelled);
    let v_status = AnyStatus::Video(VideoStatus::Cancelled);
    let all = ChangeKind::Cancelled(CancelReason::UserAll);
    assert_eq!(
        sink.changes().iter().map(shape).collect::<Vec<_>>(),
        vec![
            (ALICE, b_key, Some(task(1)), all, b_status, None),
            (ALICE, v_key, None, all, v_status, Some(0.0)),
            (
                ALICE,
                b_key,
                Some(task(1)),
                ChangeKind::Revoke(RevokeStatus::Pending),
                b_status,
                None
            ),
            (
                ALICE,
                v_key,
                None,
                ChangeKind::Revoke(RevokeStatus::NoTask),
                v_status,
                Some(0.0)
            ),
        ]
    );
}

#[tokio::test]
async fn creating_emits_created_and_a_failed_dispatch_emits_failed() {
    let (svc, sink) = service();
    let draft = BriefingDraft::new("Aula", "", 10).unwrap();
    let b = svc.create_briefing(&caller(ALICE), &draft).await.unwrap();
    svc.broker().fail_next.store(1, Ordering::SeqCst);
    assert!(svc.create_briefing(&caller(ALICE), &draft).await.is_err());

    let changes = sink.changes();
    let kinds: Vec<(ChangeKind, AnyStatus)> = changes.iter().map(|c| (c.kind, c.status)).collect();
    assert_eq!(
        kinds,
        vec![
            (
                ChangeKind::Created,
                AnyStatus::Briefing(BriefingStatus::Processing)
            ),
            (
                ChangeKind::Failed,
                AnyStatus::Briefing(BriefingStatus::Failed)
            ),
        ]
    );
    assert_eq!(changes[0].resource, (ResourceKind::Briefing, b.id.get()));
    assert_eq!(changes[0].task_id, b.task_id);
}

#[tokio::test]
async fn worker_reports_become_changes_once_each_like_a_users_cancel() {
    let (svc, sink) = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Queued, Some(task(1)));
    let report = |state: &str, progress: Option<f64>, info| TaskSnapshot {
        state: CeleryState::parse(state),
        progress,
        info,
        ..TaskSnapshot::pending(task(1))
    };

    svc.broker().set_state(report("STARTED", None, None));
    svc.reconcile_task(&task(1)).await.unwrap();
    svc.broker().set_state(report("PROGRESS", Some(0.5), None));
    svc.reconcile_task(&task(1)).await.unwrap();
    // The sweep sees what the notification already applied: nothing changes, nothing is emitted.
    svc.reconcile_sweep(10).await.unwrap();
    svc.broker().set_state(report(
        "SUCCESS",
        None,
        Some(json!({"video_id": v.id.get(), "status": "pending_approval"})),
    ));
    svc.reconcile_task(&task(1)).await.unwrap();
    // A late report after the end changes nothing and emits nothing.
    svc.broker().set_state(report("FAILURE", None, None));
    svc.reconcile_task(&task(1)).await.unwrap();

    let seen: Vec<(ChangeKind, AnyStatus, Option<f64>)> = sink
        .changes()
        .iter()
        .map(|c| (c.kind, c.status, c.progress))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                ChangeKind::Started,
                AnyStatus::Video(VideoStatus::Processing),
                Some(0.0)
            ),
            (
                ChangeKind::Progress,
                AnyStatus::Video(VideoStatus::Processing),
                Some(0.5)
            ),
            (
                ChangeKind::PendingApproval,
                AnyStatus::Video(VideoStatus::PendingApproval),
                Some(1.0)
            ),
        ]
    );
    assert!(sink.changes().iter().all(|c| c.user_id == ALICE));
}

#[tokio::test]
async fn a_revoke_reported_by_the_broker_is_a_cancel_for_reason_revoked() {
    let (svc, sink) = service();
    let b = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Revoked,
        ..TaskSnapshot::pending(task(1))
    });
    svc.reconcile_task(&task(1)).await.unwrap();
    let changes = sink.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].kind,
        ChangeKind::Cancelled(CancelReason::Revoked)
    );
    assert_eq!(
        svc.store().briefing_row(b.id).unwrap().status,
        BriefingStatus::Cancelled
    );
}
