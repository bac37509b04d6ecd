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

async fn control_characters_in_a_briefing_are_a_422_with_a_detail(app: &TestApp) {
    let token = app.token(1);
    let cases = [
        (
            json!({"title": "Aula\u{0}zero", "duration_minutes": 10}),
            "O título não pode conter caracteres de controle",
        ),
        (
            json!({"title": "Aula\u{1b}[2J", "duration_minutes": 10}),
            "O título não pode conter caracteres de controle",
        ),
        (
            json!({"title": "Aula", "description": "a\u{0}b", "duration_minutes": 10}),
            "A descrição não pode conter caracteres de controle (exceto quebra de linha e tabulação)",
        ),
    ];
    for (body, detail) in cases {
        let (status, answer) = app.post_json("/briefings", &token, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer, json!({"detail": detail}));
    }
    let (status, created) = app
        .post_json(
            "/briefings",
            &token,
            &json!({"title": "Aula", "description": "linha 1\nlinha 2\tfim", "duration_minutes": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["description"], "linha 1\nlinha 2\tfim");
    let (status, list) = app.get("/tasks/active", &token).await;
    assert_eq!(
        (status, list["total"].as_u64()),
        (StatusCode::OK, Some(1)),
        "nothing else was created"
    );
}
both!(control_characters_in_a_briefing_are_a_422_with_a_detail);

/// Titles and descriptions from a generator that favours what breaks things (control
/// characters, NUL, escapes, quotes, non-BMP characters, the length limits): never a 5xx; a
/// briefing accepted reads back as sent (the title trimmed).
async fn generated_briefings_are_never_a_5xx(app: &TestApp) {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let token = app.token(1);
    let piece = prop_oneof![
        any::<char>(),
        prop::char::range('\u{0}', '\u{20}'),
        prop::char::range('\u{7f}', '\u{a0}'),
        prop::sample::select(vec![
            '"',
            '\\',
            '/',
            '\u{2028}',
            '\u{feff}',
            '\u{1F600}',
            'ã',
            ' '
        ]),
    ];
    let text =
        |max: usize| prop::collection::vec(piece.clone(), 0..max).prop_map(String::from_iter);
    let strategy = (text(220), text(80), -2i64..200);
    let mut runner = TestRunner::deterministic();
    for case in 0..150 {
        let (title, description, duration) =
            strategy.new_tree(&mut runner).expect("a case").current();
        let body =
            json!({"title": title, "description": description, "duration_minutes": duration});
        let (status, answer) = app.post_json("/briefings", &token, &body).await;
        assert!(
            !status.is_server_error(),
            "case {case}: {body} -> {status} {answer}"
        );
        assert!(
            [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "case {case}: {body} -> {status} {answer}"
        );
        if status == StatusCode::CREATED {
            let hash = answer["briefing_id"].as_str().expect("hash");
            let (status, read) = app.get(&format!("/briefings/{hash}"), &token).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(read["title"], title.trim(), "case {case}");
            assert_eq!(read["description"], description, "case {case}");
        } else {
            assert!(answer["detail"].is_string(), "case {case}: {answer}");
        }
    }
}
both!(generated_briefings_are_never_a_5xx, lots_of_jobs);

fn lots_of_jobs() -> crate::helpers::Settings {
    crate::helpers::Settings {
        max_active_jobs_per_user: 1_000,
        ..crate::helpers::Settings::default()
    }
}
