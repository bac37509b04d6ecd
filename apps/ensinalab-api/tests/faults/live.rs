//! The live stream across server processes: a change made through one server reaches a stream
//! (SSE or WebSocket) held by another (relayed through the broker's Redis), only its owner's; a
//! stream ends cleanly when its server is stopped with SIGTERM; an idle stream stays open on
//! Redis with no warning; and a relay that lost its subscription resyncs every open stream
//! in-band, with no change lost.

use std::time::Duration;

use ensinalab_store::testing::TestPostgres;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::ws::Ws;
use crate::support::*;

/// `n` server processes on one database and one Redis, sharing a fresh queue, each ready and
/// its relay subscribed; their JSON log lines go to their files.
async fn fleet(db: &TestPostgres, redis: &RedisServer, n: usize) -> Vec<ServerProcess> {
    fleet_on(db, redis, None, &unique_queue(), n).await
}

/// [`fleet`], with RabbitMQ at `broker_url` as the Celery broker when given, on `queue`.
async fn fleet_on(
    db: &TestPostgres,
    redis: &RedisServer,
    broker_url: Option<&str>,
    queue: &str,
    n: usize,
) -> Vec<ServerProcess> {
    let redis_url = redis.url();
    let mut env = vec![
        ("DATABASE_URL", db.url()),
        ("AUTO_MIGRATE", "false"),
        ("REDIS_URL", &redis_url),
        ("CELERY_QUEUE", queue),
        ("RATE_LIMIT_PER_MIN", "100000"),
        ("LOG_FORMAT", "json"),
    ];
    if let Some(url) = broker_url {
        env.push(("CELERY_BROKER_URL", url));
    }
    let servers: Vec<ServerProcess> = (0..n).map(|_| ServerProcess::start(&env)).collect();
    for server in &servers {
        server.ready().await;
    }
    relays_subscribed(&redis_url, queue, i64::try_from(n).unwrap()).await;
    servers
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
    change_on_one_server_reaches_another(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_on_one_server_reaches_its_owners_stream_on_another_with_rabbitmq_as_the_broker()
 {
    change_on_one_server_reaches_another(Some("amqp://guest:guest@127.0.0.1:5672//")).await;
}

/// Two servers (on RabbitMQ as the Celery broker when `broker_url` is given: the relay stays
/// on Redis either way).
async fn change_on_one_server_reaches_another(broker_url: Option<&str>) {
    let (db, redis) = (TestPostgres::new().await.unwrap(), RedisServer::start());
    let queue = unique_queue();
    let mut servers = fleet_on(&db, &redis, broker_url, &queue, 2).await;
    let (b, a) = (servers.remove(1), servers.remove(0));

    let auth = authenticator();
    let (alice, bob) = (
        auth.mint(1, false, 600).unwrap(),
        auth.mint(2, false, 600).unwrap(),
    );
    let mut alice_on_b = b.http.stream(&alice, None).await.unwrap();
    let mut bob_on_b = b.http.stream(&bob, None).await.unwrap();
    let mut alice_ws_on_b = Ws::open(&b.http.address, &alice, None).await;
    assert_eq!(alice_on_b.expect().await.event, "snapshot");
    assert_eq!(bob_on_b.expect().await.event, "snapshot");
    assert_eq!(alice_ws_on_b.expect().await.event, "snapshot");

    // Through server A: no worker listens on this queue, so the briefing stays queued.
    let created = a.http.create_briefing(&alice, "Em outro servidor").await;
    let hash = created["briefing_id"].as_str().unwrap();
    let e = alice_on_b.until(|d| d["change"] == "created").await;
    assert_eq!(e.data["resource_id"], hash);
    assert_eq!(e.data["task_id"], created["task_id"]);
    let w = alice_ws_on_b.until(|d| d["change"] == "created").await;
    assert_eq!(
        (w.id, w.data),
        (e.id, e.data),
        "the WebSocket gets the same event"
    );

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
    let his = a.http.create_briefing(&bob, "Em outro servidor").await;
    let first = bob_on_b.expect().await;
    assert_eq!(first.event, "change");
    assert_eq!(
        first.data["resource_id"], his["briefing_id"],
        "{}",
        first.data
    );

    // SIGTERM: the stream ends (the body completes), the WebSocket closes with 1001 (going
    // away), and the server exits cleanly.
    b.terminate();
    alice_on_b.read_to_end().await;
    assert!(alice_on_b.ended);
    assert_eq!(alice_ws_on_b.close_code().await, 1001);
    let mut b = b;
    let exited = eventually(Duration::from_secs(30), "server B exits", || {
        let status = b.exited();
        async move { status }
    })
    .await;
    assert!(exited.success(), "{exited:?}");
    drop(a);
    if let Some(url) = broker_url.map(str::to_owned) {
        let queue = queue.clone();
        // A thread of its own: it runs a runtime of its own.
        std::thread::spawn(move || ensinalab_celery::testing::delete_amqp_queue(&url, &queue))
            .join()
            .unwrap();
    }
    db.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_on_redis_stays_open_a_minute_with_one_snapshot_and_no_warning() {
    let (db, redis) = (TestPostgres::new().await.unwrap(), RedisServer::start());
    let server = fleet(&db, &redis, 1).await.remove(0);
    let token = authenticator().mint(1, false, 600).unwrap();
    let mut sse = server.http.stream(&token, None).await.unwrap();
    let mut ws = Ws::open(&server.http.address, &token, None).await;
    assert_eq!(sse.expect().await.event, "snapshot");
    assert_eq!(ws.expect().await.event, "snapshot");

    // Four keep-alives of the relay and of the Celery feeds (one every 15 s) fall in this minute.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let created = server
        .http
        .create_briefing(&token, "Depois de um minuto")
        .await;
    // The very next event of each stream is this change: no snapshot came in between, and the
    // streams were never ended.
    let e = sse.expect().await;
    assert_eq!(
        (e.event.as_str(), &e.data["change"]),
        ("change", &json!("created"))
    );
    assert_eq!(e.data["resource_id"], created["briefing_id"]);
    assert!(sse.comments >= 3, "{} keep-alive comments", sse.comments);
    let w = ws.expect().await;
    assert_eq!((w.event.as_str(), w.id.as_str()), ("change", e.id.as_str()));
    assert!(ws.pings >= 3, "{} pings", ws.pings);
    assert_eq!(server.warnings(), Vec::<String>::new());
    drop(server);
    db.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_relays_subscription_is_killed_every_stream_gets_a_snapshot_and_no_change_is_lost()
 {
    let (db, redis) = (TestPostgres::new().await.unwrap(), RedisServer::start());
    let mut servers = fleet(&db, &redis, 2).await;
    let (b, a) = (servers.remove(1), servers.remove(0));
    let token = authenticator().mint(1, false, 600).unwrap();
    let mut sse = b.http.stream(&token, None).await.unwrap();
    let mut ws = Ws::open(&b.http.address, &token, None).await;
    let first = sse.expect().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(ws.expect().await.event, "snapshot");

    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(killed >= 2, "{killed} subscriptions killed");
    // Made on A while B's relay may still be resubscribing: PUB/SUB keeps nothing for it.
    let created = a.http.create_briefing(&token, "Durante a queda").await;
    let hash = created["briefing_id"].as_str().unwrap();

    let resynced = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let e = sse.expect().await;
            if e.event == "snapshot" {
                return e;
            }
            assert_eq!(e.data["resource_id"], hash, "{:?}", e);
        }
    })
    .await
    .expect("a fresh snapshot within 2 s");
    assert_ne!(resynced.id, first.id, "ids of the old log no longer resume");
    let in_snapshot = resynced.data["tasks"].to_string().contains(hash);
    if !in_snapshot {
        sse.until(|d| d["resource_id"] == hash).await;
    }
    let w = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let w = ws.expect().await;
            if w.event == "snapshot" {
                return w;
            }
        }
    })
    .await
    .expect("a fresh snapshot on the WebSocket within 2 s");
    if !w.data["tasks"].to_string().contains(hash) {
        ws.until(|d| d["resource_id"] == hash).await;
    }
    assert!(!sse.ended, "the stream stays open");
    assert!(ws.closed.is_none(), "the WebSocket stays open");
    drop((a, b));
    db.cleanup().await.unwrap();
}
