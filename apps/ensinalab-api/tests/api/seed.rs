//! The seed document's manual scenarios and every error body it shows, over HTTP.

use std::time::Duration;

use ensinalab_domain::CANCELLED_BY_USER;
use ensinalab_domain::{BriefingStatus, UserId, VideoStatus};
use ensinalab_local::LocalConfig;
use ensinalab_ports::Briefings;
use reqwest::StatusCode;
use serde_json::json;

use crate::both;
use crate::common::http::str_of;
use crate::helpers::{Settings, TestApp};

use crate::contract;

// "Teste Manual - Cancelar Vídeo": create a briefing, wait for its options, select one, cancel
// the video right after, and its status says cancelled.
async fn cancelling_a_video_right_after_selecting_it_leaves_it_cancelled(app: &TestApp) {
    let token = app.token(1);
    let created = app.create_briefing(&token, "Teste de Cancelamento").await;
    assert_eq!(created["status"], "processing");
    assert_eq!(created["options"], json!([]));
    let briefing = str_of(&created, "briefing_id").to_owned();
    let ready = app
        .wait_briefing(&token, &briefing, |b| b["status"] == "options_ready")
        .await;
    let options = ready["options"].as_array().expect("options");
    assert_eq!(options.len(), 3, "{ready}");
    let option = str_of(&options[0], "option_id");

    let (status, video) = app.post(&format!("/options/{option}/select"), &token).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{video}");
    assert_eq!(video["status"], "queued");
    assert_eq!(video["briefing_id"], briefing.as_str());
    let hash = str_of(&video, "video_id").to_owned();
    let task_id = str_of(&video, "task_id").to_owned();

    let (status, body) = app.post(&format!("/videos/{hash}/cancel"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Whether the task had started yet is a race; either way it is stopped for good.
    let revoke = str_of(&body, "revoke").to_owned();
    assert!(
        ["killed", "removed_from_queue"].contains(&revoke.as_str()),
        "{body}"
    );
    assert_eq!(body, contract::video_cancelled(&hash, true, &revoke));

    let (status, body) = app.get(&format!("/videos/{hash}/status"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["progress"], 0.0);
    assert_eq!(body["error_message"], CANCELLED_BY_USER);

    // The task really stopped and says so; the row stays cancelled.
    let (status, task) = app.get(&format!("/tasks/{task_id}/status"), &token).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(
        task,
        json!({
            "task_id": task_id,
            "state": "REVOKED",
            "ready": false,
            "successful": null,
            "failed": null,
            "info": "Task foi cancelada",
        })
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.broker().running(), 0);
    let (_, body) = app.get(&format!("/videos/{hash}/status"), &token).await;
    assert_eq!(body["status"], "cancelled");

    // "Tentar novamente (selecionar opção novamente)".
    let (status, again) = app.post(&format!("/options/{option}/select"), &token).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_ne!(again["video_id"], hash.as_str());
}
both!(cancelling_a_video_right_after_selecting_it_leaves_it_cancelled);

fn stuck_settings() -> Settings {
    Settings {
        local: LocalConfig {
            options_duration: Duration::from_secs(120),
            video_duration: Duration::from_secs(120),
        },
        task_time_limit_secs: 1,
        ..Settings::default()
    }
}

// "Briefing Travado": a briefing processing past the time limit is flagged stuck, can be
// cancelled, and a new one can be created.
async fn a_stuck_briefing_is_flagged_and_can_be_cancelled_and_recreated(app: &TestApp) {
    let token = app.token(1);
    let created = app.create_briefing(&token, "Gestão de Sala de Aula").await;
    let hash = str_of(&created, "briefing_id").to_owned();
    let task_id = str_of(&created, "task_id").to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (status, list) = app.get("/tasks/active", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["summary"], json!({"briefings": 1, "videos": 0}));
    assert_eq!(list["celery_unavailable"], false);
    let row = &list["tasks"][0];
    assert_eq!(row["type"], "briefing");
    assert_eq!(row["resource_type"], "briefing");
    assert_eq!(row["resource_id"], hash.as_str());
    assert_eq!(row["title"], "Gestão de Sala de Aula");
    assert_eq!(row["status"], "processing");
    assert_eq!(row["task_id"], task_id.as_str());
    assert_eq!(row["elapsed_time"]["is_stuck"], true);
    assert!(row["elapsed_time"]["seconds"].as_u64().expect("seconds") >= 2);
    assert_eq!(
        row["elapsed_time"]["formatted"]
            .as_str()
            .map(|f| f.ends_with('s')),
        Some(true)
    );
    assert_eq!(
        row["celery_status"],
        json!({"state": "STARTED", "ready": false, "successful": null, "failed": null})
    );
    assert_eq!(row["can_cancel"], true);
    assert!(
        row.get("progress").is_none(),
        "briefings have no progress: {row}"
    );
    assert!(row.get("generator_type").is_none(), "{row}");
    let created_at = row["created_at"].as_str().expect("created_at");
    assert!(
        created_at.ends_with('Z') && created_at.len() == 20,
        "{created_at}"
    );

    let (status, b) = app.get(&format!("/briefings/{hash}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b["status"], "processing");

    let (status, body) = app
        .post(&format!("/briefings/{hash}/cancel-generation"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, contract::briefing_cancelled(&hash, true, "killed"));
    let (_, b) = app.get(&format!("/briefings/{hash}"), &token).await;
    assert_eq!(b["status"], "cancelled");
    let (_, list) = app.get("/tasks/active", &token).await;
    assert_eq!(list["total"], 0);

    let again = app.create_briefing(&token, "Gestão de Sala de Aula").await;
    assert_ne!(again["briefing_id"], hash.as_str());
}
both!(
    a_stuck_briefing_is_flagged_and_can_be_cancelled_and_recreated,
    stuck_settings
);

// "Teste de Segurança": cancelling someone else's video is the same 404 as a missing one.
async fn cancelling_another_users_video_is_a_404_and_changes_nothing(app: &TestApp) {
    let (video, _) = app.video_in(1, VideoStatus::Processing).await;
    let hash = app.hash(video.id.get());
    let (status, body) = app
        .post(&format!("/videos/{hash}/cancel"), &app.token(2))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Vídeo não encontrado"}));
    assert_eq!(
        app.video_row(1, video.id).await.status,
        VideoStatus::Processing
    );
    let events = ensinalab_store::testing::security_events(&app.store)
        .await
        .expect("events");
    let last = events.last().expect("the attempt is recorded");
    assert_eq!(last.event.as_str(), "cancel_refused");
    assert_eq!(last.outcome.as_str(), "not_owner");
    assert_eq!(last.user_id, Some(UserId(2)));
}
both!(cancelling_another_users_video_is_a_404_and_changes_nothing);

async fn every_error_body_of_the_seed_is_returned_verbatim(app: &TestApp) {
    let token = app.token(1);
    let missing = app.hash(999_999);
    let (status, body) = app.post(&format!("/videos/{missing}/cancel"), &token).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Vídeo não encontrado"})
        )
    );

    let (done, _) = app.video_in(1, VideoStatus::Completed).await;
    let (status, body) = app
        .post(
            &format!("/videos/{}/cancel", app.hash(done.id.get())),
            &token,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "Vídeo não pode ser cancelado. Status atual: completed"})
        )
    );

    let (status, body) = app
        .post(&format!("/briefings/{missing}/cancel-generation"), &token)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Briefing não encontrado"})
        )
    );

    let (ready, _) = app.ready_briefing(1).await;
    let (status, body) = app
        .post(
            &format!("/briefings/{}/cancel-generation", app.hash(ready.get())),
            &token,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "Briefing não está sendo processado. Status atual: options_ready"})
        )
    );
}
both!(every_error_body_of_the_seed_is_returned_verbatim);

