//! Reporting the messages a broker took out of its queue after cancels, over the in-memory
//! fakes: one `revoke` change per removed message, for the resource whose task it is.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use ensinalab_app::testing::{recorded_service, task};
use ensinalab_app::{Settings, UnqueueError, UnqueueReport};
use ensinalab_domain::{BriefingStatus, ResourceKind, UserId, VideoStatus};
use ensinalab_ports::{AnyStatus, BrokerError, ChangeKind, RevokeOutcome, RevokeStatus, TakenOut};
use time::OffsetDateTime;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);

const REMOVED: ChangeKind = ChangeKind::Revoke(RevokeStatus::Done(RevokeOutcome::RemovedFromQueue));

#[tokio::test]
async fn each_removed_message_is_one_revoke_change_on_its_owner_s_stream() {
    let (svc, sink) = recorded_service(Settings::default());
    let video = svc
        .store()
        .insert_video(ALICE, VideoStatus::Cancelled, Some(task(1)));
    let briefing = svc
        .store()
        .insert_briefing(BOB, BriefingStatus::Cancelled, Some(task(2)));
    *svc.broker().taken_out.lock().unwrap() = Some(VecDeque::from([TakenOut {
        // task(3) belongs to no row (another service sharing the broker): nobody to tell.
        removed: vec![task(1), task(2), task(3)],
        more: true,
    }]));

    let report = svc
        .take_out_cancelled(OffsetDateTime::now_utc())
        .await
        .unwrap();

    assert_eq!(
        report,
        Some(UnqueueReport {
            removed: 3,
            reported: 2,
            more: true
        })
    );
    let changes = sink.changes();
    let seen: Vec<_> = changes
        .iter()
        .map(|c| (c.user_id, c.resource, c.task_id.clone(), c.kind, c.status))
        .collect();
    assert_eq!(
        seen,
        [
            (
                ALICE,
                (ResourceKind::Video, video.id.get()),
                Some(task(1)),
                REMOVED,
                AnyStatus::Video(VideoStatus::Cancelled)
            ),
            (
                BOB,
                (ResourceKind::Briefing, briefing.id.get()),
                Some(task(2)),
                REMOVED,
                AnyStatus::Briefing(BriefingStatus::Cancelled)
            ),
        ]
    );
    assert_eq!(changes[0].kind.to_string(), "revoke");
}

#[tokio::test]
async fn a_pass_that_removed_nothing_emits_nothing_and_says_whether_more_is_owed() {
    let (svc, sink) = recorded_service(Settings::default());
    *svc.broker().taken_out.lock().unwrap() = Some(VecDeque::new());

    let report = svc
        .take_out_cancelled(OffsetDateTime::now_utc())
        .await
        .unwrap();

    assert_eq!(report, Some(UnqueueReport::default()));
    assert!(sink.changes().is_empty());
}

#[tokio::test]
async fn a_broker_without_a_queue_of_its_own_owes_nothing() {
    let (svc, sink) = recorded_service(Settings::default());

    let report = svc
        .take_out_cancelled(OffsetDateTime::now_utc())
        .await
        .unwrap();

    assert_eq!(report, None);
    assert!(sink.changes().is_empty());
}

#[tokio::test]
async fn a_broker_failure_is_the_pass_s_error_and_reports_nothing() {
    let (svc, sink) = recorded_service(Settings::default());
    svc.store()
        .insert_video(ALICE, VideoStatus::Cancelled, Some(task(1)));
    *svc.broker().taken_out.lock().unwrap() = Some(VecDeque::from([TakenOut {
        removed: vec![task(1)],
        more: false,
    }]));
    svc.broker().fail_next.store(1, Ordering::SeqCst);

    let err = svc
        .take_out_cancelled(OffsetDateTime::now_utc())
        .await
        .unwrap_err();

    assert!(matches!(
        err,
        UnqueueError::Broker(BrokerError::Unavailable(_))
    ));
    assert!(sink.changes().is_empty());
}

#[tokio::test]
async fn a_store_failure_is_the_pass_s_error_and_the_changes_emitted_before_it_stand() {
    let (svc, sink) = recorded_service(Settings::default());
    svc.store()
        .insert_video(ALICE, VideoStatus::Cancelled, Some(task(1)));
    svc.store()
        .insert_video(BOB, VideoStatus::Cancelled, Some(task(2)));
    *svc.broker().taken_out.lock().unwrap() = Some(VecDeque::from([TakenOut {
        removed: vec![task(1), task(2)],
        more: false,
    }]));
    // The first removal's two reads (its task's resource, its row) succeed; then it is down.
    svc.store().fail_after.store(2, Ordering::SeqCst);

    let err = svc
        .take_out_cancelled(OffsetDateTime::now_utc())
        .await
        .unwrap_err();

    assert!(matches!(err, UnqueueError::Store(_)));
    let changes = sink.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].task_id, Some(task(1)));
}
