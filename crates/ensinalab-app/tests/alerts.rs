//! Cancels that could not be carried out: a revoke still undelivered past its grace, or one
//! delivered while a live worker still runs the task, is reported once as a `revoke_overdue`
//! change on its owner's stream; the alert queue takes those and the automatic timeouts.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ensinalab_app::testing::{
    InMemoryStore, RecordingBroker, RecordingSink, caller, recorded_service, task, wired,
};
use ensinalab_app::{AlertQueue, OverdueReport, Service, Settings};
use ensinalab_domain::{CancelReason, ResourceKind, UserId, VideoStatus};
use ensinalab_ports::{ChangeKind, ChangeSink, Overdue, RevokeOutcome, TaskChange};
use time::{Duration, OffsetDateTime};

const ALICE: UserId = UserId(1);
const GRACE: Duration = Duration::seconds(60);

fn service() -> (Service<InMemoryStore, RecordingBroker>, Arc<RecordingSink>) {
    recorded_service(Settings::default())
}

fn overdue_changes(sink: &RecordingSink) -> Vec<TaskChange> {
    sink.changes()
        .into_iter()
        .filter(|c| matches!(c.kind, ChangeKind::RevokeOverdue(_)))
        .collect()
}

#[tokio::test]
async fn a_revoke_still_undelivered_past_its_grace_is_reported_once_to_its_owner() {
    let (svc, sink) = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.broker().fail_next.store(1, Ordering::SeqCst);
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    let cancelled = OffsetDateTime::now_utc();

    let within = svc
        .report_overdue_revokes(cancelled + Duration::seconds(59), GRACE, 100)
        .await
        .unwrap();
    assert_eq!(within, OverdueReport::default());

    let past = cancelled + Duration::seconds(61);
    let report = svc.report_overdue_revokes(past, GRACE, 100).await.unwrap();
    assert_eq!(report.undelivered, 1);
    let changes = overdue_changes(&sink);
    let [change] = changes.as_slice() else {
        panic!("{changes:?}")
    };
    assert_eq!(change.kind, ChangeKind::RevokeOverdue(Overdue::Undelivered));
    assert_eq!(change.kind.as_str(), "revoke_overdue");
    assert_eq!(change.user_id, ALICE);
    assert_eq!(change.resource, (ResourceKind::Video, v.id.0));
    assert_eq!(change.task_id, Some(task(1)));

    let again = svc.report_overdue_revokes(past, GRACE, 100).await.unwrap();
    assert_eq!(again, OverdueReport::default(), "reported once");
    assert_eq!(overdue_changes(&sink).len(), 1);
}

#[tokio::test]
async fn a_delivered_revoke_is_overdue_only_while_a_live_worker_still_runs_the_task() {
    let (svc, mut drains, sink) = wired(Settings::default());
    let s = svc.store();
    let killed = s.insert_video(ALICE, VideoStatus::Processing, Some(task(2)));
    let survivor = s.insert_video(ALICE, VideoStatus::Processing, Some(task(3)));
    svc.cancel_video(&caller(ALICE), killed.id).await.unwrap();
    svc.cancel_video(&caller(ALICE), survivor.id).await.unwrap();
    svc.record_deliveries(&mut drains.deliveries).await.unwrap();
    let past = OffsetDateTime::now_utc() + Duration::seconds(61);

    // The broker cannot tell who runs what: nothing is claimed.
    let blind = svc.report_overdue_revokes(past, GRACE, 100).await.unwrap();
    assert_eq!(blind, OverdueReport::default());

    *svc.broker().running.lock().unwrap() = Some(vec![task(3)]);
    let report = svc.report_overdue_revokes(past, GRACE, 100).await.unwrap();
    assert_eq!(report.still_running, 1);
    let changes = overdue_changes(&sink);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].kind,
        ChangeKind::RevokeOverdue(Overdue::StillRunning)
    );
    assert_eq!(changes[0].resource, (ResourceKind::Video, survivor.id.0));
}

