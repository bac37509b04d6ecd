//! JWT: every way a token can be wrong is the same 401 with `WWW-Authenticate: Bearer`.

use ensinalab_api::error::UNAUTHORIZED;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::{SECRET, Settings, TestApp};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// `header.payload.signature` with an HMAC-SHA256 signature made with the real secret.
fn hmac_signed(header: &str, payload: &str) -> String {
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

/// A token whose header claims `alg`, signed with HMAC and the secret.
fn confused(alg: &str, payload: &str) -> String {
    hmac_signed(
        &b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
        payload,
    )
}

async fn assert_refused(app: &TestApp, auth: Option<String>, case: &str) {
    let mut req = app.client.get(app.url("/tasks/active"));
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    let res = req.send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{case}");
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer"),
        "{case}"
    );
    let body: Value = res.json().await.expect("json body");
    assert_eq!(body, json!({"detail": UNAUTHORIZED}), "{case}");
}

async fn every_bad_token_is_the_same_401(app: &TestApp) {
    let exp = now() + 600;
    let good = json!({"sub": "1", "exp": exp});
    let valid = sign(Algorithm::HS256, SECRET, &good);
    let (_, payload_and_sig) = valid.split_once('.').expect("three parts");
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let (payload, _) = payload_and_sig.split_once('.').expect("three parts");
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("alg none", Some(format!("Bearer {none_header}.{payload}."))),
        (
            "HS384",
            Some(format!("Bearer {}", sign(Algorithm::HS384, SECRET, &good))),
        ),
        (
            "HS512",
            Some(format!("Bearer {}", sign(Algorithm::HS512, SECRET, &good))),
        ),
        // Algorithm confusion: an asymmetric `alg` whose "signature" is an HMAC made with the
        // secret, as an attacker would if the server let the header pick the algorithm.
        (
            "RS256 header",
            Some(format!("Bearer {}", confused("RS256", payload))),
        ),
        (
            "ES256 header",
            Some(format!("Bearer {}", confused("ES256", payload))),
        ),
        (
            "PS256 header",
            Some(format!("Bearer {}", confused("PS256", payload))),
        ),
        (
            "EdDSA header",
            Some(format!("Bearer {}", confused("EdDSA", payload))),
        ),
        (
            "malformed header JSON",
            Some(format!(
                "Bearer {}",
                hmac_signed(&b64url(br#"{"alg":"HS256""#), payload)
            )),
        ),
        (
            "header without alg",
            Some(format!(
                "Bearer {}",
                hmac_signed(&b64url(br#"{"typ":"JWT"}"#), payload)
            )),
        ),
        (
            "header not base64",
            Some(format!("Bearer {}", hmac_signed("%%%", payload))),
        ),
        ("two parts", Some(format!("Bearer {none_header}.{payload}"))),
        (
            "exp in the past beyond the leeway",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": now() - 30})
                )
            )),
        ),
        (
            "sub null",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, SECRET, &json!({"sub": null, "exp": exp}))
            )),
        ),
        (
            "sub zero",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, SECRET, &json!({"sub": "0", "exp": exp}))
            )),
        ),
        (
            "exp not a number",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": "tomorrow"})
                )
            )),
        ),
        (
            "wrong secret",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, "another-secret-another-secret-xx", &good)
            )),
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, SECRET, &json!({"sub": "1"}))
            )),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": now() - 60})
                )
            )),
        ),
        (
            "nbf in the future",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": exp, "nbf": now() + 300})
                )
            )),
        ),
        (
            "no sub",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, SECRET, &json!({"exp": exp}))
            )),
        ),
        (
            "non-numeric sub",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, SECRET, &json!({"sub": "abc", "exp": exp}))
            )),
        ),
        (
            "negative sub",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, SECRET, &json!({"sub": -3, "exp": exp}))
            )),
        ),
        (
            "fractional sub",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, SECRET, &json!({"sub": 1.5, "exp": exp}))
            )),
        ),
        (
            "oversized token",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": exp, "pad": "x".repeat(9000)})
                )
            )),
        ),
        (
            "tampered signature",
            Some(format!("Bearer {}x", &valid[..valid.len() - 1])),
        ),
    ];
    let attempts = cases.len();
    for (case, header) in cases {
        assert_refused(app, header, case).await;
    }

    // Each attempt is in the security trail (written in the background) with the client IP,
    // and no token, nor any part of one, is in it: every token here starts with `eyJ`.
    let mut failed = Vec::new();
    for _ in 0..100 {
        failed = ensinalab_store::testing::security_events(&app.store)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.event.as_str() == "auth_failed")
            .collect();
        if failed.len() >= attempts {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(failed.len(), attempts);
    for e in &failed {
        assert_eq!(e.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.user_id, None);
        assert!(!e.details.to_string().contains("eyJ"), "{e:?}");
    }
    let outcomes: std::collections::BTreeSet<&str> =
        failed.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "bad_subject",
            "invalid_token",
            "missing_token",
            "token_too_long"
        ]
        .into()
    );
}
both!(every_bad_token_is_the_same_401);

