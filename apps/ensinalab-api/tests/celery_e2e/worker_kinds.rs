//! A job cancelled while its task waits in the queue never runs, on either kind of worker a
//! fleet may hold: the reference worker, which takes the claim, and a stock one (the same tasks
//! without it), which knows only the revokes it heard and the messages left in the queue. Each
//! case runs once per kind: no worker at the cancel and one started afterwards; a cancel-all
//! behind 100,000 queued messages of other users with a worker started at once; and a worker
//! restarted between the cancel and the message's turn.

use std::time::{Duration, Instant};

use ensinalab_celery::testing::WorkerKind;
use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::{BriefingId, TaskId};
use ensinalab_ports::{TaskBroker as _, TaskKind, TaskRequest};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::redis_probe::delete_queue;
use crate::support::{
    Backend, CeleryApp, Durations, Published, Subscription, Worker, backend_states, option_of,
    redis_url, str_of, unique_queue,
};

const DB: u8 = 3;

const QUICK: Durations = Durations {
    options_secs: 0.3,
    video_secs: 1.0,
    video_steps: 2,
};

/// States that mean a task ran (or was about to) in a pool process.
const RAN: [&str; 3] = ["STARTED", "PROGRESS", "SUCCESS"];

async fn worker(queue: &str, kind: WorkerKind) -> Worker {
    Worker::start_kind(&redis_url(DB), queue, QUICK, &[], kind).await
}

/// `task` never ran: its backend value never went through a running state, and the worker
/// never received it (the removal pass took its message out) or, claiming, discarded it.
fn assert_never_ran(seen: &[Published], task: &str, worker: &Worker, kind: WorkerKind) {
    let states = backend_states(seen, task);
    assert!(
        states.iter().all(|s| !RAN.contains(&s.as_str())),
        "{task} ran: its backend value went through {states:?}"
    );
    let unrun = match kind {
        WorkerKind::Claiming => !worker.received(task) || worker.discarded(task),
        WorkerKind::Stock => !worker.received(task),
    };
    assert!(
        unrun && !worker.succeeded(task),
        "the worker took {task}; log:\n{}",
        worker.log_text()
    );
}

