//! The automatic timeout with two server processes sweeping one PostgreSQL at the same moment:
//! each late job is cancelled once (one transition, one `auto_cancelled` event, one revoke).

use std::time::Duration;

use ensinalab_domain::{UserId, VideoStatus};
use ensinalab_ports::Videos;
use ensinalab_store::testing::{self, TestPostgres};

use crate::support::*;

/// Jobs that ran past their limit before the servers started.
const LATE: i64 = 20;

/// A server process sweeping for late jobs every second (the limit is 1 s).
fn server(database_url: &str, redis_url: &str, queue: &str) -> ServerProcess {
    ServerProcess::start(&[
        ("DATABASE_URL", database_url),
        ("REDIS_URL", redis_url),
        ("CELERY_QUEUE", queue),
        ("AUTO_CANCEL_FACTOR", "1"),
        ("EXPECTED_VIDEO_SECS", "1"),
        ("EXPECTED_OPTIONS_SECS", "1"),
        ("AUTO_CANCEL_SWEEP_SECS", "1"),
        ("RECONCILE_INTERVAL_SECS", "3600"),
        // The removal pass's lease is a SET too; this test counts the claims' SETs.
        ("CELERY_UNQUEUE", "off"),
    ])
}

/// How many times Redis ran `SET` so far.
fn sets(redis: &RedisServer) -> i64 {
    redis.commands().get("set").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sweeping_at_once_cancel_each_late_job_once() {
    let db = TestPostgres::new().await.unwrap();
    let store = db.store().clone();
    let redis = RedisServer::start();

    // Late jobs: running videos a worker started an hour ago (the limit is 1 s).
    let mut late = Vec::new();
    for _ in 0..LATE {
        late.push(running_video_started_long_ago(&store).await);
    }
    let sets_before = sets(&redis);

    let queue = unique_queue();
    let servers = [
        server(db.url(), &redis.url(), &queue),
        server(db.url(), &redis.url(), &queue),
    ];
    eventually(
        Duration::from_secs(60),
        "every late job cancelled",
        || async {
            let mut all = true;
            for id in &late {
                let v = store.video(*id).await.unwrap().unwrap();
                all &= v.status == VideoStatus::Cancelled;
            }
            all.then_some(())
        },
    )
    .await;
    // Several more sweeps of both servers: nothing happens twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(servers);

    let events = testing::security_events(&store).await.unwrap();
    let mut auto: Vec<i64> = events
        .iter()
        .filter(|e| e.event.as_str() == "auto_cancelled")
        .map(|e| e.resource.expect("the job").1)
        .collect();
    auto.sort_unstable();
    let mut expected: Vec<i64> = late.iter().map(|id| id.get()).collect();
    expected.sort_unstable();
    assert_eq!(auto, expected, "one auto_cancelled event per job");
    // One revoke per job: a revoke claims each task's result key with one SET.
    assert_eq!(sets(&redis) - sets_before, LATE);
    for id in &late {
        let v = store.video(*id).await.unwrap().unwrap();
        assert_eq!(
            v.error_message.as_deref(),
            Some(ensinalab_domain::CANCELLED_BY_TIMEOUT)
        );
    }
    db.cleanup().await.unwrap();
}

async fn running_video_started_long_ago(
    store: &ensinalab_store::SqlStore,
) -> ensinalab_domain::VideoId {
    let id = crate::concurrency::processing_video(store, UserId(1)).await;
    testing::execute(
        store,
        &format!("UPDATE videos SET started_at = now() - interval '1 hour' WHERE id = {id}"),
    )
    .await
    .unwrap();
    id
}
