//! A worker killed with `kill -9` in the middle of a video. A killed pool child: Celery reports
//! FAILURE WorkerLostError and the reconciler marks the video failed. A whole worker killed: its
//! running tasks stay PROGRESS in Celery forever, so the videos are flagged `is_stuck` after the
//! time limit and stay cancellable, until the lost-worker rule (no live worker runs them for the
//! whole time limit) marks them failed; a cancel of one owes a revoke nobody hears, and the
//! dispatcher says it again as soon as a new worker comes online. The partial files the killed
//! worker left are deleted by the new one: each job's cleanup waits in the queue for it.

use std::time::Duration;

use base64::Engine as _;
use ensinalab_celery::CeleryBroker;
use ensinalab_celery::testing::{Durations, Worker};
use ensinalab_store::testing::sqlite_memory;
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const DURATIONS: Durations = Durations {
    options_secs: 0.3,
    video_secs: 60.0,
    video_steps: 60,
};

/// Creates a briefing, waits for its options, selects the first; returns the video's hash
/// and task id once the video is processing.
pub(crate) async fn running_video(app: &TestApp, token: &str) -> (String, String) {
    let briefing = app
        .briefing_with_options(token, "Gestão de Sala de Aula")
        .await;
    let option = briefing["options"][0]["option_id"].as_str().unwrap();
    let body = app.select(token, option).await;
    let video = body["video_id"].as_str().unwrap().to_owned();
    let task = eventually(Duration::from_secs(20), "video processing", || async {
        let (_, v) = app.get(&format!("/videos/{video}/status"), token).await;
        (v["status"] == "processing").then(|| v["task_id"].as_str().unwrap().to_owned())
    })
    .await;
    (video, task)
}

async fn active_row(app: &TestApp, token: &str, video: &str) -> Option<Value> {
    let (_, list) = app.get("/tasks/active", token).await;
    list["tasks"]
        .as_array()?
        .iter()
        .find(|t| t["resource_id"] == video)
        .cloned()
}

async fn spawn_app(broker: &CeleryBroker) -> TestApp {
    let store = sqlite_memory().await.unwrap();
    // Stuck after 2 s; the automatic timeout keeps its default limits, which the time limit
    // would otherwise shorten with it.
    let env = [
        ("TASK_TIME_LIMIT_SECS", "2"),
        ("EXPECTED_OPTIONS_SECS", "300"),
        ("EXPECTED_VIDEO_SECS", "300"),
    ];
    over_celery(store, broker, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_child_killed_mid_video_is_flagged_stuck_then_failed_as_worker_lost() {
    let redis = RedisServer::start();
    let queue = unique_queue();
    let broker = celery(&redis.url(), &queue);
    let _worker = Worker::start(&redis.url(), &queue, DURATIONS, &[]).await;
    let app = spawn_app(&broker).await;
    let token = app.token(1);
    let (video, task) = running_video(&app, &token).await;

    let row = eventually(
        Duration::from_secs(10),
        "is_stuck after the limit",
        || async {
            active_row(&app, &token, &video)
                .await
                .filter(|r| r["elapsed_time"]["is_stuck"] == true)
        },
    )
    .await;
    assert_eq!(row["can_cancel"], true, "{row}");

    let pid = eventually(
        Duration::from_secs(10),
        "the pool child of the task",
        || async {
            let replies = broker.inspect_active(Duration::from_secs(1)).await.ok()?;
            replies
                .iter()
                .flat_map(|w| &w.active)
                .find(|t| t.task_id.as_str() == task)
                .and_then(|t| t.worker_pid)
        },
    )
    .await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let v = eventually(Duration::from_secs(20), "failed as worker lost", || async {
        let (_, v) = app.get(&format!("/videos/{video}/status"), &token).await;
        (v["status"] == "failed").then_some(v)
    })
    .await;
    let error = v["error_message"].as_str().unwrap_or_default();
    assert!(error.contains("WorkerLostError"), "{v}");
    assert!(active_row(&app, &token, &video).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_worker_killed_leaves_stuck_videos_failed_by_the_lost_worker_rule_and_a_cancelled_ones_revoke_said_again()
 {
    let redis = RedisServer::start();
    let queue = unique_queue();
    let broker = celery(&redis.url(), &queue);
    // One disk for the killed worker and its successor.
    let work = std::env::temp_dir().join(format!("ensinalab-work-{}", uuid::Uuid::new_v4()));
    let work_dir = work.to_str().unwrap();
    let env = [("ENSINALAB_WORK_DIR", work_dir)];
    let worker = Worker::start(&redis.url(), &queue, DURATIONS, &env).await;
    let app = spawn_app(&broker).await;
    let token = app.token(1);
    let (cancelled, cancelled_task) = running_video(&app, &token).await;
    let (lost, lost_task) = running_video(&app, &token).await;
    let left = [work.join(&cancelled_task), work.join(&lost_task)];
    eventually(
        Duration::from_secs(10),
        "partial output written",
        || async {
            left.iter()
                .all(|dir| dir.join("video.part").is_file())
                .then_some(())
        },
    )
    .await;

    let group = format!("-{}", worker.pid());
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &group])
        .status()
        .unwrap();
    assert!(killed.success());
    drop(worker);

    // Cancelled at once: nobody hears the kill; the revoke stays open.
    let (status, body) = app
        .post(&format!("/videos/{cancelled}/cancel"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoke"], "no_worker_listening", "{body}");
    assert_eq!(body["task_revoked"], false);

    // Left alone: flagged stuck and still cancellable after the limit...
    let row = eventually(
        Duration::from_secs(10),
        "is_stuck after the limit",
        || async {
            let Some(row) = active_row(&app, &token, &lost).await else {
                let (_, v) = app.get(&format!("/videos/{lost}/status"), &token).await;
                panic!("left the active list before it was flagged stuck: {v}");
            };
            (row["elapsed_time"]["is_stuck"] == true).then_some(row)
        },
    )
    .await;
    assert_eq!(
        (&row["status"], &row["can_cancel"]),
        (&Value::from("processing"), &Value::from(true))
    );
    // ... then failed by the lost-worker rule: it does not stay processing forever.
    let v = eventually(Duration::from_secs(20), "failed as worker lost", || async {
        let (_, v) = app.get(&format!("/videos/{lost}/status"), &token).await;
        (v["status"] == "failed").then_some(v)
    })
    .await;
    assert_eq!(v["error_message"], ensinalab_app::WORKER_LOST, "{v}");

    // Watch the pidbox channel, then bring a new worker: the open revoke is said to it.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(broker.pidbox_channel()).await.unwrap();
    let mut messages = pubsub.into_on_message();
    let _new = Worker::start(&redis.url(), &queue, DURATIONS, &env).await;
    let heard = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(msg) = messages.next().await {
            let payload: String = msg.get_payload().unwrap_or_default();
            let Ok(envelope) = serde_json::from_str::<Value>(&payload) else {
                continue;
            };
            let body = envelope["body"].as_str().unwrap_or_default();
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(body) else {
                continue;
            };
            let text = String::from_utf8_lossy(&decoded);
            if text.contains("\"revoke\"") && text.contains(&cancelled_task) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(heard, Ok(true), "the revoke was not broadcast again");
    let (_, v) = app
        .get(&format!("/videos/{cancelled}/status"), &token)
        .await;
    assert_eq!(v["status"], "cancelled");

    // The new worker took the cleanups the cancel and the failure owed.
    eventually(Duration::from_secs(20), "partial files deleted", || async {
        left.iter().all(|dir| !dir.exists()).then_some(())
    })
    .await;
    std::fs::remove_dir_all(&work).unwrap();
}
