//! Health, readiness, the OpenAPI document, and docs/api.md checked against it.

use std::collections::BTreeSet;

use ensinalab_api::Application;
use ensinalab_api::auth::Authenticator;
use ensinalab_api::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

async fn health_and_readiness_answer_without_a_token(app: &TestApp) {
    let (status, body) = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    for path in ["/healthz", "/readyz"] {
        let head = app.client.head(app.url(path)).send().await.expect("sent");
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
    }
    let (status, body) = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "ok", "database": "ok", "broker": "ok"})
        )
    );
}
both!(health_and_readiness_answer_without_a_token);

async fn openapi(app: &TestApp) -> Value {
    let (status, doc) = app.send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

/// `GET /tasks/active`-style lines for every operation of the document.
fn operations(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    out
}

async fn the_openapi_document_has_every_route_and_error_body(app: &TestApp) {
    let doc = openapi(app).await;
    let ops = operations(&doc);
    let expected: BTreeSet<String> = [
        "GET /tasks/active",
        "GET /tasks/events",
        "GET /tasks/ws",
        "GET /tasks/{task_id}/status",
        "POST /tasks/cancel-all",
        "POST /videos/{video_hash}/cancel",
        "GET /videos/{video_hash}/status",
        "POST /briefings",
        "GET /briefings/{briefing_hash}",
        "POST /briefings/{briefing_hash}/cancel-generation",
        "POST /options/{option_hash}/select",
        "GET /healthz",
        "GET /readyz",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(ops, expected);
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "ErrorBody",
        "ActiveTasksResponse",
        "TaskStatusResponse",
        "CancelVideoResponse",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
    let not_found = &doc["paths"]["/videos/{video_hash}/cancel"]["post"]["responses"]["404"];
    assert_eq!(
        not_found["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
}
both!(the_openapi_document_has_every_route_and_error_body);

/// Routes documented in docs/api.md but kept out of the public document: to anyone but an admin
/// they do not exist.
const ADMIN_ONLY: [&str; 2] = ["GET /admin/security-events", "GET /admin/stats"];

async fn docs_api_md_documents_exactly_the_routes_of_the_openapi_document(app: &TestApp) {
    let doc = openapi(app).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
    let md = std::fs::read_to_string(path).expect("docs/api.md exists");
    let documented: BTreeSet<String> = md
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.strip_suffix('`'))
        .map(str::to_owned)
        .collect();
    let public = operations(&doc);
    for admin in ADMIN_ONLY {
        assert!(!public.contains(admin), "{admin} is in the public document");
    }
    let expected: BTreeSet<String> = public
        .into_iter()
        .chain(ADMIN_ONLY.map(str::to_owned))
        .collect();
    assert_eq!(
        documented, expected,
        "docs/api.md headings vs /openapi.json"
    );
    // Each route section carries a curl example and a response example.
    for section in md.split("\n### `").skip(1) {
        let title = section.lines().next().unwrap_or_default();
        assert!(section.contains("curl "), "{title}: no curl example");
        assert!(section.contains("```json"), "{title}: no JSON example");
    }
}
both!(docs_api_md_documents_exactly_the_routes_of_the_openapi_document);

/// Replays the README's session on the zero-setup default (`Application::build` as `main` runs
/// it: a SQLite file, the in-process broker, dev mode): start, create a briefing, watch it,
/// cancel it.
#[tokio::test]
async fn the_readme_session_works_on_the_zero_setup_default() {
    let dir = std::env::temp_dir().join(format!("ensinalab-api-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}/ensinalab.db?mode=rwc", dir.display());
    let config = Config::from_lookup(|key| match key {
        "BIND_ADDR" => Some("127.0.0.1:0".to_owned()),
        "METRICS_ADDR" => Some("127.0.0.1:0".to_owned()),
        "DATABASE_URL" => Some(db.clone()),
        "LOCAL_OPTIONS_SECS" => Some("60".to_owned()),
        _ => None,
    })
    .expect("config");
    assert!(config.jwt.secret.is_dev());
    let app = Application::build(&config).await.expect("builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    // What the dev-mode banner prints.
    let token = Authenticator::new(&config.jwt)
        .mint(1, false, 60)
        .expect("dev token");
    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), StatusCode::OK);

    // curl -X POST localhost:8080/briefings -d '{...}'  (no Content-Type, like curl -d)
    let created = client
        .post(format!("{base}/briefings"))
        .bearer_auth(&token)
        .body(r#"{"title": "Teste de Cancelamento", "description": "...", "duration_minutes": 10}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let hash = created["briefing_id"]
        .as_str()
        .expect("briefing_id")
        .to_owned();

    // curl localhost:8080/tasks/active
    let list: Value = client
        .get(format!("{base}/tasks/active"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["tasks"][0]["resource_id"], hash.as_str());

    // curl -X POST localhost:8080/briefings/{briefing_id}/cancel-generation
    let cancelled = client
        .post(format!("{base}/briefings/{hash}/cancel-generation"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.expect("json");
    assert_eq!(
        cancelled["message"],
        "Geração de opções cancelada com sucesso"
    );
    assert_eq!(cancelled["task_revoked"], true);
    let _ = std::fs::remove_dir_all(&dir);
}
