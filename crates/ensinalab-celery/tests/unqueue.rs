//! Taking cancelled tasks' messages out of the queue, against the shared Redis (DB 7, a unique
//! queue per test) and a real worker: what a cancel owes, what a pass removes and reports, two
//! passes racing, and a worker that does not claim started after the passes.
//! (The 100,000-message backlog and the 5 ms bound: `tests/backlog.rs`.)

// Test helpers: a failed setup step should panic with its cause, like in a #[test].
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use ensinalab_celery::CeleryBroker;
use ensinalab_domain::{CeleryState, TaskId};
use ensinalab_ports::{RevokeOutcome, TakenOut, TaskBroker, TaskRequest};
use support::*;

const DB: u8 = 7;

const QUICK: Durations = Durations {
    options_secs: 0.05,
    video_secs: 0.1,
    video_steps: 1,
};

async fn owed(redis: &mut redis::aio::MultiplexedConnection, queue: &str) -> HashSet<String> {
    redis::cmd("SMEMBERS")
        .arg(format!("ensinalab.unqueue.{queue}"))
        .query_async(redis)
        .await
        .unwrap()
}

async fn pass(broker: &CeleryBroker) -> TakenOut {
    broker.take_out_cancelled().await.unwrap().unwrap()
}

/// Deletes the queue's keys and its removal sets when the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(format!("{REDIS}/{DB}"))
            && let Ok(mut conn) = client.get_connection()
        {
            let owed = format!("ensinalab.unqueue.{}", self.0);
            let keys = [
                self.0.clone(),
                format!("{owed}.missed"),
                format!("{owed}.lease"),
                owed,
            ];
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query(&mut conn);
        }
    }
}

async fn publish_all(broker: &CeleryBroker, tasks: &[TaskRequest]) {
    for task in tasks {
        broker.publish(task).await.unwrap();
    }
}

fn ids(tasks: &[TaskRequest]) -> Vec<TaskId> {
    tasks.iter().map(|t| t.id.clone()).collect()
}

