//! `GET /tasks/events`: the snapshot, the changes, reconnecting, privacy and limits; and the
//! dashboard page that reads it.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::both;
use crate::helpers::{Backend, Settings, TestApp};

/// The active list without its clock-dependent fields, to compare two reads of it.
fn without_clock(mut list: Value) -> Value {
    for task in list["tasks"].as_array_mut().expect("tasks") {
        task.as_object_mut().expect("task").remove("elapsed_time");
    }
    list
}

async fn the_stream_opens_with_the_snapshot_of_the_active_list(app: &TestApp) {
    let token = app.token(1);
    app.create_briefing(&token, "Primeiro").await;
    let (video, _) = app
        .video_in(1, ensinalab_domain::VideoStatus::Processing)
        .await;
    let mut sse = app.stream(&token, None).await.expect("stream");
    let first = sse.expect().await;
    let (status, list) = app.get("/tasks/active", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first.event, "snapshot");
    assert!(!first.id.is_empty());
    assert_eq!(first.data["total"], 2, "{}", first.data);
    assert_eq!(without_clock(first.data.clone()), without_clock(list));
    let keys: BTreeSet<_> = first.data["tasks"][0]
        .as_object()
        .expect("task")
        .keys()
        .collect();
    assert!(keys.contains(&"elapsed_time".to_owned()));
    assert!(
        first.data["tasks"]
            .to_string()
            .contains(&app.hash(video.id.get()))
    );
}
both!(the_stream_opens_with_the_snapshot_of_the_active_list);

fn rfc3339_utc(at: &Value) -> bool {
    at.as_str().is_some_and(|s| {
        s.ends_with('Z')
            && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_ok()
    })
}

async fn a_briefings_life_arrives_as_change_events(app: &TestApp) {
    let token = app.token(1);
    let mut sse = app.stream(&token, None).await.expect("stream");
    assert_eq!(sse.expect().await.event, "snapshot");
    let created = app.create_briefing(&token, "Ao vivo").await;
    let hash = created["briefing_id"].as_str().expect("hash");
    let task = created["task_id"].as_str().expect("task");
    let e = sse.expect().await;
    assert_eq!(e.event, "change");
    assert_eq!(e.data["change"], "created");
    assert_eq!(e.data["resource_type"], "briefing");
    assert_eq!(e.data["resource_id"], hash);
    assert_eq!(e.data["task_id"], task);
    assert_eq!(e.data["status"], "processing");
    assert!(rfc3339_utc(&e.data["at"]), "{}", e.data);
    assert!(
        e.data.get("progress").is_none(),
        "briefings have no progress"
    );
    let ready = sse.until(|d| d["change"] == "options_ready").await;
    assert_eq!(ready.data["status"], "options_ready");
    assert_eq!(ready.data["resource_id"], hash);
    assert_ne!(ready.id, e.id, "every event has its own id");
}
both!(a_briefings_life_arrives_as_change_events);

async fn a_video_streams_its_progress_then_its_cancel_and_revoke(app: &TestApp) {
    let token = app.token(1);
    let mut sse = app.stream(&token, None).await.expect("stream");
    sse.expect().await;
    let created = app.create_briefing(&token, "Vídeo ao vivo").await;
    let ready = app
        .wait_briefing(
            &token,
            created["briefing_id"].as_str().expect("hash"),
            |b| b["status"] == "options_ready",
        )
        .await;
    let option = ready["options"][0]["option_id"].as_str().expect("option");
    let (status, video) = app.post(&format!("/options/{option}/select"), &token).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let hash = video["video_id"].as_str().expect("hash").to_owned();
    let progress = sse
        .until(|d| {
            d["resource_id"] == hash.as_str()
                && d["change"] == "progress"
                && d["progress"].as_f64().is_some_and(|p| p > 0.0)
        })
        .await;
    assert_eq!(progress.data["resource_type"], "video");
    assert_eq!(progress.data["status"], "processing");

    let (status, cancel) = app.post(&format!("/videos/{hash}/cancel"), &token).await;
    assert_eq!(status, StatusCode::OK, "{cancel}");
    let cancelled = sse.until(|d| d["change"] == "cancelled").await;
    assert_eq!(cancelled.data["reason"], "user");
    assert_eq!(cancelled.data["status"], "cancelled");
    assert_eq!(cancelled.data["resource_id"], hash.as_str());
    let revoke = sse.until(|d| d["change"] == "revoke").await;
    assert_eq!(
        revoke.data["revoke"], cancel["revoke"],
        "the cancel response's word"
    );
    assert!(revoke.data.get("reason").is_none());
}
both!(a_video_streams_its_progress_then_its_cancel_and_revoke);

