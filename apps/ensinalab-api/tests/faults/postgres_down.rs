//! PostgreSQL down: every route that needs it is a 503 `{"detail": ...}` within the pool's
//! acquire timeout (no hang), nothing is half-written, and the service recovers by itself
//! when PostgreSQL returns.

use std::time::{Duration, Instant};

use ensinalab_app::new_task_id;
use ensinalab_domain::{BriefingDraft, BriefingStatus, UserId};
use ensinalab_local::{LocalBroker, LocalConfig};
use ensinalab_ports::{Briefings, RevokeOutbox};
use ensinalab_store::SqlStore;
use reqwest::StatusCode;
use serde_json::json;
use time::OffsetDateTime;

use crate::support::*;

/// Generous: the store's acquire timeout is 5 s; a hang would be caught by the client's 30 s.
const BOUND: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_requests_fail_fast_with_503_and_recover_by_themselves() {
    let pg = PgServer::start();
    let store = SqlStore::connect(&pg.url()).await.unwrap();
    store.migrate().await.unwrap();
    let broker = LocalBroker::new(LocalConfig {
        options_duration: Duration::from_secs(60),
        video_duration: Duration::from_secs(60),
    });
    let changes = Feeds::changes(broker.watch());
    let app = spawn(store.clone(), broker, changes, &[]);
    let token = app.token(1);
    let draft = BriefingDraft::new("Gestão de Sala de Aula", "...", 10).unwrap();
    let briefing = store
        .create_briefing(UserId(1), &draft, &new_task_id(), u32::MAX)
        .await
        .unwrap()
        .expect("a free job slot");
    let hash = app.hash(briefing.id.get());

    pg.stop();

    for (method, path) in [
        ("GET", "/tasks/active".to_owned()),
        ("POST", format!("/briefings/{hash}/cancel-generation")),
        ("POST", "/tasks/cancel-all".to_owned()),
        ("GET", format!("/briefings/{hash}")),
    ] {
        let started = Instant::now();
        let (status, body) = if method == "GET" {
            app.get(&path, &token).await
        } else {
            app.post(&path, &token).await
        };
        let took = started.elapsed();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {body}"
        );
        assert!(body["detail"].is_string(), "{method} {path}: {body}");
        assert!(took < BOUND, "{method} {path} took {took:?}");
    }
    let (status, body) = app.readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["database"], "unavailable", "{body}");

    pg.restart();

    // Recovers without a restart of the app: the pool reconnects.
    let body = eventually(
        Duration::from_secs(30),
        "the list answers again",
        || async {
            let (status, body) = app.get("/tasks/active", &token).await;
            (status == StatusCode::OK).then_some(body)
        },
    )
    .await;
    // Nothing half-written: the refused cancels changed nothing and owe nothing. The list reads
    // through connections of its own, so the store's other pool recovers on its own too.
    assert_eq!(body["total"], 1, "{body}");
    let b = eventually(
        Duration::from_secs(30),
        "the briefing answers again",
        || async {
            let (status, body) = app.get(&format!("/briefings/{hash}"), &token).await;
            (status == StatusCode::OK).then_some(body)
        },
    )
    .await;
    assert_eq!(b["status"], BriefingStatus::Processing.as_str());
    let far = OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(store.due_revokes(far, 10).await.unwrap().is_empty());

    // And works normally again.
    let (status, body) = app
        .post(&format!("/briefings/{hash}/cancel-generation"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], json!("cancelled"));
    // Readiness is a probe at most a second old.
    eventually(Duration::from_secs(5), "ready again", || async {
        (app.readyz().await.0 == StatusCode::OK).then_some(())
    })
    .await;
}
