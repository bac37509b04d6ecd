//! `GET /admin/security-events`: the trail for admin tokens, filtered and keyset-paginated; to
//! anyone else exactly the 404 of an unknown route.

use std::time::Duration;

use ensinalab_domain::VideoStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

/// Status, body and every header but the date and the rate-limit count.
async fn answer(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app.client.request(method, app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("sent");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn anyone_but_an_admin_gets_the_unknown_route_404(app: &TestApp) {
    let user = app.token(1);
    let cases = [
        ("GET", None),
        ("GET", Some("not.a.jwt".to_owned())),
        ("GET", Some(user.clone())),
        ("POST", Some(user.clone())),
        ("DELETE", Some(app.admin_token(9))),
    ];
    for (method, token) in cases {
        let admin = answer(
            app,
            method,
            "/admin/security-events?limit=5",
            token.as_deref(),
        )
        .await;
        let unknown = answer(app, method, "/admin/nothing-here", token.as_deref()).await;
        assert_eq!(admin, unknown, "{method} {token:?}");
        assert_eq!(
            admin,
            (404, json!({"detail": "Rota não encontrada"})),
            "{method}"
        );
    }
    // The user's GET is in the trail (written in the background), invisible to them.
    let mut page = Value::Null;
    for _ in 0..40 {
        let (status, body) = app
            .get(
                "/admin/security-events?event=admin_refused",
                &app.admin_token(9),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        page = body;
        if page["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let users: Vec<&Value> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["user_id"])
        .collect();
    assert_eq!(users, [&json!(1)], "{page}");
}
both!(anyone_but_an_admin_gets_the_unknown_route_404);

/// A user who keeps knocking on the admin routes leaves one `admin_refused` row per window,
/// not one per request (each is still a 404 and a log line).
async fn refused_admin_access_leaves_one_row_per_user_per_window(app: &TestApp) {
    let user = app.token(3);
    for path in ["/admin/stats", "/admin/security-events"].repeat(5) {
        let (status, _) = app.get(path, &user).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let admin = app.admin_token(9);
    let rows = || async {
        let (status, page) = app
            .get(
                "/admin/security-events?event=admin_refused&user_id=3",
                &admin,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        page["events"].as_array().expect("events").len()
    };
    for _ in 0..40 {
        if rows().await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The rows are written in the background: give any extra one time to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rows().await, 1);
}
both!(refused_admin_access_leaves_one_row_per_user_per_window);

async fn an_admin_filters_and_pages_through_the_trail(app: &TestApp) {
    let admin = app.admin_token(9);
    // Two refused cancels of user 2 and one cancel of user 1, through the API.
    let (video, _) = app.video_in(1, VideoStatus::Processing).await;
    let video_hash = app.hash(video.id.get());
    let (status, _) = app
        .post(&format!("/videos/{video_hash}/cancel"), &app.token(2))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            &format!("/videos/{}/cancel", app.hash(424_242)),
            &app.token(2),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(&format!("/videos/{video_hash}/cancel"), &app.token(1))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, all) = app.get("/admin/security-events", &admin).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let events = all["events"].as_array().expect("events");
    assert_eq!(events.len(), 3, "{all}");
    assert_eq!(all["next"], Value::Null);
    let newest = &events[0];
    assert_eq!(newest["event"], "video_cancelled");
    assert_eq!(newest["user_id"], 1);
    assert_eq!(newest["resource_type"], "video");
    assert_eq!(newest["resource_id"], video_hash);
    assert!(newest["created_at"].as_str().expect("time").ends_with('Z'));
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // By user and event.
    let (_, by_user) = app
        .get(
            "/admin/security-events?user_id=2&event=cancel_refused",
            &admin,
        )
        .await;
    let outcomes: Vec<&Value> = by_user["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["outcome"])
        .collect();
    assert_eq!(outcomes, [&json!("not_found"), &json!("not_owner")]);

    // Keyset pages of one: every event once, in order, then no cursor.
    let mut seen = Vec::new();
    let mut path = "/admin/security-events?limit=1".to_owned();
    loop {
        let (status, page) = app.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["id"].clone()),
        );
        match page["next"].as_str() {
            Some(cursor) => path = format!("/admin/security-events?limit=1&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        events.iter().map(|e| e["id"].clone()).collect::<Vec<_>>()
    );

    // A time range: everything is after an hour ago, nothing before it.
    let hour_ago = time::OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let stamp = hour_ago
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let (_, since) = app
        .get(&format!("/admin/security-events?since={stamp}"), &admin)
        .await;
    assert_eq!(since["events"].as_array().map(Vec::len), Some(3));
    let (_, until) = app
        .get(&format!("/admin/security-events?until={stamp}"), &admin)
        .await;
    assert_eq!(until["events"], json!([]));
}
both!(an_admin_filters_and_pages_through_the_trail);

async fn bad_filters_are_a_400_for_an_admin(app: &TestApp) {
    let admin = app.admin_token(9);
    for query in [
        "limit=0",
        "limit=201",
        "limit=x",
        "after=abc",
        "after=-1",
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        "user_id=me",
    ] {
        let (status, body) = app
            .get(&format!("/admin/security-events?{query}"), &admin)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .expect("detail")
                .starts_with("Parâmetro inválido")
        );
    }
}
both!(bad_filters_are_a_400_for_an_admin);
