//! RabbitMQ down under the real application (a private rabbitmq-server; Redis, the result
//! backend, stays up): a cancel still answers (cancelled, revoke pending, owed in the
//! database), a creation fails the job with a 503 as a Redis outage does; when RabbitMQ is
//! back, the server reconnects by itself and the dispatcher delivers the owed revoke, which
//! kills the task a stock worker kept running.

use std::time::Duration;

use ensinalab_celery::testing::{Durations, Rabbit, Worker, WorkerKind};
use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::TaskId;
use ensinalab_store::testing::sqlite_memory;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

const RESULTS: &str = "redis://127.0.0.1:6379/2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_video_cancelled_while_rabbitmq_is_down_is_killed_once_it_returns() {
    let mut rabbit = Rabbit::start();
    let queue = unique_queue();
    let mut config = CeleryConfig::new(RESULTS)
        .with_queue(&queue)
        .with_broker(rabbit.url());
    config.command_timeout = Duration::from_secs(1);
    let broker = CeleryBroker::new(config).expect("celery config");
    let long = Durations {
        options_secs: 0.3,
        video_secs: 120.0,
        video_steps: 1,
    };
    let worker = Worker::start_kind(
        RESULTS,
        &queue,
        long,
        &[("CELERY_BROKER_URL", rabbit.url().as_str())],
        WorkerKind::Stock,
    )
    .await;
    let app = over_celery(sqlite_memory().await.unwrap(), &broker, &[]);
    let token = app.token(1);
    let (video, task) = crate::worker_killed::running_video(&app, &token).await;
    let task = TaskId::parse(&task).unwrap();
    let pid = pool_child_of(&broker, &task).await;
    // The worker's ack of the message, before the broker goes (a message whose ack RabbitMQ
    // never got is delivered again, docs/celery-contract.md).
    tokio::time::sleep(Duration::from_secs(1)).await;

    rabbit.stop();
    let (status, body) = app.post(&format!("/videos/{video}/cancel"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["revoke"], &body["task_revoked"]),
        (&json!("pending"), &json!(false))
    );
    let (status, body) = app.try_create_briefing(&token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = app.readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["broker"], "unavailable");

    rabbit.restart();
    // Delivered (and said again until a worker hears it) without a restart of the server.
    the_owed_kill_lands(&app, &broker, &worker, &task, pid, &video, &token).await;
    // And new work is dispatched again through the same server.
    let (status, _) = app.readyz().await;
    assert_eq!(status, StatusCode::OK);
    app.create_briefing(&token, "Depois").await;
}
