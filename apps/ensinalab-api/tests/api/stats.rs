//! `GET /admin/stats`: jobs created, cancelled (by reason), completed and failed per UTC day,
//! from the database, for admin tokens; to anyone else the 404 of an unknown route.

use ensinalab_domain::VideoStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::both;
use crate::helpers::TestApp;

async fn the_days_count_what_happened_today_and_nothing_before(app: &TestApp) {
    let admin = app.admin_token(9);
    // Each `video_in` stores a briefing (options ready: not finished) and a video.
    let (processing, _) = app.video_in(1, VideoStatus::Processing).await;
    app.video_in(1, VideoStatus::Completed).await;
    app.video_in(1, VideoStatus::Failed).await;
    app.video_in(2, VideoStatus::Queued).await;
    let hash = app.hash(processing.id.get());
    let (status, _) = app
        .post(&format!("/videos/{hash}/cancel"), &app.token(1))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.post("/tasks/cancel-all", &app.token(2)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.get("/admin/stats?days=3", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let today = OffsetDateTime::now_utc().date();
    let quiet = |date: time::Date| {
        json!({"date": date.to_string(), "created": 0,
               "cancelled": {"user": 0, "user_all": 0, "timeout": 0},
               "completed": 0, "failed": 0, "cancel_rate": 0.0})
    };
    assert_eq!(
        body,
        json!({"days": [
            quiet(today - Duration::days(2)),
            quiet(today - Duration::days(1)),
            {"date": today.to_string(), "created": 8,
             "cancelled": {"user": 1, "user_all": 1, "timeout": 0},
             "completed": 1, "failed": 1, "cancel_rate": 0.25},
        ]})
    );

    let (status, body) = app.get("/admin/stats", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let days = body["days"].as_array().expect("days");
    assert_eq!(days.len(), 7, "a week by default");
    assert_eq!(days[6]["date"], json!(today.to_string()));
    assert_eq!(days[6]["created"], json!(8));
}
both!(the_days_count_what_happened_today_and_nothing_before);

async fn days_out_of_range_are_a_400_and_non_admins_get_the_unknown_route_404(app: &TestApp) {
    let admin = app.admin_token(9);
    for query in ["days=0", "days=91", "days=-1", "days=seven", "days="] {
        let (status, body) = app.get(&format!("/admin/stats?{query}"), &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("Parâmetro inválido: days")),
            "{query}: {body}"
        );
    }
    let (status, body) = app.get("/admin/stats?days=90", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["days"].as_array().map(Vec::len), Some(90));

    let unknown = json!({"detail": "Rota não encontrada"});
    for token in [app.token(1), "not.a.jwt".to_owned()] {
        let (status, body) = app.get("/admin/stats?days=1", &token).await;
        assert_eq!((status, &body), (StatusCode::NOT_FOUND, &unknown));
    }
    let (status, body): (StatusCode, Value) = app.post("/admin/stats", &admin).await;
    assert_eq!((status, &body), (StatusCode::NOT_FOUND, &unknown));
}
both!(days_out_of_range_are_a_400_and_non_admins_get_the_unknown_route_404);