/// Waits until none of `tasks` is queued any more (the removal pass took them out).
async fn wait_taken_out(app: &CeleryApp, tasks: &[&str], within: Duration) {
    let started = Instant::now();
    loop {
        let queued = app.queued();
        if tasks.iter().all(|t| !queued.iter().any(|q| q == t)) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "still queued after {within:?}: {:?}",
            tasks
                .iter()
                .filter(|t| queued.iter().any(|q| q == *t))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the briefing `hash` to reach `options_ready` (its task ran to the end).
async fn wait_ready(app: &CeleryApp, token: &str, hash: &str) {
    app.wait_within(
        &format!("/briefings/{hash}"),
        token,
        Duration::from_secs(30),
        |b| b["status"] == "options_ready",
    )
    .await;
}

async fn cancel_briefing(app: &CeleryApp, token: &str, hash: &str) {
    let (status, body) = app
        .post(&format!("/briefings/{hash}/cancel-generation"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoke"], "claimed", "{body}");
}

async fn cancelled_while_no_worker_runs(kind: WorkerKind) {
    let queue = unique_queue("kinds-no-worker");
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let mut live = app.stream(&token, None).await.unwrap();
    let meta = Subscription::start("celery-task-meta-*");
    // No worker: both wait in the queue.
    let briefing = app.create_briefing(&token, "Sem worker").await;
    let (hash, task) = (
        str_of(&briefing, "briefing_id"),
        str_of(&briefing, "task_id"),
    );

    cancel_briefing(&app, &token, hash).await;
    // The removal pass takes the message out after the answer, and says so on the stream.
    let removed = tokio::time::timeout(
        Duration::from_secs(20),
        live.until(|d| d["change"] == "revoke" && d["revoke"] == "removed_from_queue"),
    )
    .await
    .expect("no removed_from_queue change within 20 s");
    assert_eq!(removed.data["resource_id"], hash);
    wait_taken_out(&app, &[task], Duration::from_secs(10)).await;

    // A worker started afterwards heard no revoke; a control job published after the cancel
    // runs to the end, and the cancelled one never reaches it.
    let late = worker(&queue, kind).await;
    let control = app.create_briefing(&token, "Controle").await;
    wait_ready(&app, &token, str_of(&control, "briefing_id")).await;
    assert_never_ran(&meta.stop(), task, &late, kind);
    delete_queue(DB, &queue);
    app.cleanup().await;
}

#[tokio::test]
async fn a_job_cancelled_while_no_worker_runs_never_runs_on_a_claiming_worker_started_afterwards() {
    cancelled_while_no_worker_runs(WorkerKind::Claiming).await;
}

#[tokio::test]
async fn a_job_cancelled_while_no_worker_runs_never_runs_on_a_stock_worker_started_afterwards() {
    cancelled_while_no_worker_runs(WorkerKind::Stock).await;
}

/// Other users' messages waiting in `queue`: `count` copies of one real message (published by
/// the adapter into a scratch queue), each with its own task id, pushed after everything the
/// test queued, so they sit nearer the head: a worker takes the test's jobs first.
async fn push_backlog(queue: &str, count: usize) {
    let client = redis::Client::open(redis_url(DB)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let scratch = unique_queue("kinds-template");
    let template_id = TaskId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    CeleryBroker::new(CeleryConfig::new(redis_url(DB)).with_queue(&scratch))
        .unwrap()
        .publish(&TaskRequest {
            id: template_id.clone(),
            kind: TaskKind::GenerateOptions {
                briefing_id: BriefingId(90_210),
                title: "Briefing de outro usuário".to_owned(),
                description: "Ciclo da água".to_owned(),
                duration_minutes: 10,
            },
        })
        .await
        .unwrap();
    let template: String = redis::cmd("LPOP")
        .arg(&scratch)
        .query_async(&mut conn)
        .await
        .unwrap();
    for batch in 0..count.div_ceil(1_000) {
        let n = 1_000.min(count - batch * 1_000);
        let messages: Vec<String> = (0..n)
            .map(|_| template.replace(template_id.as_str(), &uuid::Uuid::new_v4().to_string()))
            .collect();
        let _: () = redis::cmd("LPUSH")
            .arg(queue)
            .arg(messages)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

async fn cancel_all_under_a_backlog(kind: WorkerKind) {
    let queue = unique_queue("kinds-backlog");
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let (alice, bob) = (app.token(1), app.token(2));
    let meta = Subscription::start("celery-task-meta-*");
    let mut cancelled = Vec::new();
    for n in 0..5 {
        let b = app.create_briefing(&alice, &format!("Cancelada {n}")).await;
        cancelled.push(str_of(&b, "task_id").to_owned());
    }
    let control = app.create_briefing(&bob, "Controle de outro usuário").await;
    push_backlog(&queue, 100_000).await;

    let sent = Instant::now();
    let (status, body) = app.post("/tasks/cancel-all", &alice).await;
    let answered = sent.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");
    let revokes: Vec<&Value> = body["revokes"].as_array().unwrap().iter().collect();
    assert_eq!(revokes.len(), 5, "{body}");
    assert!(revokes.iter().all(|r| r["revoke"] == "claimed"), "{body}");
    println!("cancel-all of 5 behind 100,000 queued messages answered in {answered:?}");

    // The worker starts at once; it takes the oldest messages first: the cancelled ones, then
    // the control.
    let late = worker(&queue, kind).await;
    wait_ready(&app, &bob, str_of(&control, "briefing_id")).await;
    let seen = meta.stop();
    for task in &cancelled {
        assert_never_ran(&seen, task, &late, kind);
    }
    drop(late);
    delete_queue(DB, &queue);
    app.cleanup().await;
}

#[tokio::test]
async fn cancel_all_behind_a_backlog_of_100_000_runs_nothing_cancelled_on_a_claiming_worker_started_at_once()
 {
    cancel_all_under_a_backlog(WorkerKind::Claiming).await;
}

#[tokio::test]
async fn cancel_all_behind_a_backlog_of_100_000_runs_nothing_cancelled_on_a_stock_worker_started_at_once()
 {
    cancel_all_under_a_backlog(WorkerKind::Stock).await;
}

async fn restarted_between_the_cancel_and_the_delivery(kind: WorkerKind) {
    let queue = unique_queue("kinds-restart");
    let busy = Durations {
        video_secs: 30.0,
        video_steps: 30,
        ..QUICK
    };
    let first = Worker::start_kind(&redis_url(DB), &queue, busy, &[], kind).await;
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let ready = app.briefing_with_options(&token, "Reinício").await;
    let option = option_of(&ready, "simple");
    // Both pool processes busy with long videos: the briefing waits in the queue behind them.
    let _a = app.select(&token, option).await;
    let _b = app.select(&token, option).await;
    let waiting = app.create_briefing(&token, "Na fila").await;
    let (hash, task) = (str_of(&waiting, "briefing_id"), str_of(&waiting, "task_id"));
    let meta = Subscription::start("celery-task-meta-*");

    cancel_briefing(&app, &token, hash).await;
    // The worker goes away and another takes its place: whatever the first one heard is gone.
    drop(first);
    let second = worker(&queue, kind).await;
    let control = app.create_briefing(&token, "Controle").await;
    wait_ready(&app, &token, str_of(&control, "briefing_id")).await;
    assert_never_ran(&meta.stop(), task, &second, kind);
    delete_queue(DB, &queue);
    app.cleanup().await;
}

#[tokio::test]
async fn a_claiming_worker_restarted_between_a_cancel_and_the_messages_turn_never_runs_it() {
    restarted_between_the_cancel_and_the_delivery(WorkerKind::Claiming).await;
}

#[tokio::test]
async fn a_stock_worker_restarted_between_a_cancel_and_the_messages_turn_never_runs_it() {
    restarted_between_the_cancel_and_the_delivery(WorkerKind::Stock).await;
}
