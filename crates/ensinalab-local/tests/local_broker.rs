//! The in-process broker against the task contract, on tokio's paused clock (no real waiting).

use std::time::Duration;

use ensinalab_domain::{BriefingId, CeleryState, OptionId, TaskId, VideoId};
use ensinalab_local::{LocalBroker, LocalConfig};
use ensinalab_ports::{RevokeOutcome, TaskBroker, TaskKind, TaskRequest};

fn broker() -> LocalBroker {
    LocalBroker::new(LocalConfig {
        options_duration: Duration::from_secs(3),
        video_duration: Duration::from_secs(30),
    })
}

fn options_task(title: &str) -> TaskRequest {
    TaskRequest {
        id: new_task_id(),
        kind: TaskKind::GenerateOptions {
            briefing_id: BriefingId(1),
            title: title.into(),
            description: String::new(),
            duration_minutes: 10,
        },
    }
}

fn video_task(title: &str) -> TaskRequest {
    TaskRequest {
        id: new_task_id(),
        kind: TaskKind::GenerateVideo {
            video_id: VideoId(5),
            briefing_id: BriefingId(1),
            option_id: OptionId(2),
            title: title.into(),
            generator_type: "simple".into(),
            duration_minutes: 10,
        },
    }
}

async fn state(b: &LocalBroker, id: &TaskId) -> ensinalab_ports::TaskSnapshot {
    b.states(std::slice::from_ref(id))
        .await
        .expect("local states never fail")
        .remove(0)
}

#[tokio::test(start_paused = true)]
async fn option_generation_succeeds_with_options_in_the_contracts_shape() {
    let b = broker();
    let mut changes = b.watch();
    let task = options_task("Gestão de Sala de Aula");
    b.publish(&task).await.unwrap();

    tokio::time::sleep(Duration::from_secs(4)).await;

    let s = state(&b, &task.id).await;
    assert_eq!(s.state, CeleryState::Success);
    let options = s.info.unwrap()["options"].as_array().unwrap().clone();
    assert_eq!(options.len(), 3);
    for o in options {
        assert!(o["title"].is_string() && o["description"].is_string());
        assert!(o["generator_type"].is_string());
    }
    assert_eq!(changes.recv().await, Some(task.id.clone()), "started");
    assert_eq!(changes.recv().await, Some(task.id), "succeeded");
}

#[tokio::test(start_paused = true)]
async fn video_generation_reports_progress_then_completes() {
    let b = broker();
    let task = video_task("Como usar Google Classroom");
    b.publish(&task).await.unwrap();

    tokio::time::sleep(Duration::from_millis(15_500)).await;
    let s = state(&b, &task.id).await;
    assert_eq!(s.state.as_str(), "PROGRESS");
    assert_eq!(s.progress, Some(0.5));

    tokio::time::sleep(Duration::from_secs(15)).await;
    let s = state(&b, &task.id).await;
    assert_eq!(s.state, CeleryState::Success);
    let result = s.info.unwrap();
    assert_eq!(result["video_id"], 5);
    assert_eq!(result["status"], "completed");
}

#[tokio::test(start_paused = true)]
async fn revoking_a_running_video_stops_it_for_good() {
    let b = broker();
    let task = video_task("v");
    b.publish(&task).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(b.running(), 1);

    let reports = b.revoke(std::slice::from_ref(&task.id)).await.unwrap();

    assert_eq!(reports[0].outcome, RevokeOutcome::Killed);
    tokio::task::yield_now().await;
    assert_eq!(b.running(), 0, "the job was aborted, not left running");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let s = state(&b, &task.id).await;
    assert_eq!(s.state, CeleryState::Revoked);
    assert_eq!(s.error.as_deref(), Some("terminated"));
}

#[tokio::test(start_paused = true)]
async fn revoking_a_task_that_has_not_started_removes_it() {
    let b = broker();
    let task = options_task("o");
    b.publish(&task).await.unwrap();

    let reports = b.revoke(std::slice::from_ref(&task.id)).await.unwrap();

    assert_eq!(reports[0].outcome, RevokeOutcome::RemovedFromQueue);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s = state(&b, &task.id).await;
    assert_eq!(s.state, CeleryState::Revoked);
    assert_eq!(s.error.as_deref(), Some("revoked"));
}

#[tokio::test(start_paused = true)]
async fn revoke_reports_finished_revoked_and_unknown_tasks_honestly_in_one_call() {
    let b = broker();
    let done = options_task("o");
    b.publish(&done).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let unknown = new_task_id();

    let revoked = options_task("r");
    b.publish(&revoked).await.unwrap();
    b.revoke(std::slice::from_ref(&revoked.id)).await.unwrap();

    let reports = b
        .revoke(&[done.id.clone(), unknown.clone(), revoked.id.clone()])
        .await
        .unwrap();

    assert_eq!(reports[0].task_id, done.id);
    assert_eq!(reports[0].outcome, RevokeOutcome::FinishedFirst);
    assert_eq!(reports[1].task_id, unknown);
    assert_eq!(reports[1].outcome, RevokeOutcome::NoWorkerListening);
    assert_eq!(reports[2].outcome, RevokeOutcome::AlreadyFinished);
    assert_eq!(state(&b, &done.id).await.state, CeleryState::Success);
}

#[tokio::test(start_paused = true)]
async fn a_title_starting_with_fail_fails_like_the_reference_worker() {
    let b = broker();
    let task = options_task("[fail] briefing");
    b.publish(&task).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let s = state(&b, &task.id).await;
    assert_eq!(s.state, CeleryState::Failure);
    assert_eq!(
        s.error.as_deref(),
        Some("ConnectionError: Failed to connect to OpenAI API")
    );
}

#[tokio::test(start_paused = true)]
async fn states_come_back_in_the_order_asked_and_unknown_ids_are_pending() {
    let b = broker();
    let task = options_task("o");
    b.publish(&task).await.unwrap();
    let unknown = new_task_id();

    let states = b.states(&[unknown.clone(), task.id.clone()]).await.unwrap();

    assert_eq!(states[0].task_id, unknown);
    assert_eq!(states[0].state, CeleryState::Pending);
    assert_eq!(states[1].task_id, task.id);
}

#[tokio::test(start_paused = true)]
async fn publishing_the_same_task_id_twice_is_refused() {
    let b = broker();
    let task = options_task("o");
    b.publish(&task).await.unwrap();
    assert!(b.publish(&task).await.is_err());
}

/// A distinct, well-formed task id per call.
fn new_task_id() -> TaskId {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    TaskId::parse(&format!("00000000-0000-4000-8000-{n:012}")).expect("a valid task id")
}
