//! The live stream across server processes: a change made through one server reaches a stream
//! held by another (relayed through the broker's Redis), only its owner's; and a stream ends
//! cleanly when its server is stopped with SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ensinalab_api::auth::Authenticator;
use ensinalab_api::config::Config;
use ensinalab_store::testing::TestPostgres;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[path = "../common/sse.rs"]
mod sse;
use sse::Sse;

const LIVE_SECRET: &str = "live-test-secret-of-32-bytes-or-more!";

/// An `ensinalab-api` process, killed when dropped.
struct Server {
    child: Child,
    http: Http,
}

impl Server {
    fn start(database_url: &str, redis_url: &str, queue: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_ensinalab-api"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("METRICS_ADDR", "")
            .env("DATABASE_URL", database_url)
            .env("AUTO_MIGRATE", "false")
            .env("REDIS_URL", redis_url)
            .env("CELERY_QUEUE", queue)
            .env("JWT_SECRET", LIVE_SECRET)
            .env("RATE_LIMIT_PER_MIN", "100000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        Self {
            child,
            http: Http::new(port, reqwest::Client::new()),
        }
    }

    async fn ready(&self) {
        eventually(
            Duration::from_secs(30),
            "the server answers /readyz",
            || async {
                let res = self.http.client.get(self.http.url("/readyz")).send().await;
                res.ok().filter(|r| r.status() == StatusCode::OK)
            },
        )
        .await;
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tokens() -> Authenticator {
    let config = Config::from_lookup(|key| match key {
        "JWT_SECRET" => Some(LIVE_SECRET.to_owned()),
        _ => None,
    })
    .expect("config");
    Authenticator::new(&config.jwt)
}

/// Waits until `n` servers listen on the live channel of `queue`.
async fn relays_subscribed(redis_url: &str, queue: &str, n: i64) {
    let conn = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let channel = format!("ensinalab:live:{queue}");
    eventually(Duration::from_secs(30), "both relays subscribe", || {
        let (mut conn, channel) = (conn.clone(), channel.clone());
        async move {
            let (_, count): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query_async(&mut conn)
                .await
                .ok()?;
            (count >= n).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_on_one_server_reaches_its_owners_stream_on_another() {
    let db = TestPostgres::new().await.unwrap();
    let redis = RedisServer::start();
    let queue = unique_queue();
    let a = Server::start(db.url(), &redis.url(), &queue);
    let b = Server::start(db.url(), &redis.url(), &queue);
    a.ready().await;
    b.ready().await;
    relays_subscribed(&redis.url(), &queue, 2).await;

    let auth = tokens();
    let (alice, bob) = (
        auth.mint(1, false, 600).unwrap(),
        auth.mint(2, false, 600).unwrap(),
    );
    let mut alice_on_b = Sse::open(&b.http.client, &b.http.address, &alice, None)
        .await
        .unwrap();
    let mut bob_on_b = Sse::open(&b.http.client, &b.http.address, &bob, None)
        .await
        .unwrap();
    assert_eq!(alice_on_b.expect().await.event, "snapshot");
    assert_eq!(bob_on_b.expect().await.event, "snapshot");

    // Through server A: no worker listens on this queue, so the briefing stays queued.
    let body = json!({"title": "Em outro servidor", "description": "...", "duration_minutes": 10});
    let (status, created) = a.http.post_json("/briefings", &alice, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let hash = created["briefing_id"].as_str().unwrap();
    let e = alice_on_b.until(|d| d["change"] == "created").await;
    assert_eq!(e.data["resource_id"], hash);
    assert_eq!(e.data["task_id"], created["task_id"]);

    let (status, cancel) = a
        .http
        .post(&format!("/briefings/{hash}/cancel-generation"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{cancel}");
    let e = alice_on_b.until(|d| d["change"] == "cancelled").await;
    assert_eq!(
        (e.data["resource_id"].as_str(), e.data["reason"].as_str()),
        (Some(hash), Some("user"))
    );
    let e = alice_on_b.until(|d| d["change"] == "revoke").await;
    assert_eq!(e.data["revoke"], cancel["revoke"]);

    // Bob's stream carried none of it: its first change is his own job's.
    let (status, his) = a.http.post_json("/briefings", &bob, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let first = bob_on_b.expect().await;
    assert_eq!(first.event, "change");
    assert_eq!(
        first.data["resource_id"], his["briefing_id"],
        "{}",
        first.data
    );

    // SIGTERM: the stream ends (the body completes) and the server exits cleanly.
    b.terminate();
    alice_on_b.read_to_end().await;
    assert!(alice_on_b.ended);
    let mut b = b;
    let exited = eventually(Duration::from_secs(30), "server B exits", || {
        let status = b.child.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.success(), "{exited:?}");
    drop(a);
    db.cleanup().await.unwrap();
}
