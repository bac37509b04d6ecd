//! The ownership matrix: user B tries every route with every one of user A's ids, of every
//! kind (video hash, briefing hash, option hash, task id), and gets exactly what a random id
//! gets (404, same body); nothing of A's changes, in the database or in the broker, and B's
//! attempts on A's resources are in the security trail as such.

use std::collections::BTreeSet;
use std::time::Duration;

use ensinalab_domain::{
    BriefingId, BriefingStatus, ResourceKind, TaskId, UserId, VideoId, VideoStatus,
};
use ensinalab_local::LocalConfig;
use ensinalab_ports::{Briefings, TaskBroker};
use reqwest::StatusCode;
use serde_json::json;

use crate::both;
use crate::helpers::{Settings, TestApp};

/// Tasks that run for the whole test in the in-process broker.
fn long_tasks() -> Settings {
    Settings {
        local: LocalConfig {
            options_duration: Duration::from_secs(120),
            video_duration: Duration::from_secs(120),
        },
        ..Settings::default()
    }
}

/// Every route that takes an id, as the OpenAPI document names it.
const ID_ROUTES: [(&str, &str); 6] = [
    ("GET", "/briefings/{briefing_hash}"),
    ("POST", "/briefings/{briefing_hash}/cancel-generation"),
    ("POST", "/options/{option_hash}/select"),
    ("GET", "/videos/{video_hash}/status"),
    ("POST", "/videos/{video_hash}/cancel"),
    ("GET", "/tasks/{task_id}/status"),
];

/// The routes without an id, and what B gets from each.
const OTHER_ROUTES: [&str; 8] = [
    "GET /tasks/active",
    "GET /tasks/events",
    "GET /tasks/ws",
    "POST /tasks/cancel-all",
    "GET /admin/security-events",
    // B's own briefing: no id of A's is involved.
    "POST /briefings",
    "GET /healthz",
    "GET /readyz",
];

fn fill(template: &str, id: &str) -> String {
    let start = template.find('{').expect("a parameter");
    let end = template.find('}').expect("a parameter");
    format!("{}{id}{}", &template[..start], &template[end + 1..])
}

async fn task_of_video(app: &TestApp, id: VideoId) -> TaskId {
    app.video_row(1, id).await.task_id.expect("task id")
}

async fn briefing_row(app: &TestApp, id: BriefingId) -> ensinalab_ports::Briefing {
    app.store
        .briefing(id)
        .await
        .expect("read")
        .expect("exists")
        .0
}

