//! The adapter survives a Redis restart: the hot-path connection and the change feed both come
//! back by themselves. Uses a private redis-server on a free port (never the shared one).

// Test helpers: a failed setup step should panic with its cause, like in a #[test].
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::{CeleryState, TaskId};
use ensinalab_ports::{BrokerError, TaskBroker};
use support::server::{Server, free_port};

async fn write_state(port: u16, id: &TaskId, status: &str) {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("celery-task-meta-{id}");
    let value = format!(r#"{{"status": "{status}", "result": null, "task_id": "{id}"}}"#);
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(&key)
        .arg(&value)
        .cmd("PUBLISH")
        .arg(&key)
        .arg(&value)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn reads_and_the_change_feed_come_back_after_redis_restarts() {
    let port = free_port();
    let server = Server::start(port, &[]);
    let mut config = CeleryConfig::new(format!("redis://127.0.0.1:{port}/0"));
    config.command_timeout = Duration::from_millis(500);
    let broker = CeleryBroker::connect(config).await.unwrap();
    let mut feed = broker.watch();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let first = TaskId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    write_state(port, &first, "STARTED").await;
    let heard = tokio::time::timeout(Duration::from_secs(2), feed.recv()).await;
    assert_eq!(heard.unwrap(), Some(first.clone()));

    drop(server);
    let t0 = Instant::now();
    let err = broker
        .states(std::slice::from_ref(&first))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    let _server = Server::start(port, &[]);
    // the shared connection is remade on the next call
    let started = Instant::now();
    loop {
        match broker.states(std::slice::from_ref(&first)).await {
            Ok(states) => {
                // a fresh server: the key is gone
                assert_eq!(states[0].state, CeleryState::Pending);
                break;
            }
            Err(err) => assert!(started.elapsed() < Duration::from_secs(5), "{err:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the feed resubscribes by itself (backoff starts at 100 ms)
    let second = TaskId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        write_state(port, &second, "SUCCESS").await;
        if let Ok(Some(id)) = tokio::time::timeout(Duration::from_millis(300), feed.recv()).await {
            assert_eq!(id, second);
            break;
        }
        assert!(Instant::now() < deadline, "the feed did not come back");
    }
}