#[tokio::test]
async fn a_settled_revoke_is_never_overdue() {
    let (svc, mut drains, sink) = wired(Settings::default());
    *svc.broker().revoke_outcome.lock().unwrap() = Some(RevokeOutcome::AlreadyFinished);
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(4)));
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    svc.record_deliveries(&mut drains.deliveries).await.unwrap();
    *svc.broker().running.lock().unwrap() = Some(vec![task(4)]);
    let past = OffsetDateTime::now_utc() + Duration::hours(1);
    let report = svc.report_overdue_revokes(past, GRACE, 100).await.unwrap();
    assert_eq!(report, OverdueReport::default());
    assert!(overdue_changes(&sink).is_empty());
}

#[tokio::test]
async fn the_alert_queue_takes_timeouts_and_overdue_revokes_only() {
    let (svc, sink) = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(5)));
    svc.broker().fail_next.store(1, Ordering::SeqCst);
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    svc.report_overdue_revokes(OffsetDateTime::now_utc() + Duration::hours(1), GRACE, 100)
        .await
        .unwrap();

    let (alerts, mut drain) = AlertQueue::new();
    for change in sink.changes() {
        alerts.publish(&change);
    }
    let mut timeout = sink.changes()[0].clone();
    timeout.kind = ChangeKind::Cancelled(CancelReason::Timeout);
    alerts.publish(&timeout);

    let kinds: Vec<_> = drain.take().iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::RevokeOverdue(Overdue::Undelivered),
            ChangeKind::Cancelled(CancelReason::Timeout)
        ],
        "a user's cancel and its revoke change are no alert"
    );
}

/// A mailer that records each digest, or fails.
#[derive(Default)]
struct Outbox {
    sent: std::sync::Mutex<Vec<Vec<TaskChange>>>,
    down: std::sync::atomic::AtomicBool,
}

impl ensinalab_ports::Mailer for Outbox {
    async fn send(&self, alerts: &[TaskChange]) -> Result<(), ensinalab_ports::MailError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ensinalab_ports::MailError::Unavailable(
                "mail server down".into(),
            ));
        }
        self.sent.lock().unwrap().push(alerts.to_vec());
        Ok(())
    }
}

#[tokio::test]
async fn alerts_go_as_one_digest_per_interval_and_a_failed_send_keeps_them() {
    let (svc, sink) = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(6)));
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    let mut timeout = sink.changes()[0].clone();
    timeout.kind = ChangeKind::Cancelled(CancelReason::Timeout);
    let (alerts, mut drain) = AlertQueue::new();
    let mailer = Outbox::default();
    let every = std::time::Duration::from_secs(300);
    let t0 = OffsetDateTime::now_utc();

    // Nothing to say: no e-mail, and the slot stays free.
    assert_eq!(
        svc.mail_alerts(&mut drain, &mailer, t0, every)
            .await
            .unwrap(),
        0
    );
    for _ in 0..3 {
        alerts.publish(&timeout);
    }
    assert_eq!(
        svc.mail_alerts(&mut drain, &mailer, t0, every)
            .await
            .unwrap(),
        3
    );
    // More within the interval: kept, not sent.
    alerts.publish(&timeout);
    let soon = t0 + Duration::seconds(10);
    assert_eq!(
        svc.mail_alerts(&mut drain, &mailer, soon, every)
            .await
            .unwrap(),
        0
    );
    assert_eq!(mailer.sent.lock().unwrap().len(), 1);
    // Next interval, mail server down: kept again, for the interval after.
    mailer.down.store(true, Ordering::SeqCst);
    let next = t0 + Duration::seconds(300);
    assert!(
        svc.mail_alerts(&mut drain, &mailer, next, every)
            .await
            .is_err()
    );
    mailer.down.store(false, Ordering::SeqCst);
    let after = t0 + Duration::seconds(600);
    assert_eq!(
        svc.mail_alerts(&mut drain, &mailer, after, every)
            .await
            .unwrap(),
        1
    );
    let sent = mailer.sent.lock().unwrap();
    assert_eq!(sent.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
}
