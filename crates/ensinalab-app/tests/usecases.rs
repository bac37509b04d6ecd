//! Use-case tests over the in-memory fakes: outcomes, not call order.

use std::sync::atomic::Ordering;

use ensinalab_app::testing::{caller, service, task, wired};
use ensinalab_app::{
    CancelBriefingError, CancelVideoError, SelectOptionError, Settings, TaskStatusError,
};
use ensinalab_domain::{
    BriefingDraft, BriefingId, BriefingStatus, CANCELLED_BY_USER, CeleryState, OptionId,
    ResourceKind, UserId, VideoId, VideoStatus,
};
use ensinalab_ports::{
    ActivePage, Caller, EventOutcome, RevokeOutcome, RevokeStatus, SecurityEventKind, TaskKind,
    TaskSnapshot,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);

#[tokio::test]
async fn cancelling_your_processing_video_cancels_it_revokes_its_task_and_logs_it() {
    let svc = service();
    let video = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));

    let done = svc.cancel_video(&caller(ALICE), video.id).await.unwrap();

    assert_eq!(done.revoke, RevokeStatus::Done(RevokeOutcome::Signalled));
    assert!(done.revoke.revoked());
    assert_eq!(done.resource.status, VideoStatus::Cancelled);
    let row = svc.store().video_row(video.id).unwrap();
    assert_eq!(row.status, VideoStatus::Cancelled);
    assert_eq!(row.error_message.as_deref(), Some(CANCELLED_BY_USER));
    assert_eq!(row.progress, 0.0);
    assert_eq!(svc.broker().revoke_calls(), vec![vec![task(1)]]);
    let events = svc.store().events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, SecurityEventKind::VideoCancelled);
    assert_eq!(events[0].outcome, EventOutcome::Cancelled);
    assert_eq!(events[0].user_id, Some(ALICE));
    assert_eq!(
        events[0].resource,
        Some((ResourceKind::Video, video.id.get()))
    );
    assert_eq!(events[0].task_id, Some(task(1)));
    assert_eq!(
        events[0].details,
        json!({"revoked": true, "revoke": "signalled"})
    );
}

#[tokio::test]
async fn every_cancellable_video_status_can_be_cancelled() {
    for &status in VideoStatus::CANCELLABLE {
        let svc = service();
        let video = svc.store().insert_video(ALICE, status, Some(task(1)));
        let done = svc.cancel_video(&caller(ALICE), video.id).await.unwrap();
        assert_eq!(done.resource.status, VideoStatus::Cancelled, "{status}");
    }
}

#[tokio::test]
async fn someone_elses_video_is_not_found_unchanged_and_logged_as_an_attempt() {
    let svc = service();
    let video = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));

    let err = svc.cancel_video(&caller(BOB), video.id).await.unwrap_err();

    assert!(matches!(err, CancelVideoError::NotFound));
    assert_eq!(
        svc.store().video_row(video.id).unwrap().status,
        VideoStatus::Processing
    );
    assert!(svc.broker().revoke_calls().is_empty());
    let events = svc.store().events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, SecurityEventKind::CancelRefused);
    assert_eq!(events[0].outcome, EventOutcome::NotOwner);
    assert_eq!(events[0].user_id, Some(BOB));
}

#[tokio::test]
async fn a_missing_video_is_not_found_and_logged() {
    let svc = service();
    let err = svc
        .cancel_video(&caller(ALICE), VideoId(999))
        .await
        .unwrap_err();
    assert!(matches!(err, CancelVideoError::NotFound));
    assert_eq!(svc.store().events()[0].outcome, EventOutcome::NotFound);
}

#[tokio::test]
async fn a_finished_video_is_refused_with_its_status_and_left_alone() {
    for &status in VideoStatus::TERMINAL {
        let svc = service();
        let video = svc.store().insert_video(ALICE, status, Some(task(1)));

        let err = svc
            .cancel_video(&caller(ALICE), video.id)
            .await
            .unwrap_err();

        match err {
            CancelVideoError::NotCancellable { status: current } => assert_eq!(current, status),
            other => panic!("expected NotCancellable, got {other:?}"),
        }
        assert_eq!(svc.store().video_row(video.id).unwrap().status, status);
        assert!(svc.broker().revoke_calls().is_empty());
        let events = svc.store().events();
        assert_eq!(events[0].outcome, EventOutcome::NotCancellable);
        assert_eq!(events[0].details, json!({"status": status.as_str()}));
    }
}