async fn cancel_all_is_streamed_with_its_reason(app: &TestApp) {
    let token = app.token(1);
    let mut sse = app.stream(&token, None).await.expect("stream");
    sse.expect().await;
    for i in 0..3 {
        app.stuck_briefing(1, &format!("Parado {i}")).await;
    }
    let (status, _) = app.post("/tasks/cancel-all", &token).await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        let e = sse.until(|d| d["change"] == "cancelled").await;
        assert_eq!(e.data["reason"], "user_all");
    }
}
both!(cancel_all_is_streamed_with_its_reason);

/// Two users, many jobs each, an admin among them: every event of a stream is of its own
/// user's jobs.
async fn no_event_crosses_from_one_user_to_another(app: &TestApp) {
    let (alice, admin) = (app.token(1), app.admin_token(2));
    let mut streams = [
        app.stream(&alice, None).await.expect("stream"),
        app.stream(&admin, None).await.expect("stream"),
    ];
    for s in &mut streams {
        assert_eq!(s.expect().await.event, "snapshot");
    }
    let mut own: [BTreeSet<String>; 2] = Default::default();
    for i in 0..6 {
        for (n, token) in [&alice, &admin].into_iter().enumerate() {
            let b = app.create_briefing(token, &format!("Job {n}-{i}")).await;
            own[n].insert(b["briefing_id"].as_str().expect("hash").to_owned());
        }
    }
    for token in [&alice, &admin] {
        let (status, _) = app.post("/tasks/cancel-all", token).await;
        assert_eq!(status, StatusCode::OK);
    }
    for (n, s) in streams.iter_mut().enumerate() {
        let mut seen = BTreeSet::new();
        let mut cancelled = 0;
        while cancelled < own[n].len() {
            let e = s.expect().await;
            let id = e.data["resource_id"]
                .as_str()
                .expect("resource_id")
                .to_owned();
            assert!(own[n].contains(&id), "stream {n} got {id}: {}", e.data);
            cancelled += usize::from(e.data["change"] == "cancelled");
            seen.insert(id);
        }
        assert_eq!(seen, own[n]);
    }
}
both!(no_event_crosses_from_one_user_to_another);

async fn a_reconnect_resumes_after_its_last_event(app: &TestApp) {
    let token = app.token(1);
    let mut sse = app.stream(&token, None).await.expect("stream");
    sse.expect().await;
    let first = app.create_briefing(&token, "Antes").await;
    let seen = sse.until(|d| d["change"] == "created").await;
    assert_eq!(seen.data["resource_id"], first["briefing_id"]);
    drop(sse);
    let second = app.create_briefing(&token, "Durante a queda").await;
    let mut again = app.stream(&token, Some(&seen.id)).await.expect("stream");
    loop {
        let next = again.expect().await;
        assert_eq!(next.event, "change", "resumed, no snapshot");
        assert_ne!(next.id, seen.id, "nothing twice");
        if next.data["change"] == "created" {
            assert_eq!(next.data["resource_id"], second["briefing_id"]);
            break;
        }
    }
}
both!(a_reconnect_resumes_after_its_last_event);

