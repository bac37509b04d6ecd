//! The reconciler's terminal guard over a real Redis backend: a SUCCESS that arrives after the
//! cancel (a worker that finished anyway, or wrote over REVOKED) never resurrects the row.

use std::time::Duration;

use ensinalab_store::testing::sqlite_memory;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_success_after_a_cancel_never_resurrects_the_row() {
    let redis = RedisServer::start();
    let broker = celery(&redis.url(), &unique_queue());
    let changes = Feeds::changes(broker.watch());
    let app = spawn(sqlite_memory().await.unwrap(), broker, changes, &[]);
    let token = app.token(1);
    // No worker: the task waits in the queue until the cancel removes it.
    let briefing = app.create_briefing(&token, "Gestão de Sala de Aula").await;
    let hash = briefing["briefing_id"].as_str().unwrap().to_owned();
    let task = briefing["task_id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(&format!("/briefings/{hash}/cancel-generation"), &token)
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("cancelled"))
    );

    // A worker's SUCCESS, written and announced the way Celery's Redis backend does it.
    let success = json!({
        "status": "SUCCESS",
        "result": {"options": [{"title": "t", "description": "d", "generator_type": "simple"}]},
        "traceback": null,
        "children": [],
        "date_done": "2026-11-28T12:00:00.000000+00:00",
        "task_id": task,
    })
    .to_string();
    let key = format!("celery-task-meta-{task}");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&success)
        .query_async(&mut conn)
        .await
        .unwrap();
    let listeners: i64 = redis::cmd("PUBLISH")
        .arg(&key)
        .arg(&success)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(listeners >= 1, "the reconciler's change feed listens");

    // Give the change feed and two sweeps (1 s apart) their chance.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = app.get(&format!("/briefings/{hash}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(body["options"], json!([]), "{body}");
    let (_, status_body) = app.get(&format!("/tasks/{task}/status"), &token).await;
    assert_eq!(
        status_body["state"], "SUCCESS",
        "the backend says SUCCESS; the row does not care"
    );
}
