//! Bounded users: a cap on the jobs a user holds, and the active list in keyset pages whose
//! `total` and `summary` still count everything.

use std::collections::HashSet;

use ensinalab_domain::{ResourceKind, UserId, VideoStatus};
use ensinalab_ports::ActivePosition;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::{Settings, TestApp};

/// Three slots, and options that take long enough to hold theirs for the whole test.
fn three_slots() -> Settings {
    let mut settings = Settings {
        max_active_jobs_per_user: 3,
        ..Settings::default()
    };
    settings.local.options_duration = std::time::Duration::from_secs(60);
    settings
}

async fn past_the_cap_creating_is_a_429_that_creates_nothing(app: &TestApp) {
    let token = app.token(1);
    // One slot held by a video made from an option, two by briefings.
    let (_, options) = app.ready_briefing(1).await;
    let select = format!("/options/{}/select", app.hash(options[0].get()));
    let (status, _) = app.post(&select, &token).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for title in ["Um", "Dois"] {
        let (status, body) = app
            .post_json(
                "/briefings",
                &token,
                &json!({"title": title, "duration_minutes": 5}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let detail = json!({
        "detail": "Limite de 3 tarefas em andamento atingido. Cancele uma ou aguarde uma terminar"
    });
    let (status, body) = app
        .post_json(
            "/briefings",
            &token,
            &json!({"title": "Três", "duration_minutes": 5}),
        )
        .await;
    assert_eq!((status, &body), (StatusCode::TOO_MANY_REQUESTS, &detail));
    let (status, body) = app.post(&select, &token).await;
    assert_eq!((status, &body), (StatusCode::TOO_MANY_REQUESTS, &detail));
    let (_, list) = app.get("/tasks/active", &token).await;
    assert_eq!(list["total"], 3, "nothing was created: {list}");
    assert_eq!(app.broker().running(), 3, "nothing was dispatched");

    // Another user is not held by this one's jobs; a cancel frees a slot.
    let (status, _) = app
        .post_json(
            "/briefings",
            &app.token(2),
            &json!({"title": "Outro", "duration_minutes": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.post("/tasks/cancel-all", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post_json(
            "/briefings",
            &token,
            &json!({"title": "De novo", "duration_minutes": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
both!(
    past_the_cap_creating_is_a_429_that_creates_nothing,
    three_slots
);

fn many_slots() -> Settings {
    Settings {
        max_active_jobs_per_user: 1_000,
        ..Settings::default()
    }
}

async fn pages_cover_every_job_once_and_count_all_of_them(app: &TestApp) {
    let token = app.token(1);
    for _ in 0..7 {
        app.video_in(1, VideoStatus::Processing).await;
    }
    for _ in 0..5 {
        app.video_in(1, VideoStatus::Queued).await;
    }
    app.video_in(2, VideoStatus::Processing).await;

    // Without parameters: everything on one page, and no next one.
    let (status, all) = app.get("/tasks/active", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["total"], 12);
    assert_eq!(all["next_cursor"], Value::Null);
    let everything: Vec<Value> = all["tasks"].as_array().expect("tasks").clone();
    assert_eq!(everything.len(), 12);

    let mut seen = Vec::new();
    let mut path = "/tasks/active?limit=5".to_owned();
    loop {
        let (status, page) = app.get(&path, &token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 12, "every page counts everything");
        assert_eq!(page["summary"], json!({"briefings": 0, "videos": 12}));
        let tasks = page["tasks"].as_array().expect("tasks");
        assert!(tasks.len() <= 5);
        seen.extend(tasks.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/tasks/active?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    let ids = |tasks: &[Value]| -> Vec<String> {
        tasks
            .iter()
            .map(|t| t["resource_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        ids(&seen),
        ids(&everything),
        "the same jobs in the same order"
    );
    assert_eq!(ids(&seen).into_iter().collect::<HashSet<_>>().len(), 12);
}
both!(pages_cover_every_job_once_and_count_all_of_them, many_slots);

async fn a_forged_or_foreign_cursor_or_a_bad_limit_is_a_400_with_a_detail(app: &TestApp) {
    for _ in 0..3 {
        app.video_in(1, VideoStatus::Processing).await;
        app.video_in(2, VideoStatus::Processing).await;
    }
    let (_, page) = app.get("/tasks/active?limit=1", &app.token(2)).await;
    let bobs = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let token = app.token(1);
    for (query, detail) in [
        (format!("cursor={bobs}"), "Parâmetro inválido: cursor"),
        ("cursor=aB3xY9".to_owned(), "Parâmetro inválido: cursor"),
        (
            format!("cursor={}", "x".repeat(5_000)),
            "Parâmetro inválido: cursor",
        ),
        (
            "limit=0".to_owned(),
            "Parâmetro inválido: limit (de 1 a 500)",
        ),
        (
            "limit=501".to_owned(),
            "Parâmetro inválido: limit (de 1 a 500)",
        ),
    ] {
        let (status, body) = app.get(&format!("/tasks/active?{query}"), &token).await;
        let shown: String = query.chars().take(40).collect();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{shown}: {body}");
        assert_eq!(body, json!({"detail": detail}), "{shown}");
    }
    let (status, body) = app.get("/tasks/active?limit=many", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .starts_with("Parâmetro inválido")
    );
}
both!(a_forged_or_foreign_cursor_or_a_bad_limit_is_a_400_with_a_detail);

/// A cursor is not signed: a caller who knows the hashids settings can build one at another
/// user's row. It is only a position: the page still holds the caller's own jobs and nothing
/// of the other user's; a cursor carrying the other user's id is the 400.
async fn a_cursor_built_at_another_users_row_pages_only_the_callers_own_jobs(app: &TestApp) {
    let mut alices = HashSet::new();
    let mut bobs = Vec::new();
    for _ in 0..3 {
        let (video, _) = app.video_in(1, VideoStatus::Processing).await;
        alices.insert(app.hash(video.id.get()));
        bobs.push(app.video_in(2, VideoStatus::Processing).await.0);
    }
    let newest_of_bob = bobs.last().expect("a video");
    let at = ActivePosition {
        created_at: newest_of_bob.created_at,
        kind: ResourceKind::Video,
        id: newest_of_bob.id.get(),
    };
    let token = app.token(1);
    let own = app.ids.cursor(UserId(1), &at);
    let (status, page) = app
        .get(&format!("/tasks/active?cursor={own}"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<&str> = page["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["resource_id"].as_str().expect("a hash"))
        .collect();
    assert!(!listed.is_empty(), "{page}");
    assert!(listed.iter().all(|h| alices.contains(*h)), "{page}");

    let bobs_id = app.ids.cursor(UserId(2), &at);
    let (status, body) = app
        .get(&format!("/tasks/active?cursor={bobs_id}"), &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"detail": "Parâmetro inválido: cursor"}));
}
both!(a_cursor_built_at_another_users_row_pages_only_the_callers_own_jobs);
