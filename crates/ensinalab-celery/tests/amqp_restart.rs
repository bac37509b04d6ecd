//! RabbitMQ restarted under a live adapter and a live worker: a private rabbitmq-server (the
//! shared one stays up), Redis as the result backend. While it is down, a publish and a revoke
//! fail fast (the revoke stays owed: its broadcast could not go out); once it is back, the same
//! adapter reconnects by itself, its worker-online feed resubscribes, and the owed revoke,
//! delivered again, kills the task a stock worker kept running.

// The shared steps are helpers, not #[test]s: a failed step panics with its cause all the same.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use ensinalab_celery::testing::{Rabbit, Worker, WorkerKind};
use ensinalab_celery::{CeleryBroker, CeleryConfig, WorkerOnline};
use ensinalab_ports::{BrokerError, RevokeOutcome, TaskBroker};
use support::*;

const DB: u8 = 2;

#[tokio::test]
async fn after_a_rabbitmq_restart_the_adapter_reconnects_and_the_owed_revoke_kills_the_task() {
    let mut rabbit = Rabbit::start();
    let results = format!("{REDIS}/{DB}");
    let queue = unique_queue("amqp-restart");
    let mut config = CeleryConfig::new(&results)
        .with_queue(&queue)
        .with_broker(rabbit.url());
    config.command_timeout = Duration::from_secs(2);
    let broker = CeleryBroker::new(config).unwrap();
    let mut online = broker.workers_online();
    let first = tokio::time::timeout(Duration::from_secs(10), online.recv()).await;
    assert_eq!(first.unwrap(), Some(WorkerOnline::Subscribed));

    let worker = Worker::start_kind(
        &results,
        &queue,
        SLOW,
        &[("CELERY_BROKER_URL", rabbit.url().as_str())],
        WorkerKind::Stock,
    )
    .await;
    let task = video("Longo", "simple");
    let pid = publish_running(&broker, &task).await;
    // The worker acks a message when a pool process accepts it; one whose ack RabbitMQ never
    // got is delivered again after the restart and runs a second time (docs/celery-contract.md,
    // "RabbitMQ"). Give the ack its moment, so this test is about the revoke alone.
    tokio::time::sleep(Duration::from_secs(1)).await;

    rabbit.stop();
    let t0 = Instant::now();
    let publish = broker.publish(&video("Durante", "simple")).await;
    assert!(
        matches!(publish, Err(BrokerError::Unavailable(_))),
        "{publish:?}"
    );
    let owed = broker.revoke(std::slice::from_ref(&task.id)).await;
    assert!(matches!(owed, Err(BrokerError::Unavailable(_))), "{owed:?}");
    assert!(t0.elapsed() < Duration::from_secs(10), "failed fast");
    assert!(
        !process_is_dead(pid),
        "nothing reached the worker while it was down"
    );

    rabbit.restart();
    // The adapter's feed comes back by itself and says so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, online.recv()).await {
            Ok(Some(WorkerOnline::Subscribed)) => break,
            Ok(Some(_)) => {}
            other => panic!("the worker-online feed did not resubscribe: {other:?}"),
        }
    }
    // The worker reconnects on its own schedule; the owed revoke is delivered again until a
    // worker hears it, as the dispatcher does.
    let started = Instant::now();
    let report = loop {
        match broker.revoke(std::slice::from_ref(&task.id)).await {
            Ok(report) if report[0].outcome != RevokeOutcome::NoWorkerListening => break report,
            other => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the owed revoke never reached the worker: {other:?}; log:\n{}",
                    worker.log_text()
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    assert_eq!(report[0].outcome, RevokeOutcome::Killed, "{report:?}");
    let t0 = Instant::now();
    while !process_is_dead(pid) {
        assert!(t0.elapsed() < Duration::from_secs(10), "pool child alive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.publish(&video("Depois", "simple")).await.unwrap();
}
