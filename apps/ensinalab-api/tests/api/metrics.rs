//! `GET /metrics` on its own listener (`METRICS_ADDR`): what the API did, counted by the
//! change stream and the HTTP layer, under route templates; never on the public port.

use std::time::Duration;

use ensinalab_domain::VideoStatus;
use reqwest::StatusCode;

use crate::both;
use crate::helpers::{Settings, TestApp, generous_limits};

/// The value of sample `line` (name and labels as exposed), if exposed.
fn sample(text: &str, line: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

async fn metrics(app: &TestApp) -> String {
    let (status, text) = app.scrape("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text
}

/// Scrapes until `line` shows `value` (the census is taken by a background job).
async fn until_sampled(app: &TestApp, line: &str, value: f64) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics(app).await;
        if sample(&text, line) == Some(value) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{line} never became {value} in\n{text}");
}

async fn what_the_api_did_is_counted_by_route_template_on_the_metrics_listener_only(app: &TestApp) {
    let token = app.token(1);
    let (video, _) = app.video_in(1, VideoStatus::Processing).await;
    until_sampled(
        app,
        r#"ensinalab_jobs_in_flight{kind="video",status="processing"}"#,
        1.0,
    )
    .await;

    app.create_briefing(&token, "Gestão de Sala de Aula").await;
    let hash = app.hash(video.id.get());
    let (status, _) = app.post(&format!("/videos/{hash}/cancel"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/no/such/route/sekrit-path", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/tasks/active", "not.a.jwt").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let text = until_sampled(
        app,
        r#"ensinalab_jobs_in_flight{kind="video",status="processing"}"#,
        0.0,
    )
    .await;
    let expected = [
        (r#"ensinalab_jobs_created_total{kind="briefing"}"#, 1.0),
        (
            r#"ensinalab_cancellations_total{kind="video",reason="user"}"#,
            1.0,
        ),
        (
            r#"ensinalab_jobs_finished_total{kind="video",status="cancelled"}"#,
            1.0,
        ),
        (
            r#"ensinalab_http_requests_total{route="/videos/{video_hash}/cancel",method="POST",status="200"}"#,
            1.0,
        ),
        (
            r#"ensinalab_http_request_duration_seconds_count{route="/videos/{video_hash}/cancel",method="POST"}"#,
            1.0,
        ),
        (
            r#"ensinalab_http_requests_total{route="/briefings",method="POST",status="201"}"#,
            1.0,
        ),
        (
            r#"ensinalab_http_requests_total{route="unmatched",method="GET",status="404"}"#,
            1.0,
        ),
        (
            r#"ensinalab_http_requests_total{route="/tasks/active",method="GET",status="401"}"#,
            1.0,
        ),
        ("ensinalab_auth_failures_total", 1.0),
        ("ensinalab_revoke_outbox_pending", 0.0),
        ("ensinalab_event_streams", 0.0),
    ];
    for (line, value) in expected {
        assert_eq!(sample(&text, line), Some(value), "{line} in\n{text}");
    }
    let revokes: f64 = text
        .lines()
        .filter(|l| l.starts_with("ensinalab_revokes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(revokes, 1.0, "one cancel, one revoke:\n{text}");
    assert!(!text.contains("sekrit"), "a raw path in a label:\n{text}");
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));

    // The public port has no metrics; the metrics listener has nothing else.
    let (status, _) = app.get("/metrics", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.scrape("/tasks/active").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both!(what_the_api_did_is_counted_by_route_template_on_the_metrics_listener_only);

fn one_cancel_a_minute() -> Settings {
    Settings {
        rate_limit: ensinalab_api::config::RateLimitConfig {
            cancel_per_min: 1,
            ..generous_limits()
        },
        ..Settings::default()
    }
}

async fn refusals_of_the_cancel_quota_are_counted_by_policy(app: &TestApp) {
    let token = app.token(1);
    for expected in [StatusCode::NOT_FOUND, StatusCode::TOO_MANY_REQUESTS] {
        let (status, _) = app.post("/videos/nope/cancel", &token).await;
        assert_eq!(status, expected);
    }
    let text = metrics(app).await;
    assert_eq!(
        sample(&text, r#"ensinalab_rate_limited_total{policy="cancel"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"ensinalab_http_requests_total{route="/videos/{video_hash}/cancel",method="POST",status="429"}"#
        ),
        Some(1.0),
        "{text}"
    );
}
both!(
    refusals_of_the_cancel_quota_are_counted_by_policy,
    one_cancel_a_minute
);