#[tokio::test]
async fn when_the_revoke_fails_the_cancel_still_stands_and_says_it_is_pending() {
    let svc = service();
    let video = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    // Down for the cancel's look at the task's state and for its revoke.
    svc.broker().fail_next.store(2, Ordering::SeqCst);

    let done = svc.cancel_video(&caller(ALICE), video.id).await.unwrap();

    assert_eq!(done.revoke, RevokeStatus::Pending);
    assert!(!done.revoke.revoked());
    let owed = svc.store().owed_revokes();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].0.task_id, task(1));
    assert_eq!(owed[0].0.delivered_at, None);
    assert_eq!(
        svc.store().video_row(video.id).unwrap().status,
        VideoStatus::Cancelled
    );
    assert_eq!(
        svc.store().events()[0].details,
        json!({"revoked": false, "revoke": "pending"})
    );
}

#[tokio::test]
async fn a_revoke_that_reached_no_worker_is_not_reported_as_revoked() {
    let svc = service();
    let video = svc
        .store()
        .insert_video(ALICE, VideoStatus::Queued, Some(task(1)));
    *svc.broker().revoke_outcome.lock().unwrap() = Some(RevokeOutcome::NoWorkerListening);

    let done = svc.cancel_video(&caller(ALICE), video.id).await.unwrap();

    assert_eq!(done.revoke.as_str(), "no_worker_listening");
    assert!(!done.revoke.revoked());
}

#[tokio::test]
async fn a_video_without_a_task_is_cancelled_without_a_revoke() {
    let svc = service();
    let video = svc.store().insert_video(ALICE, VideoStatus::Queued, None);
    let done = svc.cancel_video(&caller(ALICE), video.id).await.unwrap();
    assert_eq!(done.revoke, RevokeStatus::NoTask);
    assert!(svc.broker().revoke_calls().is_empty());
}

#[tokio::test]
async fn cancelling_a_generating_briefing_cancels_it_and_revokes_its_task() {
    for &status in BriefingStatus::CANCELLABLE {
        let svc = service();
        let briefing = svc.store().insert_briefing(ALICE, status, Some(task(7)));

        let done = svc
            .cancel_briefing(&caller(ALICE), briefing.id)
            .await
            .unwrap();

        assert_eq!(done.resource.status, BriefingStatus::Cancelled);
        assert!(done.revoke.revoked());
        assert_eq!(svc.broker().revoke_calls(), vec![vec![task(7)]]);
        assert_eq!(
            svc.store().events()[0].event,
            SecurityEventKind::BriefingCancelled
        );
    }
}

#[tokio::test]
async fn a_briefing_with_options_ready_is_refused_with_its_status() {
    let svc = service();
    let briefing = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::OptionsReady, Some(task(7)));
    let err = svc
        .cancel_briefing(&caller(ALICE), briefing.id)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CancelBriefingError::NotCancellable {
            status: BriefingStatus::OptionsReady
        }
    ));
    let err = svc
        .cancel_briefing(&caller(BOB), briefing.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CancelBriefingError::NotFound));
}