async fn every_cancellable_video_status_can_be_cancelled_and_no_other(app: &TestApp) {
    let token = app.token(1);
    for status in VideoStatus::ALL {
        let (video, _) = app.video_in(1, *status).await;
        let (code, body) = app
            .post(
                &format!("/videos/{}/cancel", app.hash(video.id.get())),
                &token,
            )
            .await;
        if status.is_cancellable() {
            assert_eq!(code, StatusCode::OK, "{status}: {body}");
            assert_eq!(body["status"], "cancelled");
        } else {
            assert_eq!(code, StatusCode::BAD_REQUEST, "{status}: {body}");
            assert_eq!(
                body["detail"],
                format!("Vídeo não pode ser cancelado. Status atual: {status}")
            );
        }
    }
}
both!(every_cancellable_video_status_can_be_cancelled_and_no_other);

async fn cancel_all_cancels_only_the_callers_active_tasks(app: &TestApp) {
    let (b1, _) = app.stuck_briefing(1, "Um").await;
    let (b2, _) = app.stuck_briefing(1, "Dois").await;
    let (v1, _) = app.video_in(1, VideoStatus::Queued).await;
    let (v2, _) = app.video_in(1, VideoStatus::Processing).await;
    let (v3, _) = app.video_in(1, VideoStatus::PendingApproval).await;
    let (done, _) = app.video_in(1, VideoStatus::Completed).await;
    let (other, _) = app.video_in(2, VideoStatus::Processing).await;

    let (status, body) = app.post("/tasks/cancel-all", &app.token(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "5 tasks canceladas com sucesso");
    assert_eq!(body["cancelled"]["total"], 5);
    let mut briefings: Vec<String> =
        serde_json::from_value(body["cancelled"]["briefings"].clone()).expect("briefing hashes");
    briefings.sort();
    let mut expected = vec![app.hash(b1.id.get()), app.hash(b2.id.get())];
    expected.sort();
    assert_eq!(briefings, expected);
    let mut videos: Vec<String> =
        serde_json::from_value(body["cancelled"]["videos"].clone()).expect("video hashes");
    videos.sort();
    let mut expected: Vec<String> = [&v1, &v2, &v3]
        .iter()
        .map(|v| app.hash(v.id.get()))
        .collect();
    expected.sort();
    assert_eq!(videos, expected);
    assert_eq!(body["revokes"].as_array().map(Vec::len), Some(5), "{body}");

    for v in [&v1, &v2, &v3] {
        assert_eq!(app.video_row(1, v.id).await.status, VideoStatus::Cancelled);
    }
    for b in [&b1, &b2] {
        let (row, _) = app
            .store
            .briefing(b.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(row.status, BriefingStatus::Cancelled);
    }
    assert_eq!(
        app.video_row(1, done.id).await.status,
        VideoStatus::Completed
    );
    assert_eq!(
        app.video_row(2, other.id).await.status,
        VideoStatus::Processing
    );

    let (status, body) = app.post("/tasks/cancel-all", &app.token(1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "message": "0 tasks canceladas com sucesso",
            "cancelled": {"briefings": [], "videos": [], "total": 0},
            "revokes": [],
        })
    );
}
both!(cancel_all_cancels_only_the_callers_active_tasks);

async fn the_active_list_has_the_seeds_video_row_shape(app: &TestApp) {
    let (video, task) = app.video_in(1, VideoStatus::Processing).await;
    let (status, list) = app.get("/tasks/active", &app.token(1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(list["summary"], json!({"briefings": 0, "videos": 1}));
    let row = &list["tasks"][0];
    // Field order on the wire is the seed's (parsed maps sort keys, so read the raw text).
    let raw = app
        .client
        .get(app.url("/tasks/active"))
        .bearer_auth(app.token(1))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    let order = [
        "type",
        "resource_type",
        "resource_id",
        "title",
        "status",
        "progress",
        "created_at",
        "elapsed_time",
        "task_id",
        "celery_status",
        "generator_type",
        "can_cancel",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| {
            raw.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {raw}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{raw}");
    assert_eq!(row.as_object().map(|o| o.len()), Some(order.len()), "{row}");
    assert_eq!(row["type"], "video");
    assert_eq!(row["resource_id"], app.hash(video.id.get()).as_str());
    assert_eq!(row["progress"], 0.7);
    assert_eq!(row["generator_type"], "simple");
    assert_eq!(row["task_id"], task.as_str());
    assert_eq!(row["elapsed_time"]["is_stuck"], false);
    // No worker ever saw this task: Celery's answer for an unknown id.
    assert_eq!(row["celery_status"]["state"], "PENDING");
}
both!(the_active_list_has_the_seeds_video_row_shape);

async fn a_failed_task_shows_its_error_to_the_owner_and_its_traceback_to_admins_only(
    app: &TestApp,
) {
    let token = app.token(1);
    let created = app.create_briefing(&token, "[fail] Sem conexão").await;
    let hash = str_of(&created, "briefing_id").to_owned();
    let task = str_of(&created, "task_id").to_owned();
    let b = app
        .wait_briefing(&token, &hash, |b| b["status"] == "failed")
        .await;
    assert_eq!(
        b["error_message"],
        "ConnectionError: Failed to connect to OpenAI API"
    );
    let (status, body) = app.get(&format!("/tasks/{task}/status"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        contract::failed_task(&task, "ConnectionError: Failed to connect to OpenAI API")
    );
    let (status, body) = app
        .get(&format!("/tasks/{task}/status"), &app.admin_token(1))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "FAILURE");
    // The in-process broker has no Python traceback to give; an admin sees whatever exists.
    assert!(body.get("traceback").is_none() || body["traceback"].is_string());
}
both!(a_failed_task_shows_its_error_to_the_owner_and_its_traceback_to_admins_only);

async fn a_finished_task_shows_its_result(app: &TestApp) {
    let token = app.token(1);
    let created = app.create_briefing(&token, "Resultado").await;
    let hash = str_of(&created, "briefing_id").to_owned();
    let task = str_of(&created, "task_id").to_owned();
    app.wait_briefing(&token, &hash, |b| b["status"] == "options_ready")
        .await;
    let (status, body) = app.get(&format!("/tasks/{task}/status"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "SUCCESS");
    assert_eq!(body["ready"], true);
    assert_eq!(body["successful"], true);
    assert_eq!(body["failed"], false);
    assert_eq!(body["result"]["options"].as_array().map(Vec::len), Some(3));
    assert!(body.get("info").is_none());
}
both!(a_finished_task_shows_its_result);