async fn another_user_gets_the_same_404_as_for_a_random_id_on_every_route(app: &TestApp) {
    let a = app.token(1);
    // A's resources: two with tasks really running in the broker, the rest in the database.
    let live_briefing = app.create_briefing(&a, "Em geração").await;
    let live_briefing = app
        .ids
        .briefing(live_briefing["briefing_id"].as_str().expect("hash"))
        .expect("decodes");
    let (ready, options) = app.ready_briefing(1).await;
    let (status, live_video) = app
        .post(
            &format!("/options/{}/select", app.hash(options[0].get())),
            &a,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{live_video}");
    let live_video = app
        .ids
        .video(live_video["video_id"].as_str().expect("hash"))
        .expect("decodes");
    let (stuck, stuck_task) = app.stuck_briefing(1, "Em processamento").await;
    let (video, video_task) = app.video_in(1, VideoStatus::Processing).await;
    let live_tasks = [
        briefing_row(app, live_briefing)
            .await
            .task_id
            .expect("task id"),
        task_of_video(app, live_video).await,
    ];
    assert_eq!(app.broker().running(), 2);
    let (a_active_status, a_active) = app.get("/tasks/active", &a).await;
    assert_eq!(a_active_status, StatusCode::OK);
    assert_eq!(a_active["total"], 4);
    let before_rows = (
        briefing_row(app, ready).await,
        briefing_row(app, stuck.id).await,
        app.video_row(1, video.id).await,
    );

    // Every id of A's, of every kind, as B would put it in a URL.
    let briefing_ids = [live_briefing, ready, stuck.id];
    let video_ids = [live_video, video.id];
    let mut theirs: Vec<(&str, String)> = Vec::new();
    theirs.extend(briefing_ids.iter().map(|b| ("briefing", app.hash(b.get()))));
    theirs.extend(options.iter().map(|o| ("option", app.hash(o.get()))));
    theirs.extend(video_ids.iter().map(|v| ("video", app.hash(v.get()))));
    for task in live_tasks.iter().chain([&stuck_task, &video_task]) {
        theirs.push(("task", task.to_string()));
    }
    let random_hash = app.hash(987_654);
    let random_task = "123e4567-e89b-42d3-a456-426614174000";

    let b = app.token(2);
    let call = |method: &'static str, path: String| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        app.send(app.client.request(method, app.url(&path)).bearer_auth(&b))
    };
    let mut tried = 0;
    for (method, template) in ID_ROUTES {
        let random = if template.contains("{task_id}") {
            random_task
        } else {
            random_hash.as_str()
        };
        let (random_status, random_body) = call(method, fill(template, random)).await;
        assert_eq!(random_status, StatusCode::NOT_FOUND, "{method} {template}");
        assert!(random_body["detail"].is_string());
        for (kind, id) in &theirs {
            let (status, body) = call(method, fill(template, id)).await;
            assert_eq!(
                (status, &body),
                (random_status, &random_body),
                "B: {method} {template} with A's {kind} {id}"
            );
            tried += 1;
        }
    }
    assert_eq!(tried, ID_ROUTES.len() * theirs.len());

    // The routes without an id show B nothing of A's and touch nothing of A's.
    let (status, body) = app.get("/tasks/active", &b).await;
    assert_eq!((status, &body["total"]), (StatusCode::OK, &json!(0)));
    let mut stream = app.stream(&b, None).await.expect("B's stream");
    let snapshot = stream.expect().await;
    assert_eq!(
        (snapshot.event.as_str(), &snapshot.data["total"]),
        ("snapshot", &json!(0))
    );
    let mut ws = crate::helpers::Ws::open(&app.address, &b, None).await;
    let snapshot = ws.expect().await;
    assert_eq!(
        (snapshot.event.as_str(), &snapshot.data["total"]),
        ("snapshot", &json!(0))
    );
    let (status, body) = app.post("/tasks/cancel-all", &b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["cancelled"]["total"], 0);
    let (status, body) = app.get("/admin/security-events", &b).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Rota não encontrada"})
        )
    );

    // The matrix covers every operation of the API.
    let (_, doc) = app.send(app.client.get(app.url("/openapi.json"))).await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    // The admin route is not in the public document; the matrix covers it all the same.
    documented.insert("GET /admin/security-events".to_owned());
    let covered: BTreeSet<String> = ID_ROUTES
        .iter()
        .map(|(m, t)| format!("{m} {t}"))
        .chain(OTHER_ROUTES.iter().map(|r| (*r).to_owned()))
        .collect();
    assert_eq!(covered, documented, "a route is missing from the matrix");

    // Nothing of A's moved: the rows in the database...
    let after_rows = (
        briefing_row(app, ready).await,
        briefing_row(app, stuck.id).await,
        app.video_row(1, video.id).await,
    );
    assert_eq!(after_rows, before_rows);
    assert_ne!(
        briefing_row(app, live_briefing).await.status,
        BriefingStatus::Cancelled
    );
    assert_ne!(
        app.video_row(1, live_video).await.status,
        VideoStatus::Cancelled
    );
    let (_, after) = app.get("/tasks/active", &a).await;
    assert_eq!(after["total"], a_active["total"]);
    // ...no video was made from A's options (B's selects were all refused)...
    let (_, ready_view) = app
        .get(&format!("/briefings/{}", app.hash(ready.get())), &a)
        .await;
    assert_eq!(ready_view["status"], "options_ready");
    // ...and in the broker: the two real tasks still run, nothing was revoked or published.
    assert_eq!(
        app.broker().running(),
        2,
        "nothing was revoked or dispatched"
    );
    let states = app.broker().states(&live_tasks).await.expect("states");
    for s in &states {
        assert_ne!(s.state.as_str(), "REVOKED", "{s:?}");
    }

    // B's cancel attempts on A's resources are in the trail as such.
    let events = ensinalab_store::testing::security_events(&app.store)
        .await
        .expect("events");
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.user_id == Some(UserId(2)) && e.event.as_str() == "cancel_refused")
        .collect();
    assert!(
        refused
            .iter()
            .all(|e| e.outcome.as_str() == "not_owner" || e.outcome.as_str() == "not_found"),
        "{refused:?}"
    );
    let flagged: Vec<(ResourceKind, i64)> = refused
        .iter()
        .filter(|e| e.outcome.as_str() == "not_owner")
        .filter_map(|e| e.resource)
        .collect();
    let expected = briefing_ids
        .iter()
        .map(|b| (ResourceKind::Briefing, b.get()))
        .chain(video_ids.iter().map(|v| (ResourceKind::Video, v.get())));
    for resource in expected {
        assert!(
            flagged.contains(&resource),
            "{resource:?} not flagged: {refused:?}"
        );
    }
    assert!(
        !events.iter().any(|e| e.user_id == Some(UserId(2))
            && (e.event.as_str().ends_with("_cancelled")
                && e.event.as_str() != "tasks_cancelled_all")),
        "B cancelled nothing"
    );
}
both!(
    another_user_gets_the_same_404_as_for_a_random_id_on_every_route,
    long_tasks
);
