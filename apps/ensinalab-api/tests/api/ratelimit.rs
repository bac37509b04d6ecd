//! Rate limits, on both limiters (in-process and Redis; same tests): the IETF fields on every
//! limited response, a 429 with `Retry-After` past the quota, the cancel quota on top of the
//! general one, a refused request with no effect, per-IP limits without a valid token, a
//! bounded `rate_limited` trail, unlimited probes, and failing open when Redis is down.

use std::time::Duration;

use ensinalab_api::config::{RateLimitBackend, RateLimitConfig};
use ensinalab_domain::{UserId, VideoStatus};
use ensinalab_ports::{SecurityEvent, TaskBroker, Videos};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Settings, TestApp};

/// Runs `async fn name(app: &TestApp)` on the in-process limiter and on Redis, with quotas
/// of `general` and `cancel` per minute.
macro_rules! on_both_limiters {
    ($name:ident, $general:expr, $cancel:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn in_process() {
                let app = limited_app(RateLimitBackend::Memory, $general, $cancel).await;
                super::$name(&app).await;
                app.cleanup().await;
            }

            #[tokio::test]
            async fn in_redis() {
                let backend = crate::helpers::redis_limits();
                let app = limited_app(backend, $general, $cancel).await;
                super::$name(&app).await;
                app.cleanup().await;
            }
        }
    };
}

async fn limited_app(backend: RateLimitBackend, per_min: u32, cancel_per_min: u32) -> TestApp {
    let settings = Settings {
        rate_limit: RateLimitConfig {
            per_min,
            cancel_per_min,
            backend,
        },
        ..Settings::default()
    };
    TestApp::spawn_with(Backend::Sqlite, settings).await
}

