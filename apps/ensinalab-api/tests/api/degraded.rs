//! With the task broker down: the list still answers (states unknown, flagged), cancels still
//! stand (revoke `pending`, owed in the database), dispatching routes are a 503, and /readyz
//! names the broker.

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::VideoStatus;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, Settings, TestApp};

use crate::contract;

const BROKER_DOWN: &str = "Fila de tarefas indisponível. Tente novamente em instantes";

async fn with_the_broker_down_reads_and_cancels_still_work(backend: Backend) {
    // Nothing listens on port 1: every Redis call is refused at once.
    let broker = CeleryBroker::new(CeleryConfig::new("redis://127.0.0.1:1/0")).expect("config");
    let app = TestApp::spawn_over(backend, &Settings::default(), broker, None).await;
    let token = app.token(1);
    let (video, _) = app.video_in(1, VideoStatus::Processing).await;
    let (other, other_task) = app.video_in(1, VideoStatus::Queued).await;

    let (status, list) = app.get("/tasks/active", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["celery_unavailable"], true);
    assert_eq!(list["total"], 2);
    for row in list["tasks"].as_array().expect("rows") {
        assert_eq!(
            row["celery_status"],
            json!({"state": "UNKNOWN", "ready": false, "successful": null, "failed": null})
        );
    }

    let hash = app.hash(video.id.get());
    let (status, body) = app.post(&format!("/videos/{hash}/cancel"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, contract::video_cancelled(&hash, false, "pending"));
    assert_eq!(
        app.video_row(1, video.id).await.status,
        VideoStatus::Cancelled
    );

    let (status, body) = app
        .get(&format!("/tasks/{other_task}/status"), &token)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": BROKER_DOWN})
        )
    );

    let (status, body) = app.try_create_briefing(&token).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": BROKER_DOWN})
        )
    );

    let (status, body) = app.post("/tasks/cancel-all", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["cancelled"]["videos"],
        json!([app.hash(other.id.get())])
    );
    assert_eq!(
        body["revokes"],
        json!([{"task_id": other_task.to_string(), "revoke": "pending", "task_revoked": false}])
    );

    let (status, body) = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({
            "status": "unavailable",
            "database": "ok",
            "broker": "unavailable",
            "detail": "Fila de tarefas indisponível",
        })
    );
    app.cleanup().await;
}

#[tokio::test]
async fn with_the_broker_down_reads_and_cancels_still_work_on_sqlite() {
    with_the_broker_down_reads_and_cancels_still_work(Backend::Sqlite).await;
}

#[tokio::test]
async fn with_the_broker_down_reads_and_cancels_still_work_on_postgres() {
    with_the_broker_down_reads_and_cancels_still_work(Backend::Postgres).await;
}
