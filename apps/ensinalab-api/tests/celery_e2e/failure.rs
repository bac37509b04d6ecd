//! A task the worker fails: `failed` in the database, its error to the owner, its traceback to
//! admins only.

use std::time::Duration;

use ensinalab_app::new_task_id;
use ensinalab_domain::{BriefingDraft, BriefingStatus, GeneratedOption, UserId, VideoStatus};
use ensinalab_ports::{BriefingUpdate, Briefings, Videos};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Backend, CeleryApp, Durations, Worker, redis_url, str_of, unique_queue};

use crate::contract;

const DB: u8 = 5;

/// What the reference worker raises for a title starting with `[fail]`.
const ERROR: &str = "ConnectionError: Failed to connect to OpenAI API";

/// `GET /tasks/{id}/status` of a failed task: the error for its owner, the traceback only for
/// an admin token, and nothing at all for anyone else, admin or not.
async fn assert_failure_is_reported(app: &CeleryApp, task: &str) {
    let path = format!("/tasks/{task}/status");
    let (status, body) = app.get(&path, &app.token(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, contract::failed_task(task, ERROR));

    let (status, body) = app.get(&path, &app.admin_token(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["error"], ERROR);
    let traceback = str_of(&body, "traceback");
    assert!(
        traceback.starts_with("Traceback (most recent call last)"),
        "{traceback}"
    );
    assert!(traceback.contains("_maybe_fail"), "{traceback}");
    assert!(traceback.trim_end().ends_with(ERROR), "{traceback}");

    let (status, body) = app.get(&path, &app.admin_token(2)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, json!({"detail": "Task não encontrada"}));
}

#[tokio::test]
async fn a_failing_task_shows_failed_with_its_error_and_its_traceback_only_to_an_admin() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 1.0,
        video_steps: 2,
    };
    let queue = unique_queue("failure");
    let _worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let finished = |b: &serde_json::Value| b["status"] != "processing" && b["status"] != "queued";

    // Option generation fails.
    let created = app.create_briefing(&token, "[fail] Fotossíntese").await;
    let hash = str_of(&created, "briefing_id");
    let task = str_of(&created, "task_id");
    let briefing = app
        .wait_within(
            &format!("/briefings/{hash}"),
            &token,
            Duration::from_secs(20),
            finished,
        )
        .await;
    assert_eq!(briefing["status"], "failed", "{briefing}");
    assert_eq!(briefing["error_message"], ERROR);
    assert_eq!(briefing["options"], json!([]));
    let (row, _) = app
        .store
        .briefing(app.ids.briefing(hash).expect("our hash"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(row.status, BriefingStatus::Failed);
    assert_eq!(row.error_message.as_deref(), Some(ERROR));
    assert_failure_is_reported(&app, task).await;

    // Video generation fails. The worker's options always carry the briefing's title, so a
    // "[fail]" option comes from a briefing the store is given directly.
    let draft = BriefingDraft::new("Vídeo que falha", "...", 10).expect("valid draft");
    let seeded = app
        .store
        .create_briefing(UserId(1), &draft, &new_task_id(), u32::MAX)
        .await
        .expect("briefing stored")
        .expect("a free job slot");
    let option = GeneratedOption {
        title: "[fail] Aula expositiva".into(),
        description: "d".into(),
        generator_type: "simple".into(),
    };
    let moved = app
        .store
        .apply_briefing_update(seeded.id, &BriefingUpdate::OptionsReady(vec![option]))
        .await
        .expect("options stored");
    assert!(moved.is_some());
    let (status, seeded) = app
        .get(
            &format!("/briefings/{}", app.ids.encode(seeded.id.get())),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seeded}");
    let video = app
        .select(&token, str_of(&seeded["options"][0], "option_id"))
        .await;
    let video_hash = str_of(&video, "video_id");
    let video_task = str_of(&video, "task_id");
    let failed = app
        .wait_within(
            &format!("/videos/{video_hash}/status"),
            &token,
            Duration::from_secs(20),
            finished,
        )
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error_message"], ERROR);
    let row = app
        .store
        .video(app.ids.video(video_hash).expect("our hash"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(row.status, VideoStatus::Failed);
    assert_eq!(row.error_message.as_deref(), Some(ERROR));
    assert_failure_is_reported(&app, video_task).await;

    app.cleanup().await;
}