#[tokio::test]
async fn cancel_all_touches_only_the_callers_active_resources_with_one_revoke() {
    let svc = service();
    let s = svc.store();
    let b1 = s.insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    let b2 = s.insert_briefing(ALICE, BriefingStatus::GeneratingOptions, Some(task(2)));
    let b_done = s.insert_briefing(ALICE, BriefingStatus::OptionsReady, Some(task(3)));
    let v1 = s.insert_video(ALICE, VideoStatus::Queued, Some(task(4)));
    let v2 = s.insert_video(ALICE, VideoStatus::PendingApproval, None);
    let v_done = s.insert_video(ALICE, VideoStatus::Completed, Some(task(5)));
    let bob_b = s.insert_briefing(BOB, BriefingStatus::Processing, Some(task(6)));
    let bob_v = s.insert_video(BOB, VideoStatus::Processing, Some(task(8)));

    let report = svc.cancel_all(&caller(ALICE)).await.unwrap();

    assert_eq!(report.briefings, vec![b1.id, b2.id]);
    assert_eq!(report.videos, vec![v1.id, v2.id]);
    assert_eq!(report.total(), 4);
    assert_eq!(
        svc.broker().revoke_calls(),
        vec![vec![task(1), task(2), task(4)]]
    );
    assert_eq!(
        report.revokes,
        [task(1), task(2), task(4)]
            .map(|t| (t, RevokeStatus::Done(RevokeOutcome::Signalled)))
            .to_vec()
    );
    for id in [b1.id, b2.id] {
        assert_eq!(
            s.briefing_row(id).unwrap().status,
            BriefingStatus::Cancelled
        );
    }
    for id in [v1.id, v2.id] {
        let v = s.video_row(id).unwrap();
        assert_eq!(v.status, VideoStatus::Cancelled);
        assert_eq!(v.error_message.as_deref(), Some(CANCELLED_BY_USER));
    }
    assert_eq!(
        s.briefing_row(b_done.id).unwrap().status,
        BriefingStatus::OptionsReady
    );
    assert_eq!(
        s.video_row(v_done.id).unwrap().status,
        VideoStatus::Completed
    );
    assert_eq!(
        s.briefing_row(bob_b.id).unwrap().status,
        BriefingStatus::Processing
    );
    assert_eq!(
        s.video_row(bob_v.id).unwrap().status,
        VideoStatus::Processing
    );
    let events = s.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, SecurityEventKind::TasksCancelledAll);
    assert_eq!(events[0].details, json!({"briefings": 2, "videos": 2}));
}

#[tokio::test]
async fn cancel_all_with_nothing_active_sends_no_revoke() {
    let svc = service();
    let report = svc.cancel_all(&caller(ALICE)).await.unwrap();
    assert_eq!(report.total(), 0);
    assert!(svc.broker().revoke_calls().is_empty());
}

#[tokio::test]
async fn cancel_all_keeps_the_cancels_when_the_broker_is_down() {
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.broker().fail_next.store(1, Ordering::SeqCst);

    let report = svc.cancel_all(&caller(ALICE)).await.unwrap();

    assert_eq!(report.revokes, vec![(task(1), RevokeStatus::Pending)]);
    assert_eq!(svc.store().owed_revokes().len(), 1);
    assert_eq!(
        svc.store().video_row(v.id).unwrap().status,
        VideoStatus::Cancelled
    );
}

#[tokio::test]
async fn the_active_list_has_only_the_callers_active_rows_with_states_in_one_call() {
    let svc = service();
    let s = svc.store();
    let b = s.insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    let v = s.insert_video(ALICE, VideoStatus::Processing, Some(task(2)));
    let v_no_task = s.insert_video(ALICE, VideoStatus::Queued, None);
    s.insert_video(ALICE, VideoStatus::Completed, Some(task(3)));
    s.insert_video(BOB, VideoStatus::Processing, Some(task(4)));
    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Custom("PROGRESS".into()),
        progress: Some(0.7),
        ..TaskSnapshot::pending(task(2))
    });
    let now = v.created_at + Duration::seconds(301);

    let list = svc
        .list_active(&caller(ALICE), &ActivePage::default(), now)
        .await
        .unwrap();

    let ids: Vec<i64> = list.tasks.iter().map(|t| t.resource.id).collect();
    assert_eq!(
        ids,
        vec![v_no_task.id.get(), v.id.get(), b.id.get()],
        "newest first"
    );
    assert_eq!((list.briefings, list.videos), (1, 2));
    assert!(!list.celery_unavailable);
    assert_eq!(svc.broker().state_calls.load(Ordering::SeqCst), 1);
    let video_row = &list.tasks[1];
    assert_eq!(video_row.celery.as_ref().unwrap().as_str(), "PROGRESS");
    assert!(video_row.is_stuck);
    assert!(video_row.can_cancel);
    assert_eq!(list.tasks[0].celery, None, "no task id, no state");
    assert_eq!(list.tasks[2].celery, Some(CeleryState::Pending));
}