async fn an_unknown_last_event_id_starts_again_with_a_snapshot(app: &TestApp) {
    let token = app.token(1);
    for last in ["garbage", "00000000000000ff-3", ""] {
        let mut sse = app.stream(&token, Some(last)).await.expect("stream");
        assert_eq!(sse.expect().await.event, "snapshot", "{last:?}");
    }
    let other = app.token(2);
    let mut theirs = app.stream(&other, None).await.expect("stream");
    let their_id = theirs.expect().await.id;
    let mut mine = app.stream(&token, Some(&their_id)).await.expect("stream");
    assert_eq!(mine.expect().await.event, "snapshot", "another user's id");
}
both!(an_unknown_last_event_id_starts_again_with_a_snapshot);

async fn the_stream_needs_a_token_in_the_header(app: &TestApp) {
    let token = app.token(1);
    let (status, body) = app.send(app.client.get(app.url("/tasks/events"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].is_string());
    for query in [format!("?token={token}"), format!("?access_token={token}")] {
        let (status, _) = app
            .send(app.client.get(app.url(&format!("/tasks/events{query}"))))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{query}");
    }
    let (status, _) = app.get("/tasks/events", "not-a-jwt").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both!(the_stream_needs_a_token_in_the_header);

async fn a_user_holds_at_most_five_streams(app: &TestApp) {
    let token = app.token(1);
    let mut open = Vec::new();
    for _ in 0..5 {
        let mut s = app.stream(&token, None).await.expect("stream");
        s.expect().await;
        open.push(s);
    }
    let Err((status, body)) = app.stream(&token, None).await else {
        panic!("a sixth stream was opened");
    };
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body["detail"],
        "Limite de 5 conexões ao vivo abertas atingido. Feche uma aba ou aguarde"
    );
    let other = app.token(2);
    assert!(
        app.stream(&other, None).await.is_ok(),
        "the limit is per user"
    );
    // A closed stream gives its place back once the server sees the client gone: at its next
    // write, a heartbeat at the latest (one second here).
    drop(open.pop());
    app.stream_once_free(&token, Duration::from_secs(10))
        .await
        .expect("the closed stream's place was never given back");
}
both!(a_user_holds_at_most_five_streams, quick_heartbeat);

fn quick_heartbeat() -> Settings {
    Settings {
        live_heartbeat: Duration::from_secs(1),
        ..Settings::default()
    }
}

async fn an_idle_stream_sends_comment_lines(app: &TestApp) {
    let token = app.token(1);
    let mut sse = app.stream(&token, None).await.expect("stream");
    sse.expect().await;
    // The heartbeat is one second here: the next event comes after comment lines.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.create_briefing(&token, "Depois do silêncio").await;
    sse.until(|d| d["change"] == "created").await;
    assert!(sse.comments >= 1, "no comment line");
}
both!(an_idle_stream_sends_comment_lines, quick_heartbeat);

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_policy_in_portuguese() {
    let app = TestApp::spawn_with(Backend::Sqlite, Settings::default()).await;
    let res = app.client.get(app.url("/")).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .expect("a CSP")
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = res.text().await.expect("body");
    assert!(html.contains(r#"<html lang="pt-BR">"#));
    assert!(html.contains("Cancelar tudo") && html.contains("Confirmar"));
    for (path, kind) in [
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let res = app.client.get(app.url(path)).send().await.expect("sent");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let ct = res.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        let body = res.text().await.expect("body");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path}: nothing from elsewhere"
        );
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "nothing inline"
    );
}

#[tokio::test]
async fn opening_a_stream_counts_against_the_rate_limit_like_any_request() {
    let settings = Settings {
        rate_limit: ensinalab_api::config::RateLimitConfig {
            per_min: 2,
            cancel_per_min: 2,
            backend: ensinalab_api::config::RateLimitBackend::Memory,
        },
        ..Settings::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, settings).await;
    let token = app.token(1);
    let _first = app.stream(&token, None).await.expect("first stream");
    let (status, _) = app.get("/tasks/active", &token).await;
    assert_eq!(status, StatusCode::OK);
    let res = app
        .client
        .get(app.url("/tasks/events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.expect("json");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("Muitas requisições")),
        "{body}"
    );
}