/// Status, body and the three rate-limit headers of one request.
struct Limited {
    status: StatusCode,
    body: Value,
    policy: Option<String>,
    limit: Option<String>,
    retry_after: Option<u64>,
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> Limited {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app.client.request(method, app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("sent");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (policy, limit) = (header("ratelimit-policy"), header("ratelimit"));
    let retry_after = header("retry-after").map(|v| v.parse().expect("seconds"));
    let status = res.status();
    let body = res.json().await.unwrap_or(Value::Null);
    Limited {
        status,
        body,
        policy,
        limit,
        retry_after,
    }
}

/// `t` of a `"name";r=R;t=T` item.
fn reset_of(limit: &str) -> u64 {
    limit
        .rsplit_once(";t=")
        .and_then(|(_, t)| t.parse().ok())
        .expect("t parameter")
}

/// The security events once at least `n` match `pred` (the trail is written in the
/// background), then a moment more so that extra rows, if any, would show.
async fn events_when(
    app: &TestApp,
    n: usize,
    pred: impl Fn(&SecurityEvent) -> bool,
) -> Vec<SecurityEvent> {
    for _ in 0..50 {
        let events = ensinalab_store::testing::security_events(&app.store)
            .await
            .expect("events");
        if events.iter().filter(|e| pred(e)).count() >= n {
            tokio::time::sleep(Duration::from_millis(200)).await;
            return ensinalab_store::testing::security_events(&app.store)
                .await
                .expect("events")
                .into_iter()
                .filter(|e| pred(e))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} matching security events");
}

async fn past_the_quota_a_user_gets_a_429_with_retry_after_and_the_ietf_fields(app: &TestApp) {
    let token = app.token(1);
    for remaining in [2, 1, 0] {
        let ok = call(app, "GET", "/tasks/active", Some(&token)).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
        assert_eq!(
            ok.policy.as_deref(),
            Some(r#""general";q=3;w=60, "cancel";q=2;w=60"#)
        );
        let limit = ok.limit.expect("RateLimit on a success");
        assert!(
            limit.starts_with(&format!(r#""general";r={remaining};t="#)),
            "{limit}"
        );
        assert!(reset_of(&limit) <= 60, "{limit}");
        assert_eq!(ok.retry_after, None);
    }

    let refused = call(app, "GET", "/tasks/active", Some(&token)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry = refused.retry_after.expect("Retry-After");
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(
        refused.body,
        json!({"detail": format!("Muitas requisições. Tente novamente em {retry} segundos")})
    );
    let limit = refused.limit.expect("RateLimit on a refusal");
    assert!(limit.starts_with(r#""general";r=0;t="#), "{limit}");
    assert!(reset_of(&limit) >= retry, "{limit}");
    assert_eq!(
        refused.policy.as_deref(),
        Some(r#""general";q=3;w=60, "cancel";q=2;w=60"#)
    );

    // Another user has a quota of their own; unknown routes count like any other.
    let other = call(app, "GET", "/nowhere", Some(&app.token(2))).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(other.limit.is_some());

    // The probes and the OpenAPI document are never limited and carry no fields.
    for _ in 0..5 {
        for path in ["/healthz", "/readyz", "/openapi.json"] {
            let probe = call(app, "GET", path, Some(&token)).await;
            assert_eq!(probe.status, StatusCode::OK, "{path}");
            assert_eq!((probe.policy, probe.limit), (None, None), "{path}");
        }
    }
}
on_both_limiters!(
    past_the_quota_a_user_gets_a_429_with_retry_after_and_the_ietf_fields,
    3,
    2
);

async fn the_cancel_quota_applies_on_top_and_a_refused_cancel_has_no_effect(app: &TestApp) {
    let token = app.token(1);
    // A real video task, running in the in-process broker.
    let hash = app.select_video(1, &token).await;
    let id = app.ids.video(&hash).expect("decodes");
    let task = app
        .store
        .video(id)
        .await
        .expect("read")
        .expect("exists")
        .task_id
        .expect("task id");

    // Two cancels use the cancel quota (a 404 counts like any answer).
    let random = app.hash(987_654);
    for remaining in [1, 0] {
        let c = call(
            app,
            "POST",
            &format!("/videos/{random}/cancel"),
            Some(&token),
        )
        .await;
        assert_eq!(c.status, StatusCode::NOT_FOUND);
        let limit = c.limit.expect("RateLimit");
        let items: Vec<&str> = limit.split(", ").collect();
        assert_eq!(items.len(), 2, "{limit}");
        assert!(items[0].starts_with(r#""general";r="#), "{limit}");
        assert!(
            items[1].starts_with(&format!(r#""cancel";r={remaining};t="#)),
            "{limit}"
        );
    }

    // The third cancel, of the real video, is refused before it reaches the use case.
    for path in [
        format!("/videos/{hash}/cancel"),
        "/tasks/cancel-all".to_owned(),
        format!("/briefings/{random}/cancel-generation"),
    ] {
        let refused = call(app, "POST", &path, Some(&token)).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        let limit = refused.limit.expect("RateLimit");
        assert!(limit.starts_with(r#""cancel";r=0;t="#), "{limit}");
        assert!(refused.retry_after.is_some());
    }
    let row = app.video_row(1, id).await;
    assert_ne!(
        row.status,
        VideoStatus::Cancelled,
        "the video was not cancelled"
    );
    let states = app.broker().states(&[task]).await.expect("states");
    assert_ne!(states[0].state.as_str(), "REVOKED", "nothing was revoked");
    assert_eq!(app.broker().running(), 1, "the task still runs");

    // Other routes still answer: the general quota is not spent.
    let (status, body) = app.get(&format!("/videos/{hash}/status"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(body["status"], "cancelled");
    // And no cancel event was written by the refused cancels.
    let events = ensinalab_store::testing::security_events(&app.store)
        .await
        .expect("events");
    assert!(
        !events.iter().any(|e| e.event.as_str() == "video_cancelled"),
        "{events:?}"
    );
}
on_both_limiters!(
    the_cancel_quota_applies_on_top_and_a_refused_cancel_has_no_effect,
    100,
    2
);

async fn no_spelling_of_a_cancel_path_gets_past_the_cancel_quota(app: &TestApp) {
    let token = app.token(1);
    let mut videos = Vec::new();
    for _ in 0..4 {
        let (video, _) = app.video_in(1, VideoStatus::Processing).await;
        videos.push(app.hash(video.id.get()));
    }
    let created = app.create_briefing(&token, "Gestão de Sala de Aula").await;
    let briefing = created["briefing_id"].as_str().expect("hash").to_owned();
    // Percent-encoded, doubled and trailing slashes, mixed case in the escapes: every spelling
    // the router might send to a cancel.
    let mut spellings = vec![
        format!("/videos/{}/%63ancel", videos[0]),
        format!("/briefings/{briefing}/cancel%2Dgeneration"),
    ];
    for _ in 0..4 {
        spellings.extend([
            "/tasks/cancel%2Dall".to_owned(),
            "/tasks/cancel%2dall".to_owned(),
            "/%74asks/cancel-all".to_owned(),
        ]);
    }
    spellings.extend([
        "/tasks/cancel-all".to_owned(),
        "//tasks/cancel-all".to_owned(),
        "/tasks//cancel-all".to_owned(),
        "/tasks/cancel-all/".to_owned(),
        format!("/videos/{}/cancel", videos[1]),
        format!("//videos/{}/cancel", videos[2]),
        format!("/videos/{}/cancel/", videos[3]),
        format!("/videos/{}//cancel", videos[3]),
    ]);
    let mut succeeded = Vec::new();
    for path in &spellings {
        let c = call(app, "POST", path, Some(&token)).await;
        assert!(
            [
                StatusCode::OK,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::NOT_FOUND,
                StatusCode::BAD_REQUEST
            ]
            .contains(&c.status),
            "{path}: {} {}",
            c.status,
            c.body
        );
        if c.status.is_success() {
            succeeded.push(path.clone());
        }
    }
    // The encoded spellings reach the cancel handlers (they are what used to slip past)...
    for encoded in &spellings[..3] {
        assert!(succeeded.contains(encoded), "{encoded}: {succeeded:?}");
    }
    // ...and count: whatever the mix, at most the quota of cancels succeed in the window.
    assert!(
        succeeded.len() <= 10,
        "{} cancels succeeded: {succeeded:?}",
        succeeded.len()
    );
    let events = ensinalab_store::testing::security_events(&app.store)
        .await
        .expect("events");
    let cancels = events
        .iter()
        .filter(|e| e.event.as_str().ends_with("_cancelled"))
        .count();
    assert!(cancels <= 10, "{cancels} cancel events");
}
on_both_limiters!(
    no_spelling_of_a_cancel_path_gets_past_the_cancel_quota,
    1000,
    10
);

async fn without_a_valid_token_requests_are_limited_per_client_ip(app: &TestApp) {
    for _ in 0..3 {
        let bad = call(app, "GET", "/tasks/active", Some("not.a.jwt")).await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
        assert!(bad.limit.is_some());
    }
    let refused = call(app, "GET", "/tasks/active", None).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "token guessing is bounded per IP"
    );
    // A valid token is counted on its user, not on the IP.
    let ok = call(app, "GET", "/tasks/active", Some(&app.token(1))).await;
    assert_eq!(ok.status, StatusCode::OK);

    // Each failed authentication is in the trail, with the IP and never the token.
    let failed = events_when(app, 3, |e| e.event.as_str() == "auth_failed").await;
    assert_eq!(failed.len(), 3);
    for e in &failed {
        assert_eq!(e.outcome.as_str(), "invalid_token");
        assert_eq!(e.user_id, None);
        assert_eq!(e.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.details["route"], "/tasks/active");
        assert!(!e.details.to_string().contains("not.a.jwt"), "{e:?}");
    }
    let limited = events_when(app, 1, |e| e.event.as_str() == "rate_limited").await;
    assert_eq!(limited[0].user_id, None);
    assert_eq!(limited[0].client_ip.as_deref(), Some("127.0.0.1"));
}
on_both_limiters!(
    without_a_valid_token_requests_are_limited_per_client_ip,
    3,
    2
);

async fn a_flood_of_refusals_writes_one_rate_limited_event_per_key_and_window(app: &TestApp) {
    for user in [1, 2] {
        let token = app.token(user);
        assert_eq!(
            call(app, "GET", "/tasks/active", Some(&token)).await.status,
            StatusCode::OK
        );
        for _ in 0..30 {
            let refused = call(app, "GET", "/tasks/active", Some(&token)).await;
            assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    let events = events_when(app, 2, |e| e.event.as_str() == "rate_limited").await;
    let users: Vec<_> = events.iter().map(|e| e.user_id).collect();
    assert_eq!(users, [Some(UserId(1)), Some(UserId(2))], "{events:?}");
    assert_eq!(events[0].outcome.as_str(), "refused");
    assert_eq!(events[0].details["policy"], "general");
    assert_eq!(events[0].details["route"], "/tasks/active");
}
on_both_limiters!(
    a_flood_of_refusals_writes_one_rate_limited_event_per_key_and_window,
    1,
    1
);

#[tokio::test]
async fn with_redis_unreachable_requests_are_let_through() {
    let backend = RateLimitBackend::Redis {
        url: "redis://127.0.0.1:1/0".to_owned(),
        prefix: "unreachable:".to_owned(),
    };
    let app = limited_app(backend, 1, 1).await;
    let token = app.token(1);
    for _ in 0..3 {
        let r = call(&app, "GET", "/tasks/active", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "fail open");
        assert!(r.policy.is_some());
        assert_eq!(r.limit, None, "no count to report");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_gives_every_limited_operation_a_429() {
    let app = TestApp::spawn_with(Backend::Sqlite, Settings::default()).await;
    let (_, doc) = app.send(app.client.get(app.url("/openapi.json"))).await;
    let mut limited = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let refused = &op["responses"]["429"];
            if ensinalab_api::ratelimit::EXEMPT.contains(&path.as_str()) {
                assert!(refused.is_null(), "{method} {path}");
                continue;
            }
            limited += 1;
            assert!(
                refused["headers"]["Retry-After"].is_object(),
                "{method} {path}"
            );
            assert!(
                refused["headers"]["RateLimit"].is_object(),
                "{method} {path}"
            );
            assert_eq!(
                refused["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
        }
    }
    assert!(limited >= 9, "{limited}");
    app.cleanup().await;
}

#[tokio::test]
async fn two_instances_on_one_redis_share_the_limits() {
    let shared = crate::helpers::redis_limits();
    let first = limited_app(shared.clone(), 2, 1).await;
    let second = limited_app(shared, 2, 1).await;
    let token = first.token(1);
    for app in [&first, &second] {
        let ok = call(app, "GET", "/tasks/active", Some(&token)).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    for app in [&first, &second] {
        let refused = call(app, "GET", "/tasks/active", Some(&token)).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    }
    // And the bound on the trail is shared too: one `rate_limited` row in all.
    let rows = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ensinalab_store::testing::security_events(&store)
                .await
                .expect("events")
                .into_iter()
                .filter(|e| e.event.as_str() == "rate_limited")
                .count()
        }
    };
    assert_eq!(rows(&first).await + rows(&second).await, 1);
    first.cleanup().await;
    second.cleanup().await;
}
