//! The automatic timeout: a running job past its limit is cancelled by the server through the
//! same cancel as a user's, for reason `timeout`; a job waiting in the queue is not.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::testing::{
    InMemoryStore, RecordingBroker, RecordingSink, recorded_service, task,
};
use ensinalab_app::{Service, Settings};
use ensinalab_domain::{
    AutoCancel, BriefingStatus, CANCELLED_BY_TIMEOUT, CancelReason, ResourceKind, UserId,
    VideoStatus,
};
use ensinalab_ports::{AnyStatus, ChangeKind, RevokeOutcome, RevokeStatus, SecurityEventKind};
use serde_json::json;
use time::OffsetDateTime;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);

fn service() -> (Service<InMemoryStore, RecordingBroker>, Arc<RecordingSink>) {
    recorded_service(Settings {
        auto_cancel: AutoCancel::new(2.0, Duration::from_secs(60), Duration::from_secs(300)),
        ..Settings::default()
    })
}

#[tokio::test]
async fn a_job_running_past_its_limit_is_cancelled_for_the_timeout_and_nothing_else_is() {
    let (svc, sink) = service();
    let s = svc.store();
    let now = OffsetDateTime::now_utc();
    let ago = |secs| now - time::Duration::seconds(secs);
    // Limits: options 120 s, videos 600 s.
    let late_video = s.insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    s.start_video(late_video.id, ago(601));
    let fine_video = s.insert_video(ALICE, VideoStatus::Processing, Some(task(2)));
    s.start_video(fine_video.id, ago(599));
    let late_briefing = s.insert_briefing(BOB, BriefingStatus::Processing, Some(task(3)));
    s.start_briefing(late_briefing.id, ago(121));
    // Waiting in the queue for an hour: not running, so not late.
    let queued = s.insert_video(ALICE, VideoStatus::Queued, Some(task(4)));
    let _ = queued;
    let never_started = s.insert_briefing(ALICE, BriefingStatus::Processing, Some(task(5)));

    assert_eq!(svc.cancel_expired(now).await.unwrap(), 2);

    let v = s.video_row(late_video.id).unwrap();
    assert_eq!(v.status, VideoStatus::Cancelled);
    assert_eq!(v.error_message.as_deref(), Some(CANCELLED_BY_TIMEOUT));
    assert_eq!(v.progress, 0.0);
    let b = s.briefing_row(late_briefing.id).unwrap();
    assert_eq!(b.status, BriefingStatus::Cancelled);
    assert_eq!(b.error_message.as_deref(), Some(CANCELLED_BY_TIMEOUT));
    assert_eq!(
        s.video_row(fine_video.id).unwrap().status,
        VideoStatus::Processing
    );
    assert_eq!(s.video_row(queued.id).unwrap().status, VideoStatus::Queued);
    assert_eq!(
        s.briefing_row(never_started.id).unwrap().status,
        BriefingStatus::Processing
    );

    // One revoke call for both, owed in the outbox like any cancel's.
    assert_eq!(svc.broker().revoke_calls().len(), 1);
    assert_eq!(s.owed_revokes().len(), 2);

    // The trail names the owner, the job and the limit.
    let events = s.events();
    let auto: Vec<_> = events
        .iter()
        .filter(|e| e.event == SecurityEventKind::AutoCancelled)
        .map(|e| {
            (
                e.user_id,
                e.resource,
                e.task_id.clone(),
                e.details["limit_secs"].clone(),
            )
        })
        .collect();
    assert_eq!(
        auto,
        vec![
            (
                Some(BOB),
                Some((ResourceKind::Briefing, late_briefing.id.get())),
                Some(task(3)),
                json!(120)
            ),
            (
                Some(ALICE),
                Some((ResourceKind::Video, late_video.id.get())),
                Some(task(1)),
                json!(600)
            ),
        ]
    );

    // The change stream: cancelled for the timeout, then the revoke, for each owner.
    let changes = sink.changes();
    let timeout = ChangeKind::Cancelled(CancelReason::Timeout);
    let signalled = ChangeKind::Revoke(RevokeStatus::Done(RevokeOutcome::Signalled));
    let seen: Vec<_> = changes
        .iter()
        .map(|c| (c.user_id, c.kind, c.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            (BOB, timeout, AnyStatus::Briefing(BriefingStatus::Cancelled)),
            (ALICE, timeout, AnyStatus::Video(VideoStatus::Cancelled)),
            (
                BOB,
                signalled,
                AnyStatus::Briefing(BriefingStatus::Cancelled)
            ),
            (ALICE, signalled, AnyStatus::Video(VideoStatus::Cancelled)),
        ]
    );

    // A second sweep finds nothing more to do.
    assert_eq!(svc.cancel_expired(now).await.unwrap(), 0);
    assert_eq!(sink.changes().len(), 4);
}

#[tokio::test]
async fn without_an_automatic_timeout_nothing_is_ever_cancelled() {
    let svc = ensinalab_app::testing::service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    let long_ago = OffsetDateTime::now_utc() - time::Duration::days(30);
    svc.store().start_video(v.id, long_ago);
    assert_eq!(
        svc.cancel_expired(OffsetDateTime::now_utc()).await.unwrap(),
        0
    );
    assert_eq!(
        svc.store().video_row(v.id).unwrap().status,
        VideoStatus::Processing
    );
}

#[tokio::test]
async fn a_worker_report_records_when_the_job_started_once() {
    let (svc, sink) = service();
    let b = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    svc.broker().set_state(ensinalab_ports::TaskSnapshot {
        state: ensinalab_domain::CeleryState::Started,
        ..ensinalab_ports::TaskSnapshot::pending(task(1))
    });
    svc.reconcile_task(&task(1)).await.unwrap();
    let first = svc.store().briefing_row(b.id).unwrap().started_at.unwrap();
    svc.reconcile_task(&task(1)).await.unwrap();
    svc.reconcile_sweep(10).await.unwrap();
    assert_eq!(
        svc.store().briefing_row(b.id).unwrap().started_at,
        Some(first)
    );
    let started: Vec<_> = sink
        .changes()
        .iter()
        .filter(|c| c.kind == ChangeKind::Started)
        .map(|c| c.resource)
        .collect();
    assert_eq!(
        started,
        vec![(ResourceKind::Briefing, b.id.get())],
        "one start"
    );
}