#[tokio::test]
async fn a_pass_looks_only_for_the_tasks_whose_claim_the_cancel_won() {
    let queue = unique_queue("owe");
    let _cleanup = Cleanup(queue.clone());
    let broker = broker(DB, &queue);
    let mut redis = raw_connection(DB).await;
    let queued = options("Na fila");
    let claimed = options("Reivindicada por um worker");
    publish_all(&broker, std::slice::from_ref(&queued)).await;
    // What a worker writes right before it runs a task (its message left the list then).
    let claimed_key = format!("celery-task-meta-{}", claimed.id.as_str());
    let _: () = redis::cmd("SET")
        .arg(&claimed_key)
        .arg(format!(
            r#"{{"status": "RECEIVED", "result": null, "task_id": "{}"}}"#,
            claimed.id.as_str()
        ))
        .arg("EX")
        .arg(60)
        .query_async(&mut redis)
        .await
        .unwrap();

    let both = [queued.id.clone(), claimed.id.clone()];
    let report = broker.revoke(&both).await.unwrap();
    assert_eq!(report[0].outcome, RevokeOutcome::Claimed);
    assert_ne!(report[1].outcome, RevokeOutcome::Claimed);
    let first = pass(&broker).await;
    assert_eq!(first.removed, std::slice::from_ref(&queued.id));
    // The worker's task is not looked for again: nothing is owed after one walk.
    assert!(!first.more);
    assert!(owed(&mut redis, &queue).await.is_empty());

    // The dispatcher's re-broadcast of the worker's task: settled by the next pass without a
    // walk.
    broker
        .revoke(std::slice::from_ref(&claimed.id))
        .await
        .unwrap();
    assert_eq!(owed(&mut redis, &queue).await.len(), 1);
    assert_eq!(pass(&broker).await, TakenOut::default());
    assert!(owed(&mut redis, &queue).await.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&claimed_key)
        .arg(format!("celery-task-meta-{}", queued.id.as_str()))
        .query_async(&mut redis)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_published_after_its_cancel_is_taken_out_by_the_next_pass_and_an_id_never_queued_is_dropped_after_two()
 {
    let queue = unique_queue("late");
    let _cleanup = Cleanup(queue.clone());
    let broker = broker(DB, &queue);
    let mut redis = raw_connection(DB).await;
    let kept = options("Outro usuário");
    let late = options("Publicada depois do cancelamento");
    let never = options("Nunca publicada");
    publish_all(&broker, std::slice::from_ref(&kept)).await;
    broker
        .revoke(&[late.id.clone(), never.id.clone()])
        .await
        .unwrap();

    let first = pass(&broker).await;
    assert!(first.removed.is_empty());
    assert!(first.more, "both are still owed: missed once");
    assert_eq!(owed(&mut redis, &queue).await.len(), 2);

    publish_all(&broker, std::slice::from_ref(&late)).await;
    let second = pass(&broker).await;
    assert_eq!(second.removed, std::slice::from_ref(&late.id));
    assert!(!second.more);
    assert!(owed(&mut redis, &queue).await.is_empty());
    assert_eq!(llen(&mut redis, &queue).await, 1, "the other message stays");

    assert_eq!(pass(&broker).await, TakenOut::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_passes_racing_on_two_servers_report_each_removal_once() {
    let queue = unique_queue("race");
    let _cleanup = Cleanup(queue.clone());
    let (one, two) = (broker(DB, &queue), broker(DB, &queue));
    let mut redis = raw_connection(DB).await;
    let mut tasks = Vec::new();
    let mut cancelled = Vec::new();
    for i in 0..600 {
        let task = options(&format!("Tarefa {i}"));
        if i % 4 == 0 {
            cancelled.push(task.id.clone());
        }
        tasks.push(task);
    }
    publish_all(&one, &tasks).await;
    one.revoke(&cancelled).await.unwrap();

    let mut reported = Vec::new();
    for _ in 0..20 {
        let (a, b) = tokio::join!(pass(&one), pass(&two));
        reported.extend(a.removed);
        reported.extend(b.removed);
        if owed(&mut redis, &queue).await.is_empty() {
            break;
        }
    }

    let unique: HashSet<&TaskId> = reported.iter().collect();
    assert_eq!(unique.len(), reported.len(), "a removal reported twice");
    assert_eq!(unique, cancelled.iter().collect::<HashSet<_>>());
    assert_eq!(
        llen(&mut redis, &queue).await,
        tasks.len() - cancelled.len()
    );
}

#[tokio::test]
async fn a_worker_that_does_not_claim_started_after_the_passes_runs_none_of_the_cancelled_tasks() {
    let queue = unique_queue("stock");
    let _cleanup = Cleanup(queue.clone());
    let broker = broker(DB, &queue);
    let mut redis = raw_connection(DB).await;
    // Oldest first: the cancelled ones would be the worker's first tasks.
    let cancelled: Vec<TaskRequest> = (0..3).map(|i| options(&format!("Cancelada {i}"))).collect();
    let control = options("Controle");
    publish_all(&broker, &cancelled).await;
    publish_all(&broker, std::slice::from_ref(&control)).await;
    let report = broker.revoke(&ids(&cancelled)).await.unwrap();
    assert!(report.iter().all(|r| r.outcome == RevokeOutcome::Claimed));

    let mut removed = Vec::new();
    while !owed(&mut redis, &queue).await.is_empty() {
        removed.extend(pass(&broker).await.removed);
    }
    assert_eq!(
        removed.iter().collect::<HashSet<_>>(),
        cancelled.iter().map(|t| &t.id).collect::<HashSet<_>>()
    );
    assert_eq!(llen(&mut redis, &queue).await, 1);

    let worker = Worker::start_with_env(DB, &queue, QUICK, &[("ENSINALAB_CLAIM", "off")]).await;
    wait_for(&broker, &control.id, Duration::from_secs(60), "done", |s| {
        s.state == CeleryState::Success
    })
    .await;
    for task in &cancelled {
        assert!(
            !worker.received(&task.id),
            "{} reached the worker; log:\n{}",
            task.id,
            worker.log_text()
        );
    }
    let states = broker
        .states_only(&cancelled.iter().map(|t| &t.id).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        states.iter().all(|s| *s == CeleryState::Revoked),
        "{states:?}"
    );
}
