//! Redis down: a cancel still answers (cancelled, revoke pending, owed in the database), the
//! list answers with Celery states unknown, /readyz names the broker; when Redis returns the
//! dispatcher delivers the revoke by itself and the task never runs.

use std::time::Duration;

use ensinalab_app::new_task_id;
use ensinalab_celery::testing::{Durations, Worker};
use ensinalab_domain::{BriefingDraft, CeleryState, TaskId, UserId};
use ensinalab_ports::{Briefings, RevokeOutbox, TaskBroker};
use ensinalab_store::testing::sqlite_memory;
use reqwest::StatusCode;
use serde_json::json;
use time::OffsetDateTime;

use crate::contract;
use crate::support::*;

const DURATIONS: Durations = Durations {
    options_secs: 0.5,
    video_secs: 20.0,
    video_steps: 10,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_redis_is_down_is_pending_then_delivered_and_the_task_never_runs() {
    let mut redis = RedisServer::start();
    let queue = unique_queue();
    let broker = celery(&redis.url(), &queue);
    let store = sqlite_memory().await.unwrap();
    let app = over_celery(store.clone(), &broker, &[]);
    let token = app.token(1);

    // No worker yet: the options task waits in the queue.
    let briefing = app.create_briefing(&token, "Gestão de Sala de Aula").await;
    let hash = briefing["briefing_id"].as_str().unwrap().to_owned();
    let task = TaskId::parse(briefing["task_id"].as_str().unwrap()).unwrap();
    // Another running briefing, for the list.
    let draft = BriefingDraft::new("Outro", "...", 10).unwrap();
    store
        .create_briefing(UserId(1), &draft, &new_task_id(), u32::MAX)
        .await
        .unwrap()
        .expect("a free job slot");

    redis.stop();

    let (status, body) = app
        .post(&format!("/briefings/{hash}/cancel-generation"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, contract::briefing_cancelled(&hash, false, "pending"));
    let (status, body) = app.get(&format!("/briefings/{hash}"), &token).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("cancelled"))
    );

    let (status, list) = app.get("/tasks/active", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["celery_unavailable"], true, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["tasks"][0]["celery_status"]["state"], "UNKNOWN");

    let (status, body) = app.readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        (&body["database"], &body["broker"]),
        (&json!("ok"), &json!("unavailable"))
    );

    // The dispatcher tries while Redis is down and backs off.
    let far = || OffsetDateTime::now_utc() + time::Duration::hours(1);
    eventually(
        Duration::from_secs(20),
        "a failed delivery attempt",
        || async {
            let due = store.due_revokes(far(), 10).await.unwrap();
            due.iter()
                .any(|o| o.task_id == task && o.attempts >= 1)
                .then_some(())
        },
    )
    .await;

    redis.restart();

    // Delivered by the server itself, without any request.
    eventually(
        Duration::from_secs(40),
        "the pending revoke delivered",
        || async {
            store
                .due_revokes(far(), 10)
                .await
                .unwrap()
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let state = broker.states(std::slice::from_ref(&task)).await.unwrap();
    assert_eq!(
        state[0].state,
        CeleryState::Revoked,
        "claimed by the cancel"
    );

    // The removal pass takes its message out of the queue; a worker that comes then never
    // sees it (and would discard it, claimed, if it did). The pass runs at the job's next idle
    // check after the delivery; the bound is as generous as the delivery's, for a loaded machine.
    let client = redis::Client::open(redis.url()).unwrap();
    eventually(Duration::from_secs(40), "the message taken out", || async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let queued: Vec<String> = redis::cmd("LRANGE")
            .arg(&queue)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .ok()?;
        (!queued.iter().any(|m| m.contains(task.as_str()))).then_some(())
    })
    .await;
    let worker = Worker::start(&redis.url(), &queue, DURATIONS, &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !worker.succeeded(task.as_str())
            && (!worker.received(task.as_str()) || worker.discarded(task.as_str())),
        "{}",
        worker.log_text()
    );
    let (_, body) = app.get(&format!("/briefings/{hash}"), &token).await;
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["options"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_video_cancelled_while_redis_is_down_is_killed_once_redis_returns() {
    let mut redis = RedisServer::start();
    let queue = unique_queue();
    let broker = celery(&redis.url(), &queue);
    // One PROGRESS (with the pool child's pid) at the start, then a minute of work.
    let long = Durations {
        options_secs: 0.3,
        video_secs: 60.0,
        video_steps: 1,
    };
    let worker = Worker::start(&redis.url(), &queue, long, &[]).await;
    let app = over_celery(sqlite_memory().await.unwrap(), &broker, &[]);
    let token = app.token(1);
    let (video, task) = crate::worker_killed::running_video(&app, &token).await;
    let task = TaskId::parse(&task).unwrap();
    let pid = pool_child_of(&broker, &task).await;

    redis.stop();
    let (status, body) = app.post(&format!("/videos/{video}/cancel"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["revoke"], &body["task_revoked"]),
        (&json!("pending"), &json!(false))
    );
    redis.restart();

    // Delivered (and said again until a worker hears it): the child is killed, the task never
    // completes, the row stays cancelled.
    the_owed_kill_lands(&app, &broker, &worker, &task, pid, &video, &token).await;
}
