//! What an attacker or a broken client can do to the server, bounded: response headers that
//! forbid sniffing and caching, a client that trickles its body, a forwarded address from
//! an untrusted peer, a bounded `auth_failed` row.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ensinalab_api::config::{RateLimitBackend, RateLimitConfig, TrustedProxies};
use reqwest::StatusCode;

use crate::helpers::{Backend, Settings, TestApp};

#[tokio::test]
async fn every_response_forbids_sniffing_and_caching() {
    let app = TestApp::spawn_with(Backend::Sqlite, Settings::default()).await;
    let token = app.token(1);
    let requests = [
        app.client.get(app.url("/healthz")),
        app.client.get(app.url("/tasks/active")).bearer_auth(&token),
        app.client.get(app.url("/tasks/active")),
        app.client.get(app.url("/no/such/route")),
        app.client.get(app.url("/openapi.json")),
        app.client
            .post(app.url("/briefings"))
            .bearer_auth(&token)
            .body("{"),
    ];
    for req in requests {
        let res = req.send().await.expect("sent");
        let url = res.url().clone();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{url}"
        );
        assert_eq!(
            header("cache-control").as_deref(),
            Some("no-store"),
            "{url}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_client_that_trickles_its_body_is_answered_408_and_let_go() {
    let settings = Settings {
        request_timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, settings).await;
    let token = app.token(1);
    let address = app.address.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut tcp = TcpStream::connect(address).expect("connects");
        tcp.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let head = format!(
            "POST /briefings HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"title\": "
        );
        tcp.write_all(head.as_bytes()).expect("head sent");
        // ...and the rest of the body never comes.
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        answer
    })
    .await
    .expect("joined");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("Tempo esgotado"), "{answer}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    // Untrusted peer: X-Forwarded-For is the client's own text and is ignored.
    let app = TestApp::spawn_with(Backend::Sqlite, Settings::default()).await;
    for _ in 0..2 {
        let (status, _) = app
            .send(
                app.client
                    .get(app.url("/tasks/active"))
                    .header("X-Forwarded-For", "203.0.113.99"),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let ips = auth_failure_ips(&app).await;
    assert!(ips.iter().all(|ip| ip == "127.0.0.1"), "{ips:?}");
    app.cleanup().await;

    // Loopback is the trusted proxy: the address it forwards is the client.
    let settings = Settings {
        trusted_proxies: TrustedProxies(vec!["127.0.0.0/8".parse().expect("cidr")]),
        ..Settings::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, settings).await;
    let (status, _) = app
        .send(
            app.client
                .get(app.url("/tasks/active"))
                .header("X-Forwarded-For", "198.51.100.1, 203.0.113.99"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(auth_failure_ips(&app).await, ["203.0.113.99"]);
    app.cleanup().await;
}

/// Behind a trusted proxy, a client that writes a new address into the left of the trail on
/// every request is still the one address the proxy appended (with its port, or on a header
/// line of its own), and its per-address quota runs out.
#[tokio::test]
async fn forged_forwarded_addresses_do_not_dodge_the_per_address_quota() {
    let settings = Settings {
        trusted_proxies: TrustedProxies(vec!["127.0.0.1".parse().expect("cidr")]),
        rate_limit: RateLimitConfig {
            per_min: 100,
            cancel_per_min: 10,
            backend: RateLimitBackend::Memory,
        },
        ..Settings::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, settings).await;
    let mut statuses = Vec::new();
    for n in 0..250_u32 {
        let forged = format!("10.{}.{}.1, not-an-address", n / 256, n % 256);
        let req = app.client.get(app.url("/tasks/active"));
        let req = if n % 2 == 0 {
            req.header("X-Forwarded-For", format!("{forged}, 203.0.113.7:5678"))
        } else {
            req.header("X-Forwarded-For", forged)
                .header("X-Forwarded-For", "203.0.113.7")
        };
        statuses.push(req.send().await.expect("sent").status());
    }
    assert!(
        statuses[..100]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED)
    );
    assert!(
        statuses[100..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{:?}",
        &statuses[100..]
    );
    app.cleanup().await;
}

/// The client IPs of the `auth_failed` rows, once the trail writer has written them.
async fn auth_failure_ips(app: &TestApp) -> Vec<String> {
    for _ in 0..100 {
        let events = ensinalab_store::testing::security_events(&app.store)
            .await
            .expect("events");
        let ips: Vec<String> = events
            .iter()
            .filter(|e| e.event.as_str() == "auth_failed")
            .filter_map(|e| e.client_ip.clone())
            .collect();
        if !ips.is_empty() {
            return ips;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no auth_failed row written");
}

#[tokio::test]
async fn a_failed_authentication_stores_a_reason_code_never_the_clients_text() {
    let app = TestApp::spawn_with(Backend::Sqlite, Settings::default()).await;
    // A token whose header is 6 KB of the client's own text.
    let garbage = format!("{}.e30.x", "A".repeat(6_000));
    let (status, _) = app
        .send(
            app.client
                .post(app.url("/videos/%41%41%41/cancel"))
                .bearer_auth(&garbage),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    auth_failure_ips(&app).await;
    let events = ensinalab_store::testing::security_events(&app.store)
        .await
        .expect("events");
    let row = events
        .iter()
        .find(|e| e.event.as_str() == "auth_failed")
        .expect("the row");
    assert_eq!(row.outcome.as_str(), "invalid_token");
    assert_eq!(
        row.details,
        serde_json::json!({"reason": "malformed", "method": "POST", "route": "/videos/{video_hash}/cancel"})
    );
    assert!(row.details.to_string().len() < 200);
    app.cleanup().await;
}

#[tokio::test]
async fn security_events_past_their_retention_are_pruned_by_the_server() {
    let store = ensinalab_store::testing::sqlite_memory()
        .await
        .expect("store");
    for (event, created_at) in [
        ("auth_failed", "2020-01-01T00:00:00Z"),
        ("rate_limited", "2099-01-01T00:00:00Z"),
    ] {
        ensinalab_store::testing::execute(
            &store,
            &format!(
                "INSERT INTO security_events (event, outcome, details, created_at) \
                 VALUES ('{event}', 'refused', '{{}}', '{created_at}')"
            ),
        )
        .await
        .expect("insert");
    }
    // The default retention (90 days): the server prunes as it starts, and hourly after.
    let app = TestApp::spawn_on(store, Settings::default());
    for _ in 0..200 {
        let events = ensinalab_store::testing::security_events(&app.store)
            .await
            .expect("events");
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        if names == ["rate_limited"] {
            app.cleanup().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the old event was not pruned");
}
