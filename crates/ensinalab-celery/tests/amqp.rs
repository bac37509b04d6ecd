//! The adapter with RabbitMQ as the broker (the shared one at 127.0.0.1:5672, which
//! scripts/ensure-rabbitmq.sh starts) and Redis as the result backend, against real Celery 5.7
//! workers of both kinds (apps/worker, prefork, concurrency 2). Each test has a unique queue;
//! the pidbox fanout is shared by every worker on the broker, so a broadcast reaches other
//! tests' workers too (harmless: revokes name unique task ids, replies are told apart by node).

// The shared steps below are helpers, not #[test]s: a failed step panics with its cause all
// the same.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use ensinalab_celery::testing::{Worker, WorkerKind};
use ensinalab_celery::{CeleryBroker, CeleryConfig, WorkerOnline};
use ensinalab_domain::CeleryState;
use ensinalab_ports::{BrokerError, RevokeOutcome, TaskBroker};
use support::*;

/// RabbitMQ the tests talk to.
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672//";
/// The result backend's DB.
const DB: u8 = 2;

fn results() -> String {
    format!("{REDIS}/{DB}")
}

fn amqp_broker(queue: &str) -> CeleryBroker {
    let mut config = CeleryConfig::new(results())
        .with_queue(queue)
        .with_broker(AMQP);
    config.command_timeout = Duration::from_secs(5);
    CeleryBroker::new(config).unwrap()
}

async fn start(queue: &str, durations: Durations, kind: WorkerKind) -> Worker {
    Worker::start_kind(
        &results(),
        queue,
        durations,
        &[("CELERY_BROKER_URL", AMQP)],
        kind,
    )
    .await
}