#[tokio::test]
async fn a_job_is_stuck_only_past_the_configured_limit() {
    let (svc, _, _) = wired(Settings {
        task_time_limit_secs: 60,
        ..Settings::default()
    });
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    let at = |secs| v.created_at + Duration::seconds(secs);
    let list = svc
        .list_active(&caller(ALICE), &ActivePage::default(), at(60))
        .await
        .unwrap();
    assert!(!list.tasks[0].is_stuck);
    assert_eq!(list.tasks[0].elapsed.seconds, 60);
    let list = svc
        .list_active(&caller(ALICE), &ActivePage::default(), at(61))
        .await
        .unwrap();
    assert!(list.tasks[0].is_stuck);
}

#[tokio::test]
async fn the_active_list_still_answers_when_the_broker_is_down() {
    let svc = service();
    svc.store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.broker().fail_next.store(1, Ordering::SeqCst);

    let list = svc
        .list_active(
            &caller(ALICE),
            &ActivePage::default(),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();

    assert!(list.celery_unavailable);
    assert_eq!(list.tasks.len(), 1);
    assert_eq!(list.tasks[0].celery, None);
}

#[tokio::test]
async fn task_status_is_for_the_owner_only_and_tracebacks_for_admins_only() {
    let svc = service();
    svc.store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Failure,
        error: Some("ConnectionError: Failed to connect to OpenAI API".into()),
        traceback: Some("Traceback (most recent call last):\n".into()),
        ..TaskSnapshot::pending(task(1))
    });

    let owner = svc.task_status(&caller(ALICE), &task(1)).await.unwrap();
    assert_eq!(
        owner.error.as_deref(),
        Some("ConnectionError: Failed to connect to OpenAI API")
    );
    assert_eq!(owner.traceback, None);

    let admin = Caller {
        is_admin: true,
        ..caller(ALICE)
    };
    let full = svc.task_status(&admin, &task(1)).await.unwrap();
    assert!(full.traceback.is_some());

    let other_admin = Caller {
        is_admin: true,
        ..caller(BOB)
    };
    for c in [caller(BOB), other_admin] {
        assert!(matches!(
            svc.task_status(&c, &task(1)).await,
            Err(TaskStatusError::NotFound)
        ));
    }
    assert!(matches!(
        svc.task_status(&caller(ALICE), &task(99)).await,
        Err(TaskStatusError::NotFound)
    ));
}

#[tokio::test]
async fn creating_a_briefing_stores_it_processing_and_dispatches_options_with_its_task_id() {
    let svc = service();
    let draft = BriefingDraft::new("Teste de Cancelamento", "...", 10).unwrap();

    let briefing = svc.create_briefing(&caller(ALICE), &draft).await.unwrap();

    assert_eq!(briefing.status, BriefingStatus::Processing);
    let published = svc.broker().published();
    assert_eq!(published.len(), 1);
    assert_eq!(Some(&published[0].id), briefing.task_id.as_ref());
    assert_eq!(
        published[0].kind,
        TaskKind::GenerateOptions {
            briefing_id: briefing.id,
            title: "Teste de Cancelamento".into(),
            description: "...".into(),
            duration_minutes: 10,
        }
    );
}

#[tokio::test]
async fn a_briefing_whose_task_cannot_be_dispatched_is_marked_failed() {
    let svc = service();
    svc.broker().fail_next.store(1, Ordering::SeqCst);
    let draft = BriefingDraft::new("t", "", 5).unwrap();

    assert!(svc.create_briefing(&caller(ALICE), &draft).await.is_err());

    let row = svc.store().briefing_row(BriefingId(1)).unwrap();
    assert_eq!(row.status, BriefingStatus::Failed);
    assert!(row.error_message.is_some());
}