async fn sub_may_be_a_number_or_a_decimal_string(app: &TestApp) {
    let exp = now() + 600;
    for sub in [json!(7), json!("7")] {
        let token = sign(Algorithm::HS256, SECRET, &json!({"sub": sub, "exp": exp}));
        let (status, body) = app.get("/tasks/active", &token).await;
        assert_eq!(status, StatusCode::OK, "{sub}: {body}");
        assert_eq!(body["total"], 0);
    }
}
both!(sub_may_be_a_number_or_a_decimal_string);

async fn every_route_but_health_and_openapi_requires_a_token(app: &TestApp) {
    let hash = app.hash(1);
    let task = "550e8400-e29b-41d4-a716-446655440000";
    let routes = [
        ("GET", "/tasks/active".to_owned()),
        ("POST", "/tasks/cancel-all".to_owned()),
        ("GET", format!("/tasks/{task}/status")),
        ("POST", "/briefings".to_owned()),
        ("GET", format!("/briefings/{hash}")),
        ("POST", format!("/briefings/{hash}/cancel-generation")),
        ("POST", format!("/options/{hash}/select")),
        ("GET", format!("/videos/{hash}/status")),
        ("POST", format!("/videos/{hash}/cancel")),
    ];
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let res = app
            .client
            .request(method, app.url(&path))
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let res = app.client.get(app.url(path)).send().await.expect("sent");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
}
both!(every_route_but_health_and_openapi_requires_a_token);

fn issuer_audience() -> Settings {
    Settings {
        jwt_issuer_audience: Some(("ensinalab".to_owned(), "ensinalab-api".to_owned())),
        ..Settings::default()
    }
}

async fn with_an_issuer_and_audience_configured_both_must_match(app: &TestApp) {
    let exp = now() + 600;
    let (status, body) = app.get("/tasks/active", &app.token(1)).await;
    assert_eq!(status, StatusCode::OK, "the app's own token: {body}");
    let right = json!({"sub": "1", "exp": exp, "iss": "ensinalab", "aud": "ensinalab-api"});
    let (status, _) = app
        .get("/tasks/active", &sign(Algorithm::HS256, SECRET, &right))
        .await;
    assert_eq!(status, StatusCode::OK);
    let cases = [
        (
            "wrong iss",
            json!({"sub": "1", "exp": exp, "iss": "other", "aud": "ensinalab-api"}),
        ),
        (
            "wrong aud",
            json!({"sub": "1", "exp": exp, "iss": "ensinalab", "aud": "other"}),
        ),
        (
            "no iss",
            json!({"sub": "1", "exp": exp, "aud": "ensinalab-api"}),
        ),
        (
            "no aud",
            json!({"sub": "1", "exp": exp, "iss": "ensinalab"}),
        ),
    ];
    for (case, claims) in cases {
        let token = sign(Algorithm::HS256, SECRET, &claims);
        assert_refused(app, Some(format!("Bearer {token}")), case).await;
    }
}
both!(
    with_an_issuer_and_audience_configured_both_must_match,
    issuer_audience
);

async fn a_token_valid_within_the_leeway_is_accepted(app: &TestApp) {
    // JWT_LEEWAY_SECS defaults to 5: a clock a little behind or ahead is tolerated.
    let claims = json!({"sub": "1", "exp": now() - 2, "nbf": now() + 2});
    let (status, body) = app
        .get("/tasks/active", &sign(Algorithm::HS256, SECRET, &claims))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
both!(a_token_valid_within_the_leeway_is_accepted);
