//! The same application with RabbitMQ as the Celery broker (`CELERY_BROKER_URL`, the shared
//! broker at 127.0.0.1:5672 that scripts/ensure-rabbitmq.sh starts) and Redis as the result
//! backend, against real workers of both kinds: the generation flow, a running video cancelled
//! (its pool process killed, its partial files cleaned up), cancel-all over running and queued
//! jobs, and the automatic timeout.

use std::collections::BTreeSet;
use std::time::Duration;

use ensinalab_celery::testing::WorkerKind;
use reqwest::StatusCode;
use serde_json::Value;

use crate::contract;
use crate::support::{
    Backend, CeleryApp, DeathWatch, Durations, VIDEO_TIMES_OUT, Worker, option_of, redis_url,
    str_of, unique_queue,
};

/// The happy paths' DB: results only (no queue lives in Redis here).
const DB: u8 = 5;
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672//";

async fn worker(queue: &str, durations: Durations, kind: WorkerKind) -> Worker {
    Worker::start_kind(
        &redis_url(DB),
        queue,
        durations,
        &[("CELERY_BROKER_URL", AMQP)],
        kind,
    )
    .await
}

async fn app(queue: &str, extra: &[(&str, &str)]) -> CeleryApp {
    let env: Vec<(&str, &str)> = [("CELERY_BROKER_URL", AMQP)]
        .iter()
        .chain(extra)
        .copied()
        .collect();
    CeleryApp::spawn_with(Backend::Postgres, DB, queue, &env).await
}

async fn eventually(worker: &Worker, within: Duration, what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < within,
            "never: {what}; worker log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn flow_then_a_running_video_cancelled(kind: WorkerKind) {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 30.0,
        video_steps: 30,
    };
    let queue = unique_queue("amqp-flow");
    let worker = worker(&queue, durations, kind).await;
    let app = app(&queue, &[]).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Fotossíntese").await;
    assert_eq!(briefing["options"].as_array().map(Vec::len), Some(3));
    let video = app.select(&token, option_of(&briefing, "simple")).await;
    let (hash, task) = (str_of(&video, "video_id"), str_of(&video, "task_id"));
    let pid = app.running_pid(&token, task).await;
    app.wait_progressing(hash, &token).await;
    let partial = worker.partial_dir(task);
    eventually(&worker, Duration::from_secs(10), "partial output", || {
        partial.join("video.part").is_file()
    })
    .await;

    let watch = DeathWatch::start(pid, Duration::from_secs(10));
    let (status, body) = app.post(&format!("/videos/{hash}/cancel"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, contract::video_cancelled(hash, true, "killed"));
    assert!(watch.died_at().await.is_some(), "pool process {pid} alive");
    let (_, row) = app.get(&format!("/videos/{hash}/status"), &token).await;
    assert_eq!(row["status"], "cancelled", "{row}");
    // The cleanup task went through RabbitMQ once the revoke was delivered.
    eventually(
        &worker,
        Duration::from_secs(15),
        "partial directory deleted",
        || !partial.exists(),
    )
    .await;
    assert!(!worker.succeeded(task));
    app.cleanup().await;
}

#[tokio::test]
async fn on_rabbitmq_the_flow_runs_and_a_running_video_cancelled_is_killed_and_cleaned_up_on_a_claiming_worker()
 {
    flow_then_a_running_video_cancelled(WorkerKind::Claiming).await;
}

#[tokio::test]
async fn on_rabbitmq_the_flow_runs_and_a_running_video_cancelled_is_killed_and_cleaned_up_on_a_stock_worker()
 {
    flow_then_a_running_video_cancelled(WorkerKind::Stock).await;
}

async fn cancel_all_over_running_and_queued_jobs(kind: WorkerKind) {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 60.0,
        video_steps: 60,
    };
    let queue = unique_queue("amqp-cancel-all");
    let worker = worker(&queue, durations, kind).await;
    let app = app(&queue, &[]).await;
    let token = app.token(1);
    let ready = app.briefing_with_options(&token, "Cancelar tudo").await;
    let option = option_of(&ready, "simple");
    let mut pids = Vec::new();
    for _ in 0..2 {
        let video = app.select(&token, option).await;
        pids.push(app.running_pid(&token, str_of(&video, "task_id")).await);
    }
    let queued: Vec<Value> = vec![
        app.select(&token, option).await,
        app.select(&token, option).await,
        app.create_briefing(&token, "Outro briefing").await,
    ];
    let watches: Vec<_> = pids
        .iter()
        .map(|pid| DeathWatch::start(*pid, Duration::from_secs(10)))
        .collect();
    let (status, body) = app.post("/tasks/cancel-all", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cancelled"]["total"], 5, "{body}");
    let outcomes: BTreeSet<(String, String)> = body["revokes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                str_of(r, "task_id").to_owned(),
                str_of(r, "revoke").to_owned(),
            )
        })
        .collect();
    for job in &queued {
        let task = str_of(job, "task_id").to_owned();
        assert!(outcomes.contains(&(task, "claimed".into())), "{body}");
    }
    assert_eq!(
        outcomes.iter().filter(|(_, o)| o == "killed").count(),
        2,
        "{body}"
    );
    for watch in watches {
        assert!(
            watch.died_at().await.is_some(),
            "a pool process outlived cancel-all"
        );
    }
    // The queued messages reach the worker now that its slots are free, and are discarded.
    for job in &queued {
        let task = str_of(job, "task_id");
        eventually(
            &worker,
            Duration::from_secs(15),
            "queued task discarded",
            || worker.discarded(task),
        )
        .await;
        assert!(!worker.succeeded(task));
    }
    app.cleanup().await;
}

#[tokio::test]
async fn on_rabbitmq_cancel_all_kills_the_running_and_the_queued_never_run_on_a_claiming_worker() {
    cancel_all_over_running_and_queued_jobs(WorkerKind::Claiming).await;
}

#[tokio::test]
async fn on_rabbitmq_cancel_all_kills_the_running_and_the_queued_never_run_on_a_stock_worker() {
    cancel_all_over_running_and_queued_jobs(WorkerKind::Stock).await;
}

#[tokio::test]
async fn on_rabbitmq_a_video_past_its_time_is_cancelled_by_the_server_and_its_process_killed() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 60.0,
        video_steps: 60,
    };
    let queue = unique_queue("amqp-timeout");
    let _worker = worker(&queue, durations, WorkerKind::Stock).await;
    let app = app(&queue, &VIDEO_TIMES_OUT).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Longo demais").await;
    let video = app.select(&token, option_of(&briefing, "simple")).await;
    let (hash, task) = (str_of(&video, "video_id"), str_of(&video, "task_id"));
    let pid = app.running_pid(&token, task).await;
    let watch = DeathWatch::start(pid, Duration::from_secs(20));
    let row = app
        .wait_within(
            &format!("/videos/{hash}/status"),
            &token,
            Duration::from_secs(20),
            |v| v["status"] == "cancelled",
        )
        .await;
    assert_eq!(
        row["error_message"],
        "Cancelado automaticamente: tempo limite excedido"
    );
    assert!(watch.died_at().await.is_some(), "pool process {pid} alive");
    app.cleanup().await;
}