#[tokio::test]
async fn selecting_an_option_queues_a_video_and_dispatches_it() {
    let svc = service();
    let b = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::OptionsReady, Some(task(1)));
    let o = svc.store().insert_option(b.id);

    let video = svc.select_option(&caller(ALICE), o.id).await.unwrap();

    assert_eq!(video.status, VideoStatus::Queued);
    assert_eq!(video.briefing_id, b.id);
    let published = svc.broker().published();
    assert_eq!(Some(&published[0].id), video.task_id.as_ref());
    assert!(matches!(
        published[0].kind,
        TaskKind::GenerateVideo { video_id, option_id, duration_minutes: 10, .. }
            if video_id == video.id && option_id == o.id
    ));
    assert_eq!(
        svc.video_status(&caller(ALICE), video.id).await.unwrap().id,
        video.id
    );
}

#[tokio::test]
async fn options_of_someone_else_or_of_an_unready_briefing_cannot_be_selected() {
    let svc = service();
    let b = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    let o = svc.store().insert_option(b.id);
    assert!(matches!(
        svc.select_option(&caller(ALICE), o.id).await,
        Err(SelectOptionError::BriefingNotReady {
            status: BriefingStatus::Processing
        })
    ));
    assert!(matches!(
        svc.select_option(&caller(BOB), o.id).await,
        Err(SelectOptionError::NotFound)
    ));
    assert!(matches!(
        svc.select_option(&caller(ALICE), OptionId(999)).await,
        Err(SelectOptionError::NotFound)
    ));
    assert!(svc.broker().published().is_empty());
}

#[tokio::test]
async fn the_sweep_stores_generated_options_and_marks_the_briefing_ready() {
    let svc = service();
    let b = svc
        .store()
        .insert_briefing(ALICE, BriefingStatus::Processing, Some(task(1)));
    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Success,
        info: Some(json!({"options": [
            {"title": "A", "description": "a", "generator_type": "simple"},
            {"title": "B", "description": "b", "generator_type": "avatar"}
        ]})),
        ..TaskSnapshot::pending(task(1))
    });

    let report = svc.reconcile_sweep(100).await.unwrap();

    assert_eq!((report.checked, report.updated), (1, 1));
    assert_eq!(
        svc.store().briefing_row(b.id).unwrap().status,
        BriefingStatus::OptionsReady
    );
    let titles: Vec<String> = svc
        .store()
        .options_of(b.id)
        .into_iter()
        .map(|o| o.title)
        .collect();
    assert_eq!(titles, ["A", "B"]);
}

#[tokio::test]
async fn a_late_success_never_resurrects_a_cancelled_video() {
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.cancel_video(&caller(ALICE), v.id).await.unwrap();
    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Success,
        info: Some(json!({"video_id": v.id.get(), "status": "completed"})),
        ..TaskSnapshot::pending(task(1))
    });

    assert!(!svc.reconcile_task(&task(1)).await.unwrap());
    assert_eq!(
        svc.store().video_row(v.id).unwrap().status,
        VideoStatus::Cancelled
    );
}

#[tokio::test]
async fn a_failed_task_marks_its_video_failed_with_the_error() {
    let svc = service();
    let v = svc
        .store()
        .insert_video(ALICE, VideoStatus::Processing, Some(task(1)));
    svc.broker().set_state(TaskSnapshot {
        state: CeleryState::Failure,
        error: Some("WorkerLostError: Worker exited prematurely".into()),
        ..TaskSnapshot::pending(task(1))
    });

    assert!(svc.reconcile_task(&task(1)).await.unwrap());

    let row = svc.store().video_row(v.id).unwrap();
    assert_eq!(row.status, VideoStatus::Failed);
    assert_eq!(
        row.error_message.as_deref(),
        Some("WorkerLostError: Worker exited prematurely")
    );
}

#[tokio::test]
async fn reports_of_unknown_tasks_are_ignored() {
    let svc = service();
    assert!(!svc.reconcile_task(&task(42)).await.unwrap());
}