async fn wait_dead(pid: u32, within: Duration) {
    let t0 = Instant::now();
    while !process_is_dead(pid) {
        assert!(t0.elapsed() < within, "pool child {pid} still alive");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn both_tasks_published_on_rabbitmq_run_and_report_progress_then_success() {
    let queue = unique_queue("amqp-run");
    let _worker = start(&queue, QUICK, WorkerKind::Claiming).await;
    let broker = amqp_broker(&queue);
    let opts = options("Fotossíntese");
    let vid = video("Fotossíntese", "simple");
    broker.publish(&opts).await.unwrap();
    broker.publish(&vid).await.unwrap();

    let mut saw_progress = false;
    let started = Instant::now();
    loop {
        let states = broker
            .states(&[opts.id.clone(), vid.id.clone()])
            .await
            .unwrap();
        if states[1].state == CeleryState::Custom("PROGRESS".into()) {
            saw_progress |= states[1].progress.is_some_and(|p| p > 0.0);
        }
        if states.iter().all(|s| s.state == CeleryState::Success) {
            let options = states[0].info.as_ref().unwrap()["options"]
                .as_array()
                .unwrap();
            assert_eq!(options.len(), 3);
            assert_eq!(states[1].info.as_ref().unwrap()["status"], "completed");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "tasks did not finish: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_progress, "the video reported PROGRESS");
}

async fn cancelling_a_running_video_kills_its_pool_process(kind: WorkerKind) {
    let queue = unique_queue("amqp-kill");
    let worker = start(&queue, SLOW, kind).await;
    let broker = amqp_broker(&queue);
    let task = video("Longo", "simple");
    let pid = publish_running(&broker, &task).await;

    let t0 = Instant::now();
    let report = broker.revoke(std::slice::from_ref(&task.id)).await.unwrap();
    assert_eq!(report[0].outcome, RevokeOutcome::Killed, "confirmed");
    wait_dead(pid, Duration::from_secs(10)).await;
    println!(
        "{kind:?}: revoke -> pool child killed in {:.1} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let revoked = wait_for(&broker, &task.id, Duration::from_secs(5), "revoked", |s| {
        s.state == CeleryState::Revoked
    })
    .await;
    assert_eq!(revoked.error.as_deref(), Some("terminated"));
    let active = broker.inspect_active(Duration::from_secs(1)).await.unwrap();
    let mine = active.iter().find(|w| w.worker == worker.node()).unwrap();
    assert!(
        mine.active.iter().all(|t| t.task_id != task.id),
        "{active:?}"
    );
}

#[tokio::test]
async fn cancelling_a_running_video_on_rabbitmq_kills_its_pool_process_on_a_claiming_worker() {
    cancelling_a_running_video_kills_its_pool_process(WorkerKind::Claiming).await;
}

#[tokio::test]
async fn cancelling_a_running_video_on_rabbitmq_kills_its_pool_process_on_a_stock_worker() {
    cancelling_a_running_video_kills_its_pool_process(WorkerKind::Stock).await;
}

/// Both pool slots busy with long videos, a third queued behind them: the queued one is
/// cancelled (the claim, and the broadcast into the worker's revoked set), then the two
/// running ones are killed, and the queued one is discarded when its turn comes.
async fn a_cancelled_queued_video_never_runs(kind: WorkerKind) {
    let queue = unique_queue("amqp-queued");
    let worker = start(&queue, SLOW, kind).await;
    let broker = amqp_broker(&queue);
    let busy = [video("Um", "simple"), video("Dois", "simple")];
    for task in &busy {
        broker.publish(task).await.unwrap();
    }
    for task in &busy {
        wait_for(&broker, &task.id, Duration::from_secs(30), "running", |s| {
            running_pid(s).is_some()
        })
        .await;
    }
    let queued = video("Na fila", "simple");
    broker.publish(&queued).await.unwrap();

    let report = broker
        .revoke(std::slice::from_ref(&queued.id))
        .await
        .unwrap();
    assert_eq!(report[0].outcome, RevokeOutcome::Claimed);
    let ids: Vec<_> = busy.iter().map(|t| t.id.clone()).collect();
    let kills = broker.revoke(&ids).await.unwrap();
    assert!(
        kills.iter().all(|r| r.outcome == RevokeOutcome::Killed),
        "{kills:?}"
    );

    wait_discarded(&worker, &[&queued.id], Duration::from_secs(20)).await;
    let state = broker
        .states(std::slice::from_ref(&queued.id))
        .await
        .unwrap();
    assert_eq!(state[0].state, CeleryState::Revoked);
}

#[tokio::test]
async fn a_cancelled_queued_video_on_rabbitmq_never_runs_on_a_claiming_worker() {
    a_cancelled_queued_video_never_runs(WorkerKind::Claiming).await;
}

#[tokio::test]
async fn a_cancelled_queued_video_on_rabbitmq_never_runs_on_a_stock_worker_that_heard_the_broadcast()
 {
    a_cancelled_queued_video_never_runs(WorkerKind::Stock).await;
}

#[tokio::test]
async fn a_task_cancelled_while_no_worker_ran_is_discarded_by_a_claiming_worker_on_rabbitmq() {
    let queue = unique_queue("amqp-claim");
    let broker = amqp_broker(&queue);
    let task = video("Antes do worker", "simple");
    // Confirmed by RabbitMQ before any worker of this queue exists: the queue is declared.
    broker.publish(&task).await.unwrap();
    let report = broker.revoke(std::slice::from_ref(&task.id)).await.unwrap();
    assert_eq!(report[0].outcome, RevokeOutcome::Claimed);

    let worker = start(&queue, QUICK, WorkerKind::Claiming).await;
    wait_discarded(&worker, &[&task.id], Duration::from_secs(20)).await;
}

/// The limit of a stock worker on RabbitMQ: no message can be taken out of the queue, so a
/// stock worker that heard no broadcast (started after the cancel, with no peer to sync the
/// revoked ids from) runs a task the cancel claimed. docs/celery-contract.md says so.
#[tokio::test]
async fn a_task_cancelled_while_no_worker_ran_still_runs_on_a_stock_worker_started_afterwards_on_rabbitmq()
 {
    let queue = unique_queue("amqp-stock-late");
    let broker = amqp_broker(&queue);
    let task = options("Antes do worker");
    broker.publish(&task).await.unwrap();
    let report = broker.revoke(std::slice::from_ref(&task.id)).await.unwrap();
    assert_eq!(report[0].outcome, RevokeOutcome::Claimed);

    let worker = start(&queue, QUICK, WorkerKind::Stock).await;
    let t0 = Instant::now();
    while !worker.succeeded(task.id.as_str()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the stock worker did not run it; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!worker.discarded(task.id.as_str()));
}

#[tokio::test]
async fn cancel_all_on_rabbitmq_kills_the_running_and_discards_the_queued() {
    let queue = unique_queue("amqp-all");
    let worker = start(&queue, SLOW, WorkerKind::Claiming).await;
    let broker = amqp_broker(&queue);
    let tasks: Vec<_> = (0..6).map(|i| video(&format!("V{i}"), "simple")).collect();
    for task in &tasks {
        broker.publish(task).await.unwrap();
    }
    for task in &tasks[..2] {
        wait_for(&broker, &task.id, Duration::from_secs(30), "running", |s| {
            running_pid(s).is_some()
        })
        .await;
    }
    let ids: Vec<_> = tasks.iter().map(|t| t.id.clone()).collect();
    let report = broker.revoke(&ids).await.unwrap();
    let killed = report
        .iter()
        .filter(|r| r.outcome == RevokeOutcome::Killed)
        .count();
    let claimed = report
        .iter()
        .filter(|r| r.outcome == RevokeOutcome::Claimed)
        .count();
    assert_eq!((killed, claimed), (2, 4), "{report:?}");
    let t0 = Instant::now();
    while !tasks[2..].iter().all(|t| worker.discarded(t.id.as_str())) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "queued ones not all discarded; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tasks.iter().all(|t| !worker.succeeded(t.id.as_str())));
}

#[tokio::test]
async fn a_worker_coming_online_is_heard_from_the_celeryev_exchange() {
    let queue = unique_queue("amqp-online");
    let broker = amqp_broker(&queue);
    let mut online = broker.workers_online();
    let first = tokio::time::timeout(Duration::from_secs(10), online.recv()).await;
    assert_eq!(first.unwrap(), Some(WorkerOnline::Subscribed));
    let worker = start(&queue, QUICK, WorkerKind::Stock).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, online.recv()).await {
            Ok(Some(WorkerOnline::Worker(Some(host)))) if host == worker.node() => break,
            Ok(Some(_)) => {}
            other => panic!("no worker-online from {}: {other:?}", worker.node()),
        }
    }
}

#[tokio::test]
async fn a_broker_that_cannot_be_reached_is_a_fast_unavailable_error_and_dispatches_nothing() {
    let mut config = CeleryConfig::new(results()).with_broker("amqp://guest:guest@127.0.0.1:1//");
    config.command_timeout = Duration::from_millis(500);
    let broker = CeleryBroker::new(config).unwrap();
    let t0 = Instant::now();
    let err = broker.publish(&video("X", "simple")).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        broker.ping().await,
        Err(BrokerError::Unavailable(_))
    ));
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The claims are Redis's, but the broadcast is owed: the revoke is an error, so it stays
    // pending and is delivered again.
    let task = video("Y", "simple");
    assert!(matches!(
        broker.revoke(std::slice::from_ref(&task.id)).await,
        Err(BrokerError::Unavailable(_))
    ));
    assert_eq!(broker.take_out_cancelled().await.unwrap(), None);
}
