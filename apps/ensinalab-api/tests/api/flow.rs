//! The generation flow end to end on the in-process broker: the reconciler turns task reports
//! into statuses (options arrive, a video progresses and completes).

use std::time::Duration;

use ensinalab_local::LocalConfig;
use reqwest::StatusCode;
use serde_json::Value;

use crate::both;
use crate::helpers::{Settings, TestApp};

async fn select_first_option(app: &TestApp, token: &str) -> Value {
    let created = app.create_briefing(token, "Fluxo").await;
    let hash = created["briefing_id"].as_str().expect("hash").to_owned();
    let ready = app
        .wait_briefing(token, &hash, |b| b["status"] == "options_ready")
        .await;
    let option = ready["options"][0]["option_id"]
        .as_str()
        .expect("option")
        .to_owned();
    let (status, video) = app.post(&format!("/options/{option}/select"), token).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{video}");
    video
}

async fn a_running_video_reports_progress_in_every_view(app: &TestApp) {
    let token = app.token(1);
    let video = select_first_option(app, &token).await;
    let hash = video["video_id"].as_str().expect("hash");
    let task = video["task_id"].as_str().expect("task");
    app.wait(&format!("/videos/{hash}/status"), &token, |v| {
        v["status"] == "processing"
    })
    .await;

    let (status, body) = app.get(&format!("/tasks/{task}/status"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "PROGRESS");
    assert_eq!(body["ready"], false);
    assert_eq!(body["info"]["total"], 10);
    assert!(body["info"]["current"].is_number(), "{body}");

    let (_, list) = app.get("/tasks/active", &token).await;
    assert_eq!(list["summary"]["videos"], 1);
    let row = &list["tasks"][0];
    assert_eq!(row["celery_status"]["state"], "PROGRESS");
    assert!(row["progress"].is_number());
    assert_eq!(row["generator_type"], "simple");
}
both!(a_running_video_reports_progress_in_every_view);

fn quick_settings() -> Settings {
    Settings {
        local: LocalConfig {
            options_duration: Duration::from_millis(200),
            video_duration: Duration::from_millis(800),
        },
        ..Settings::default()
    }
}

async fn a_video_left_alone_completes(app: &TestApp) {
    let token = app.token(1);
    let video = select_first_option(app, &token).await;
    let hash = video["video_id"].as_str().expect("hash");
    let done = app
        .wait(&format!("/videos/{hash}/status"), &token, |v| {
            v["status"] == "completed"
        })
        .await;
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["error_message"], Value::Null);
    let (status, body) = app.post(&format!("/videos/{hash}/cancel"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["detail"],
        "Vídeo não pode ser cancelado. Status atual: completed"
    );
}
both!(a_video_left_alone_completes, quick_settings);
