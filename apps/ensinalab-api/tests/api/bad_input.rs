//! Bad input is a clear 4xx with `{"detail": ...}`: never a panic, never a 500.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

async fn post_raw(app: &TestApp, body: &str, content_type: Option<&str>) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url("/briefings"))
        .bearer_auth(app.token(1))
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    app.send(req).await
}

async fn malformed_or_invalid_briefings_are_refused_with_a_detail(app: &TestApp) {
    let long_title = "a".repeat(201);
    let cases: Vec<(String, StatusCode, Option<&str>)> = vec![
        ("{".into(), StatusCode::BAD_REQUEST, None),
        ("not json".into(), StatusCode::BAD_REQUEST, None),
        ("".into(), StatusCode::BAD_REQUEST, None),
        (
            json!({"description": "d", "duration_minutes": 10}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"title": "t", "description": "d"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"title": 5, "duration_minutes": 10}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"title": "t", "duration_minutes": "10"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"title": "t", "duration_minutes": 10.5}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!([1, 2]).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"title": "t", "duration_minutes": -5}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("duration_minutes deve estar entre 1 e 180"),
        ),
        (
            json!({"title": "t", "duration_minutes": 0}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("duration_minutes deve estar entre 1 e 180"),
        ),
        (
            json!({"title": "t", "duration_minutes": 1_000_000_000_000_i64}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("duration_minutes deve estar entre 1 e 180"),
        ),
        (
            r#"{"title": "t", "duration_minutes": 99999999999999999999999}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"title": "   ", "duration_minutes": 10}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("O título não pode ser vazio"),
        ),
        (
            json!({"title": long_title, "duration_minutes": 10}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("O título deve ter no máximo 200 caracteres"),
        ),
        (
            json!({"title": "t", "description": "é".repeat(5001), "duration_minutes": 10})
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("A descrição deve ter no máximo 5000 caracteres"),
        ),
    ];
    for (body, status, detail) in cases {
        let (got, response) = post_raw(app, &body, Some("application/json")).await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(got, status, "{shown}: {response}");
        let text = response["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{shown}: {response}"));
        if let Some(detail) = detail {
            assert_eq!(text, detail, "{shown}");
        }
    }
    let (_, list) = app.get("/tasks/active", &app.token(1)).await;
    assert_eq!(list["total"], 0, "nothing was created");
}
both!(malformed_or_invalid_briefings_are_refused_with_a_detail);

async fn a_body_over_the_limit_is_a_413(app: &TestApp) {
    let body = json!({"title": "t", "description": "x".repeat(100_000), "duration_minutes": 10});
    let (status, response) = post_raw(app, &body.to_string(), Some("application/json")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response["detail"]
            .as_str()
            .is_some_and(|d| d.contains("65536")),
        "{response}"
    );
}
both!(a_body_over_the_limit_is_a_413);

async fn a_json_body_without_a_content_type_is_accepted_like_the_seeds_curl(app: &TestApp) {
    let body =
        json!({"title": "Teste de Cancelamento", "description": "...", "duration_minutes": 10});
    let (status, response) = post_raw(app, &body.to_string(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    let (status, response) = post_raw(
        app,
        &body.to_string(),
        Some("application/x-www-form-urlencoded"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    let no_description = json!({"title": "t", "description": null, "duration_minutes": 1});
    let (status, response) = post_raw(app, &no_description.to_string(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    assert_eq!(response["description"], "");
}
both!(a_json_body_without_a_content_type_is_accepted_like_the_seeds_curl);

async fn unknown_routes_are_404_and_wrong_methods_405_with_a_detail(app: &TestApp) {
    let token = app.token(1);
    let (status, body) = app.get("/nope", &token).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Rota não encontrada"})
        )
    );
    let (status, body) = app.get("/videos", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for (method, path) in [
        (reqwest::Method::GET, "/tasks/cancel-all"),
        (reqwest::Method::DELETE, "/tasks/active"),
        (reqwest::Method::PUT, "/briefings"),
        (reqwest::Method::GET, "/videos/abc/cancel"),
        (reqwest::Method::POST, "/healthz"),
    ] {
        let (status, body) = app
            .send(
                app.client
                    .request(method.clone(), app.url(path))
                    .bearer_auth(&token),
            )
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(body, json!({"detail": "Método não permitido"}));
    }
}
both!(unknown_routes_are_404_and_wrong_methods_405_with_a_detail);

async fn path_parameters_of_any_shape_are_a_404(app: &TestApp) {
    let token = app.token(1);
    let long = "a".repeat(5000);
    for id in [
        "0",
        "-1",
        "aB3xY9",
        "%00",
        "%C3%A9",
        "..%2F..%2Fetc",
        long.as_str(),
        &app.hash(1),
    ] {
        let cases = [
            (
                format!("/videos/{id}/status"),
                "Vídeo não encontrado",
                false,
            ),
            (format!("/videos/{id}/cancel"), "Vídeo não encontrado", true),
            (format!("/briefings/{id}"), "Briefing não encontrado", false),
            (
                format!("/briefings/{id}/cancel-generation"),
                "Briefing não encontrado",
                true,
            ),
            (
                format!("/options/{id}/select"),
                "Opção não encontrada",
                true,
            ),
            (format!("/tasks/{id}/status"), "Task não encontrada", false),
        ];
        for (path, detail, post) in cases {
            let (status, body) = if post {
                app.post(&path, &token).await
            } else {
                app.get(&path, &token).await
            };
            let shown: String = path.chars().take(60).collect();
            assert_eq!(status, StatusCode::NOT_FOUND, "{shown}: {body}");
            assert_eq!(body, json!({"detail": detail}), "{shown}");
        }
    }
    let (status, body) = app
        .get("/tasks/550e8400-e29b-41d4-a716-446655440000/status", &token)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Task não encontrada"})
        )
    );
}
both!(path_parameters_of_any_shape_are_a_404);
