//! The live stream's bounds and its WebSocket twin: `GET /tasks/ws` carries what
//! `GET /tasks/events` does, both count against one per-user cap and one per-server cap, both
//! end with their token, and a client that stops reading is cut and its slot freed.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::both;
use crate::common::app::eventually;
use crate::helpers::{Settings, TestApp, Ws};

/// The active list without its clock-dependent fields, to compare two reads of it.
fn without_clock(mut list: Value) -> Value {
    for task in list["tasks"].as_array_mut().expect("tasks") {
        task.as_object_mut().expect("task").remove("elapsed_time");
    }
    list
}

/// `ensinalab_event_streams` as scraped now.
async fn open_streams(app: &TestApp) -> f64 {
    let (status, text) = app.scrape("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text.lines()
        .find_map(|l| l.strip_prefix("ensinalab_event_streams "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ensinalab_event_streams in\n{text}"))
}

async fn the_websocket_carries_the_same_snapshot_and_changes_as_the_sse_stream(app: &TestApp) {
    let token = app.token(1);
    let before = app.create_briefing(&token, "Antes").await;
    let hash = before["briefing_id"].as_str().expect("hash");
    app.wait_briefing(&token, hash, |b| b["status"] == "options_ready")
        .await;
    app.stuck_briefing(1, "Em andamento").await;
    let mut sse = app.stream(&token, None).await.expect("stream");
    let mut ws = Ws::open(&app.address, &token, None).await;
    let (a, b) = (sse.expect().await, ws.expect().await);
    assert_eq!(
        (a.event.as_str(), b.event.as_str()),
        ("snapshot", "snapshot")
    );
    assert_eq!(without_clock(a.data), without_clock(b.data));
    assert_eq!(a.id, b.id, "both subscribed at the same place of the log");

    let created = app.create_briefing(&token, "Ao vivo nos dois").await;
    let hash = created["briefing_id"].as_str().expect("hash");
    let by_sse = sse.until(|d| d["resource_id"] == hash).await;
    let by_ws = ws.until(|d| d["resource_id"] == hash).await;
    assert_eq!(by_ws.data, by_sse.data, "exactly the SSE event's data");
    assert_eq!(by_ws.id, by_sse.id);
    assert_eq!(by_ws.data["change"], "created");
    ws.close().await;
}
both!(the_websocket_carries_the_same_snapshot_and_changes_as_the_sse_stream);

#[tokio::test]
async fn a_websocket_resumes_after_its_last_event_id() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, Settings::default()).await;
    let token = app.token(1);
    let mut ws = Ws::open(&app.address, &token, None).await;
    assert_eq!(ws.expect().await.event, "snapshot");
    app.create_briefing(&token, "Primeiro").await;
    let seen = ws.until(|d| d["change"] == "created").await;
    ws.close().await;
    let missed = app.create_briefing(&token, "Perdido").await;
    let mut again = Ws::open(&app.address, &token, Some(&seen.id)).await;
    let next = again.expect().await;
    assert_eq!(next.event, "change", "no snapshot: the log still holds it");
    let hash = missed["briefing_id"].as_str().expect("hash");
    if next.data["resource_id"] != hash {
        again.until(|d| d["resource_id"] == hash).await;
    }
}

#[tokio::test]
async fn a_websocket_without_a_valid_token_is_closed_4401_with_nothing_sent() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, no_leeway()).await;
    let expired = app.auth.mint(1, false, 0).expect("mint");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cases = [
        r#"{"token": "not-a-jwt"}"#.to_owned(),
        "not json".to_owned(),
        r#"{"last_event_id": "0-0"}"#.to_owned(),
        serde_json::json!({ "token": expired }).to_string(),
    ];
    for hello in cases {
        let mut ws = Ws::connect(&app.address).await;
        ws.send_text(&hello).await;
        assert!(
            ws.next().await.is_none(),
            "{hello}: nothing before the close"
        );
        assert_eq!(ws.closed.as_ref().map(|c| c.0), Some(4401), "{hello}");
    }
}

#[tokio::test]
async fn a_websocket_that_sends_no_token_within_ten_seconds_is_closed_4408() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, Settings::default()).await;
    let mut ws = Ws::connect(&app.address).await;
    assert_eq!(ws.close_code().await, 4408);
    assert_eq!(ws.pings, 0);
}

fn two_streams_each() -> Settings {
    Settings {
        max_streams_per_user: 2,
        live_heartbeat: Duration::from_secs(1),
        ..Settings::default()
    }
}

async fn sse_and_websocket_streams_share_the_per_user_cap(app: &TestApp) {
    let token = app.token(1);
    let mut sse = app.stream(&token, None).await.expect("stream");
    sse.expect().await;
    let mut ws = Ws::open(&app.address, &token, None).await;
    ws.expect().await;
    let Err((status, _)) = app.stream(&token, None).await else {
        panic!("a third stream was opened")
    };
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let mut third = Ws::open(&app.address, &token, None).await;
    assert_eq!(third.close_code().await, 4429);
    assert!(
        app.stream(&app.token(2), None).await.is_ok(),
        "the cap is per user"
    );
    ws.close().await;
    app.stream_once_free(&token, Duration::from_secs(5))
        .await
        .expect("a closed WebSocket gives its slot back");
}
both!(
    sse_and_websocket_streams_share_the_per_user_cap,
    two_streams_each
);

