//! The generation flow end to end: options from the worker, a video's progress, its completion.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    Backend, CeleryApp, Durations, Worker, option_of, redis_url, str_of, unique_queue,
};

const DB: u8 = 5;

/// Options in a blink; a video long enough for several PROGRESS reports to be seen.
const DURATIONS: Durations = Durations {
    options_secs: 0.3,
    video_secs: 4.0,
    video_steps: 8,
};

async fn options_then_progress_then_completion(backend: Backend) {
    let queue = unique_queue("flow");
    let worker = Worker::start(&redis_url(DB), &queue, DURATIONS, &[]).await;
    let app = CeleryApp::spawn(backend, DB, &queue).await;
    let token = app.token(1);

    let created = app.create_briefing(&token, "Fotossíntese").await;
    assert_eq!(created["options"], json!([]));
    let briefing_task = str_of(&created, "task_id").to_owned();
    let hash = str_of(&created, "briefing_id");
    let ready = app
        .wait_within(
            &format!("/briefings/{hash}"),
            &token,
            Duration::from_secs(20),
            |b| b["status"] == "options_ready",
        )
        .await;
    assert_eq!(ready["task_id"], briefing_task.as_str());
    assert_eq!(ready["error_message"], json!(null));
    let options = ready["options"].as_array().expect("options");
    let mut kinds: Vec<&str> = options
        .iter()
        .map(|o| o["generator_type"].as_str().expect("generator_type"))
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["animation", "avatar", "simple"], "{ready}");
    for option in options {
        assert!(
            str_of(option, "title").starts_with("Fotossíntese: "),
            "{option}"
        );
    }
    let (status, task) = app
        .get(&format!("/tasks/{briefing_task}/status"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(task["successful"], true);
    assert_eq!(task["result"]["options"].as_array().map(Vec::len), Some(3));

    // A "simple" video ends `completed` (an "avatar" one would wait for approval).
    let video = app.select(&token, option_of(&ready, "simple")).await;
    let video_hash = str_of(&video, "video_id").to_owned();
    let video_task = str_of(&video, "task_id").to_owned();
    assert_eq!(video["briefing_id"], hash);

    let active = app
        .wait_within("/tasks/active", &token, Duration::from_secs(20), |list| {
            list["tasks"].as_array().is_some_and(|tasks| {
                tasks.iter().any(|t| {
                    t["task_id"] == video_task.as_str()
                        && t["celery_status"]["state"] == "PROGRESS"
                        && t["progress"].as_f64().is_some_and(|p| p > 0.0 && p < 1.0)
                })
            })
        })
        .await;
    let item = active["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["task_id"] == video_task.as_str()))
        .expect("the video is listed");
    assert_eq!(item["type"], "video", "{item}");
    assert_eq!(item["resource_id"], video_hash.as_str());
    assert_eq!(item["status"], "processing");
    assert_eq!(item["generator_type"], "simple");
    assert_eq!(item["can_cancel"], true);
    assert_eq!(
        item["celery_status"],
        json!({"state": "PROGRESS", "ready": false, "successful": null, "failed": null})
    );
    assert_eq!(active["celery_unavailable"], false);
    let (status, running) = app
        .get(&format!("/tasks/{video_task}/status"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{running}");
    assert_eq!(running["info"]["total"], DURATIONS.video_steps);

    let done = app
        .wait_within(
            &format!("/videos/{video_hash}/status"),
            &token,
            Duration::from_secs(20),
            |v| v["status"] != "queued" && v["status"] != "processing",
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["error_message"], json!(null));
    let (status, task) = app
        .get(&format!("/tasks/{video_task}/status"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(task["result"]["status"], "completed");
    assert!(task["result"]["url"].is_string(), "{task}");
    assert!(worker.succeeded(&video_task));

    let (status, active) = app.get("/tasks/active", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(active["total"], 0, "{active}");

    app.cleanup().await;
}

mod a_briefing_gets_options_and_a_video_reports_progress_then_completes {
    use crate::support::Backend;

    #[tokio::test]
    async fn on_sqlite() {
        super::options_then_progress_then_completion(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        super::options_then_progress_then_completion(Backend::Postgres).await;
    }
}
