//! Cancelling one video or briefing over HTTP, wherever its task is: running in a pool process,
//! waiting behind busy slots, or waiting with no worker at all.

use std::time::{Duration, Instant};

use ensinalab_domain::CANCELLED_BY_USER;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    Backend, CeleryApp, DeathWatch, Durations, Subscription, Worker, backend_states, option_of,
    parent_of, process_is_dead, redis_url, str_of, unique_queue,
};

use crate::contract;

const DB: u8 = 6;

/// States that mean a task ran (or was about to) in a pool process.
const RAN: [&str; 3] = ["STARTED", "PROGRESS", "SUCCESS"];

/// `POST /videos/{hash}/cancel`: 200 with the seed's body plus the revoke outcome.
async fn cancel_video(app: &CeleryApp, token: &str, hash: &str, revoke: &str) {
    let (status, body) = app.post(&format!("/videos/{hash}/cancel"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, contract::video_cancelled(hash, true, revoke));
}

/// What `GET /tasks/{id}/status` says of a revoked task.
async fn assert_revoked(app: &CeleryApp, token: &str, task: &str) {
    let (status, body) = app.get(&format!("/tasks/{task}/status"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "REVOKED", "{body}");
    assert_eq!(body["info"], "Task foi cancelada");
}

async fn assert_video_cancelled(app: &CeleryApp, token: &str, hash: &str) {
    let (status, body) = app.get(&format!("/videos/{hash}/status"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(body["error_message"], CANCELLED_BY_USER);
}

/// The worker never ran `task`: the removal pass took its message out of the queue, or the
/// worker took it and discarded it as revoked (the cancel had claimed it); and its backend
/// value never went through a running state.
fn assert_never_ran(seen: &[crate::support::Published], task: &str, worker: &Worker) {
    let states = backend_states(seen, task);
    assert!(
        states.iter().all(|s| !RAN.contains(&s.as_str())),
        "{task} ran: its backend value went through {states:?}"
    );
    assert!(
        (!worker.received(task) || worker.discarded(task)) && !worker.succeeded(task),
        "the worker did not discard {task} unrun; log:\n{}",
        worker.log_text()
    );
}

#[tokio::test]
async fn cancelling_a_running_video_kills_its_pool_process_and_it_never_completes() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 4.0,
        video_steps: 8,
    };
    let queue = unique_queue("cancel-running");
    let worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Cancelamento").await;
    let video = app.select(&token, option_of(&briefing, "simple")).await;
    let hash = str_of(&video, "video_id");
    let task = str_of(&video, "task_id");
    let meta = Subscription::start(&format!("celery-task-meta-{task}"));

    let pid = app.running_pid(&token, task).await;
    let running_since = Instant::now();
    // Mid-way, as the user sees it: progress reported and reconciled into the row.
    app.wait_progressing(hash, &token).await;
    assert_eq!(
        parent_of(pid),
        Some(worker.pid()),
        "pid {pid} is not a pool process of this test's worker"
    );
    let watch = DeathWatch::start(pid, Duration::from_secs(10));
    let sent = Instant::now();
    cancel_video(&app, &token, hash, "killed").await;
    let answered = sent.elapsed();
    let died = watch
        .died_at()
        .await
        .unwrap_or_else(|| panic!("pool process {pid} alive 10 s after the cancel"));
    println!(
        "cancel request -> pool process {pid} killed: {:?} (HTTP response after {answered:?})",
        died.saturating_duration_since(sent)
    );

    // Past the moment it would have finished, it still has not.
    let would_have_finished = running_since + Duration::from_secs_f64(durations.video_secs);
    tokio::time::sleep_until((would_have_finished + Duration::from_secs(1)).into()).await;
    let states = backend_states(&meta.stop(), task);
    assert!(!states.iter().any(|s| s == "SUCCESS"), "{states:?}");
    assert_eq!(
        states.last().map(String::as_str),
        Some("REVOKED"),
        "{states:?}"
    );
    assert!(!worker.succeeded(task), "{}", worker.log_text());
    assert!(process_is_dead(pid));
    assert_revoked(&app, &token, task).await;
    assert_video_cancelled(&app, &token, hash).await;

    app.cleanup().await;
}

#[tokio::test]
async fn with_every_slot_busy_cancelling_a_queued_video_claims_it_and_it_never_runs() {
    // Videos that outlast the test: the two pool processes stay busy until cancelled.
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 60.0,
        video_steps: 60,
    };
    let queue = unique_queue("cancel-queued");
    let worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Fila cheia").await;
    let option = option_of(&briefing, "simple");

    let mut busy = Vec::new();
    for _ in 0..2 {
        let video = app.select(&token, option).await;
        let pid = app.running_pid(&token, str_of(&video, "task_id")).await;
        busy.push((video, pid));
    }
    assert_ne!(busy[0].1, busy[1].1, "two videos, two pool processes");

    let queued = app.select(&token, option).await;
    let hash = str_of(&queued, "video_id");
    let task = str_of(&queued, "task_id");
    let meta = Subscription::start(&format!("celery-task-meta-{task}"));
    // Still in the Redis list a while later: no free slot, and the worker does not prefetch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.queued(), [task]);
    let (_, pending) = app.get(&format!("/tasks/{task}/status"), &token).await;
    assert_eq!(pending["state"], "PENDING", "{pending}");

    cancel_video(&app, &token, hash, "claimed").await;
    // The cancel claimed the task; the removal pass then takes its message out of the queue.
    assert_revoked(&app, &token, task).await;
    let started = Instant::now();
    while !app.queued().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still queued: {:?}",
            app.queued()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Free both slots, then run a control video: the worker takes messages in order, so it
    // reaches the cancelled one before the control.
    for (video, pid) in &busy {
        cancel_video(&app, &token, str_of(video, "video_id"), "killed").await;
        let died = DeathWatch::start(*pid, Duration::from_secs(10))
            .died_at()
            .await;
        assert!(died.is_some(), "pool process {pid} survived its cancel");
    }
    let control = app.select(&token, option).await;
    app.running_pid(&token, str_of(&control, "task_id")).await;

    assert_never_ran(&meta.stop(), task, &worker);
    assert_revoked(&app, &token, task).await;
    assert_video_cancelled(&app, &token, hash).await;

    app.cleanup().await;
}

#[tokio::test]
async fn a_cancel_of_a_task_whose_result_already_says_it_finished_is_refused_and_the_job_takes_it()
{
    let queue = unique_queue("cancel-finished");
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    // No worker: the task waits. Then a worker's SUCCESS lands in the backend without the
    // service hearing it (its PUBLISH missed, as across a reconnect): the row lags.
    let briefing = app.create_briefing(&token, "Já terminou").await;
    let (hash, task) = (
        str_of(&briefing, "briefing_id"),
        str_of(&briefing, "task_id"),
    );
    let success = json!({
        "status": "SUCCESS",
        "result": {"options": [
            {"title": "Já terminou: aula", "description": "d", "generator_type": "simple"}
        ]},
        "traceback": null, "children": [], "date_done": "2026-12-07T10:00:00.000000+00:00",
        "task_id": task,
    });
    let mut conn = redis::Client::open(redis_url(DB))
        .and_then(|c| c.get_connection())
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("celery-task-meta-{task}"))
        .arg(success.to_string())
        .arg("EX")
        .arg(600)
        .query(&mut conn)
        .unwrap();
    let (_, before) = app.get(&format!("/briefings/{hash}"), &token).await;
    assert_eq!(before["status"], "processing", "{before}");

    let (status, body) = app
        .post(&format!("/briefings/{hash}/cancel-generation"), &token)
        .await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["detail"],
        "Briefing não está sendo processado. Status atual: options_ready"
    );
    let (_, after) = app.get(&format!("/briefings/{hash}"), &token).await;
    assert_eq!(after["status"], "options_ready", "{after}");
    assert_eq!(after["options"][0]["title"], "Já terminou: aula");
    app.cleanup().await;
}