#[tokio::test]
async fn a_websocket_gets_a_ping_frame_every_heartbeat() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, two_streams_each()).await;
    let token = app.token(1);
    let mut ws = Ws::open(&app.address, &token, None).await;
    ws.expect().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.create_briefing(&token, "Depois do silêncio").await;
    ws.until(|d| d["change"] == "created").await;
    assert!(ws.pings >= 2, "{} pings in 2.5 s", ws.pings);
}

fn no_leeway() -> Settings {
    Settings {
        jwt_leeway_secs: 0,
        live_heartbeat: Duration::from_secs(30),
        ..Settings::default()
    }
}

#[tokio::test]
async fn both_kinds_of_stream_end_when_their_token_expires() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, no_leeway()).await;
    let short = app.auth.mint(1, false, 2).expect("mint");
    let mut sse = app.stream(&short, None).await.expect("stream");
    sse.expect().await;
    let mut ws = Ws::open(&app.address, &short, None).await;
    ws.expect().await;
    let started = tokio::time::Instant::now();
    // The heartbeat is 30 s: the end comes from the token, not from a write.
    let events = sse.read_to_end().await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(ws.close_code().await, 4401);
    assert!(started.elapsed() < Duration::from_secs(10));
    let (status, _) = app.get("/tasks/active", &short).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the same token is refused"
    );
    let Err((status, _)) = app.stream(&short, None).await else {
        panic!("a stream opened with an expired token")
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    eventually(
        Duration::from_secs(5),
        "both streams counted closed",
        || async { (open_streams(&app).await == 0.0).then_some(()) },
    )
    .await;
}

fn two_streams_per_server() -> Settings {
    Settings {
        max_streams: 2,
        ..Settings::default()
    }
}

#[tokio::test]
async fn past_max_streams_a_new_stream_gets_503_with_retry_after() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, two_streams_per_server()).await;
    let mut first = app.stream(&app.token(1), None).await.expect("stream");
    first.expect().await;
    let mut second = Ws::open(&app.address, &app.token(2), None).await;
    second.expect().await;
    assert_eq!(open_streams(&app).await, 2.0);
    let res = app
        .client
        .get(app.url("/tasks/events"))
        .bearer_auth(app.token(3))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body["detail"],
        "O servidor atingiu o limite de conexões ao vivo. Tente novamente em 5 segundos"
    );
    let mut third = Ws::open(&app.address, &app.token(3), None).await;
    assert_eq!(third.close_code().await, 1013);
    assert_eq!(open_streams(&app).await, 2.0, "the refusals took no slot");
    second.close().await;
    eventually(
        Duration::from_secs(5),
        "the WebSocket's slot given back",
        || async { (open_streams(&app).await == 1.0).then_some(()) },
    )
    .await;
    let mut again = app
        .stream(&app.token(3), None)
        .await
        .expect("a slot is free");
    again.expect().await;
    assert_eq!(open_streams(&app).await, 2.0);
}

fn stalls_after_two_seconds() -> Settings {
    Settings {
        max_streams_per_user: 1,
        live_stall: Duration::from_secs(2),
        ..Settings::default()
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_and_its_slot_freed() {
    let app =
        TestApp::spawn_with(crate::helpers::Backend::Sqlite, stalls_after_two_seconds()).await;
    let token = app.token(1);
    // A snapshot far larger than the client's receive buffer: the server's bytes wait.
    for i in 0..80 {
        app.stuck_briefing(1, &format!("Briefing {i} com um título longo o bastante"))
            .await;
    }
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(1024).expect("SO_RCVBUF");
    let addr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut stalled = socket.connect(addr).await.expect("connect");
    stalled
        .write_all(
            format!(
                "GET /tasks/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("request sent");
    let mut head = [0u8; 64];
    let n = stalled.read(&mut head).await.expect("response");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);
    assert_eq!(open_streams(&app).await, 1.0);
    // The client reads nothing more. Its slot is the user's only one until the server cuts it.
    let Err((status, _)) = app.stream(&token, None).await else {
        panic!("the stalled stream's slot was free at once")
    };
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let mut fresh = app
        .stream_once_free(&token, Duration::from_secs(20))
        .await
        .expect("the stalled client was cut and its slot freed");
    assert_eq!(fresh.expect().await.event, "snapshot");
    assert_eq!(
        open_streams(&app).await,
        1.0,
        "the gauge counts the new stream only"
    );
    // The stalled connection is gone: reading it now ends (reset or end of stream).
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stalled connection is still open");
}
