//! The ownership matrix: user B tries every route against user A's ids and gets exactly what
//! a random id gets (404, same body), and nothing of A's changes.

use ensinalab_domain::{BriefingStatus, UserId, VideoStatus};
use ensinalab_ports::Briefings;
use reqwest::StatusCode;

use crate::both;
use crate::helpers::TestApp;

async fn another_user_gets_the_same_404_as_for_a_random_id_on_every_route(app: &TestApp) {
    let (ready, options) = app.ready_briefing(1).await;
    let (stuck, stuck_task) = app.stuck_briefing(1, "Em processamento").await;
    let (video, video_task) = app.video_in(1, VideoStatus::Processing).await;
    let (a_active_status, a_active) = app.get("/tasks/active", &app.token(1)).await;
    assert_eq!(a_active_status, StatusCode::OK);
    assert_eq!(a_active["total"], 2);

    let random = app.hash(987_654);
    let random_task = "123e4567-e89b-42d3-a456-426614174000";
    // (method, A's path, the same route with a random id)
    let matrix = [
        (
            "GET",
            format!("/briefings/{}", app.hash(ready.get())),
            format!("/briefings/{random}"),
        ),
        (
            "GET",
            format!("/briefings/{}", app.hash(stuck.id.get())),
            format!("/briefings/{random}"),
        ),
        (
            "POST",
            format!("/briefings/{}/cancel-generation", app.hash(stuck.id.get())),
            format!("/briefings/{random}/cancel-generation"),
        ),
        (
            "POST",
            format!("/options/{}/select", app.hash(options[0].get())),
            format!("/options/{random}/select"),
        ),
        (
            "GET",
            format!("/videos/{}/status", app.hash(video.id.get())),
            format!("/videos/{random}/status"),
        ),
        (
            "POST",
            format!("/videos/{}/cancel", app.hash(video.id.get())),
            format!("/videos/{random}/cancel"),
        ),
        (
            "GET",
            format!("/tasks/{stuck_task}/status"),
            format!("/tasks/{random_task}/status"),
        ),
        (
            "GET",
            format!("/tasks/{video_task}/status"),
            format!("/tasks/{random_task}/status"),
        ),
    ];
    let b = app.token(2);
    for (method, theirs, random) in &matrix {
        let call = |path: String| {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            app.send(app.client.request(method, app.url(&path)).bearer_auth(&b))
        };
        let (status, body) = call(theirs.clone()).await;
        let (random_status, random_body) = call(random.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {theirs}: {body}");
        assert_eq!(
            (status, &body),
            (random_status, &random_body),
            "{method} {theirs}"
        );
        assert!(body["detail"].is_string());
    }

    let (status, body) = app.get("/tasks/active", &b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 0);
    let (status, body) = app.post("/tasks/cancel-all", &b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["cancelled"]["total"], 0);

    // Nothing of A's moved, and no video was made from A's option.
    assert_eq!(
        app.video_row(1, video.id).await.status,
        VideoStatus::Processing
    );
    let (row, _) = app
        .store
        .briefing(UserId(1), stuck.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(row.status, BriefingStatus::Processing);
    let (row, _) = app
        .store
        .briefing(UserId(1), ready)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(row.status, BriefingStatus::OptionsReady);
    let (_, after) = app.get("/tasks/active", &app.token(1)).await;
    assert_eq!(after["total"], a_active["total"]);
    assert_eq!(after["tasks"].as_array().map(Vec::len), Some(2));
    assert_eq!(app.broker().running(), 0, "nothing was dispatched");

    // B's cancel attempts on A's resources are in the trail as such.
    let events = ensinalab_store::testing::security_events(&app.store)
        .await
        .expect("events");
    let attempts: Vec<_> = events
        .iter()
        .filter(|e| e.user_id == Some(UserId(2)) && e.event == "cancel_refused")
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(
        attempts,
        ["not_owner", "not_found", "not_owner", "not_found"]
    );
}
both!(another_user_gets_the_same_404_as_for_a_random_id_on_every_route);
