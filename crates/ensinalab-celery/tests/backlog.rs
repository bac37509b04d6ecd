//! Cancelling with other users' backlog in the queue: 100,000 task messages of about 1 KB each
//! wait behind the cancelled ones, on a private redis-server that logs every command slower
//! than 5 ms (`slowlog-log-slower-than 5000`), scheduled ahead of ordinary processes so that
//! the SLOWLOG measures what the commands cost, not the other processes of a shared machine. A cancel of one task, a cancel-all of 1,000 and
//! the re-broadcast of both add nothing to its SLOWLOG, and a worker started afterwards (it
//! heard no broadcast) discards every cancelled task without running it. The passes that take
//! cancelled messages out of the queue, at its head, in its middle and at its tail, add
//! nothing to it either, and take out exactly those messages.

// Test helpers: a failed setup step should panic with its cause, like in a #[test].
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::{BriefingId, CeleryState, TaskId};
use ensinalab_ports::{RevokeOutcome, TaskBroker, TaskKind, TaskRequest};
use serde_json::Value;
use support::server::{Server, free_port};
use support::*;

/// Other users' messages waiting behind the cancelled ones.
const BACKLOG: usize = 100_000;
/// The bound: no command of the service may take this long in Redis.
const SLOWLOG_MICROS: &str = "5000";

fn celery(url: &str, queue: &str) -> CeleryBroker {
    let mut config = CeleryConfig::new(url).with_queue(queue);
    config.command_timeout = Duration::from_secs(10);
    CeleryBroker::new(config).unwrap()
}

/// An options task of another user whose message is about 1 KB.
fn other_users_task() -> TaskRequest {
    TaskRequest {
        id: new_id(),
        kind: TaskKind::GenerateOptions {
            briefing_id: BriefingId(90_210),
            title: "Briefing de outro usuário".to_owned(),
            description: "Ciclo da água".to_owned(),
            duration_minutes: 10,
        },
    }
}

/// LPUSHes `count` copies of one real message (published by the adapter itself into a scratch
/// queue), each with its own task id and delivery tag, in pipelined batches.
async fn seed_backlog(
    conn: &mut redis::aio::MultiplexedConnection,
    url: &str,
    queue: &str,
    count: usize,
) {
    let scratch = unique_queue("template");
    let template_task = other_users_task();
    celery(url, &scratch).publish(&template_task).await.unwrap();
    let template: String = redis::cmd("LPOP")
        .arg(&scratch)
        .query_async(conn)
        .await
        .unwrap();
    let parsed: Value = serde_json::from_str(&template).unwrap();
    let tag = parsed["properties"]["delivery_tag"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        (800..=1300).contains(&template.len()),
        "about 1 KB: {} bytes",
        template.len()
    );
    println!("backlog: {count} messages of {} bytes", template.len());
    let id = template_task.id.as_str().to_owned();
    for batch in 0..count.div_ceil(1000) {
        let size = (count - batch * 1000).min(1000);
        let messages: Vec<String> = (0..size)
            .map(|_| {
                template
                    .replace(&id, new_id().as_str())
                    .replace(&tag, &uuid::Uuid::new_v4().to_string())
            })
            .collect();
        let _: () = redis::cmd("LPUSH")
            .arg(queue)
            .arg(messages)
            .query_async(conn)
            .await
            .unwrap();
    }
}

/// A private redis-server ahead of other processes, logging every command over the bound, its
/// SLOWLOG `slowlog_max_len` long: the guard, its URL and a connection.
async fn private_redis(
    slowlog_max_len: &str,
) -> (Server, String, redis::aio::MultiplexedConnection) {
    let port = free_port();
    let server = Server::start_ahead_of_other_processes(
        port,
        &[
            "--slowlog-log-slower-than",
            SLOWLOG_MICROS,
            "--slowlog-max-len",
            slowlog_max_len,
        ],
    );
    let url = format!("redis://127.0.0.1:{port}/0");
    let conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    (server, url, conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_backlog_of_100_000_messages_no_cancel_command_takes_5_ms_and_no_cancelled_task_runs()
 {
    let (_server, url, mut conn) = private_redis("1024").await;
    let queue = unique_queue("backlog");
    let broker = celery(&url, &queue);

    // No worker runs. First in line (the queue is FIFO): one video a user cancels, the 1,000
    // tasks of a cancel-all, and a control task; the backlog behind them.
    let single = video("Cancelado", "simple");
    let all: Vec<TaskRequest> = (0..1_000)
        .map(|i| options(&format!("Cancelar tudo {i}")))
        .collect();
    let control = options("Controle");
    for task in std::iter::once(&single)
        .chain(&all)
        .chain(std::iter::once(&control))
    {
        broker.publish(task).await.unwrap();
    }
    seed_backlog(&mut conn, &url, &queue, BACKLOG).await;
    let queued = llen(&mut conn, &queue).await;
    assert_eq!(queued, BACKLOG + all.len() + 2);

    // Seeding's own commands may be slow: only what follows counts.
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut conn)
        .await
        .unwrap();

    let report = broker
        .revoke(std::slice::from_ref(&single.id))
        .await
        .unwrap();
    assert_eq!(report[0].outcome, RevokeOutcome::Claimed);
    let all_ids: Vec<TaskId> = all.iter().map(|t| t.id.clone()).collect();
    let report = broker.revoke(&all_ids).await.unwrap();
    assert!(
        report.iter().all(|r| r.outcome == RevokeOutcome::Claimed),
        "{:?}",
        report.iter().find(|r| r.outcome != RevokeOutcome::Claimed)
    );
    // What the dispatcher's re-broadcast sends: the same ids again, now final (REVOKED).
    let mut again = all_ids.clone();
    again.push(single.id.clone());
    let report = broker.revoke(&again).await.unwrap();
    assert!(
        report
            .iter()
            .all(|r| r.outcome == RevokeOutcome::AlreadyFinished),
        "{report:?}"
    );

    let slow: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(1024)
        .query_async::<redis::Value>(&mut conn)
        .await
        .map(|v| slowlog_entries(&v))
        .unwrap();
    assert!(
        slow.is_empty(),
        "commands slower than {SLOWLOG_MICROS} us: {slow:#?}"
    );
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    for line in stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_set:") || l.starts_with("cmdstat_publish:"))
    {
        println!("{line}");
    }
    assert_eq!(
        llen(&mut conn, &queue).await,
        queued,
        "a cancel never touches the queue"
    );

    // A worker started now heard no broadcast: it takes the cancelled messages first and
    // discards them unrun, then runs the control, then the backlog (stopped when dropped).
    let worker = Worker::start_with_url(&url, &queue, QUICK).await;
    wait_for(
        &broker,
        &control.id,
        Duration::from_secs(120),
        "done",
        |s| s.state == CeleryState::Success,
    )
    .await;
    let mut cancelled: Vec<&TaskId> = all_ids.iter().collect();
    cancelled.push(&single.id);
    worker
        .wait_discarded(&cancelled, Duration::from_secs(10))
        .await;
    let states = broker.states_only(&cancelled).await.unwrap();
    assert!(states.iter().all(|s| *s == CeleryState::Revoked));
}

/// The tasks of one round of [`with_a_backlog_of_100_000_messages_passes_take_the_cancelled_messages_out_with_no_command_over_5_ms`]:
/// two at the head, one in the middle, two at the tail.
struct Five {
    head: [TaskRequest; 2],
    middle: TaskRequest,
    tail: [TaskRequest; 2],
}

impl Five {
    fn new(round: &str) -> Self {
        let task = |place: &str| options(&format!("{round}: {place}"));
        Self {
            head: [task("head 1"), task("head 2")],
            middle: task("middle"),
            tail: [task("tail 1"), task("tail 2")],
        }
    }

    fn ids(&self) -> Vec<TaskId> {
        [
            &self.head[0],
            &self.head[1],
            &self.middle,
            &self.tail[0],
            &self.tail[1],
        ]
        .iter()
        .map(|t| t.id.clone())
        .collect()
    }
}

/// Every message of `queue`, read 10,000 at a time (outside any measured window).
async fn contents(conn: &mut redis::aio::MultiplexedConnection, queue: &str) -> Vec<String> {
    let mut all = Vec::new();
    loop {
        let chunk: Vec<String> = redis::cmd("LRANGE")
            .arg(queue)
            .arg(all.len())
            .arg(all.len() + 9_999)
            .query_async(conn)
            .await
            .unwrap();
        let done = chunk.len() < 10_000;
        all.extend(chunk);
        if done {
            return all;
        }
    }
}

/// The `headers.id` of a task message.
fn message_id(message: &str) -> String {
    let parsed: Value = serde_json::from_str(message).unwrap();
    parsed["headers"]["id"].as_str().unwrap().to_owned()
}

/// Runs passes until nothing is owed; the ids they reported, in order, and the wall time of
/// the first pass.
async fn passes_until_nothing_is_owed(
    broker: &CeleryBroker,
    conn: &mut redis::aio::MultiplexedConnection,
    queue: &str,
) -> (Vec<TaskId>, Duration) {
    let mut removed = Vec::new();
    let mut first = None;
    for _ in 0..10 {
        let started = Instant::now();
        let pass = broker.take_out_cancelled().await.unwrap().unwrap();
        first.get_or_insert(started.elapsed());
        removed.extend(pass.removed);
        let owed: usize = redis::cmd("SCARD")
            .arg(format!("ensinalab.unqueue.{queue}"))
            .query_async(conn)
            .await
            .unwrap();
        if owed == 0 && !pass.more {
            return (removed, first.unwrap());
        }
    }
    panic!("still owed after 10 passes");
}

async fn slowlog(conn: &mut redis::aio::MultiplexedConnection) -> Vec<Value> {
    redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async::<redis::Value>(conn)
        .await
        .map(|v| slowlog_entries(&v))
        .unwrap()
}

async fn config_set(conn: &mut redis::aio::MultiplexedConnection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

/// Sorted, so that two lists compare as multisets.
fn sorted(mut messages: Vec<String>) -> Vec<String> {
    messages.sort_unstable();
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_backlog_of_100_000_messages_passes_take_the_cancelled_messages_out_with_no_command_over_5_ms()
 {
    let (_server, url, mut conn) = private_redis("100000").await;
    let queue = unique_queue("unqueue");
    let broker = celery(&url, &queue);

    // From the tail (oldest, taken first) to the head: two rounds' tail tasks, half the
    // backlog, the rounds' middle tasks and a cancel-all of 1,000, the other half, the first
    // round's head tasks. The first round is checked against the 5 ms bound, the second is
    // measured; its head tasks are published once the first round is over (each removal far
    // from both ends moves the head message into the removed one's place).
    let (checked, measured) = (Five::new("checked"), Five::new("measured"));
    let all: Vec<TaskRequest> = (0..1_000)
        .map(|i| options(&format!("Cancelar tudo {i}")))
        .collect();
    for task in checked.tail.iter().chain(&measured.tail) {
        broker.publish(task).await.unwrap();
    }
    seed_backlog(&mut conn, &url, &queue, BACKLOG / 2).await;
    for task in [&checked.middle, &measured.middle].into_iter().chain(&all) {
        broker.publish(task).await.unwrap();
    }
    seed_backlog(&mut conn, &url, &queue, BACKLOG / 2).await;
    for task in &checked.head {
        broker.publish(task).await.unwrap();
    }
    let mut before = contents(&mut conn, &queue).await;
    assert_eq!(before.len(), BACKLOG + all.len() + 8);
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut conn)
        .await
        .unwrap();

    // Checked round: five single cancels and a cancel-all, then passes until nothing is owed.
    for id in checked.ids() {
        let report = broker.revoke(std::slice::from_ref(&id)).await.unwrap();
        assert_eq!(report[0].outcome, RevokeOutcome::Claimed);
    }
    let all_ids: Vec<TaskId> = all.iter().map(|t| t.id.clone()).collect();
    let started = Instant::now();
    let report = broker.revoke(&all_ids).await.unwrap();
    let cancel_all = started.elapsed();
    assert!(report.iter().all(|r| r.outcome == RevokeOutcome::Claimed));
    let (removed, first_pass) = passes_until_nothing_is_owed(&broker, &mut conn, &queue).await;
    let slow = slowlog(&mut conn).await;
    assert!(
        slow.is_empty(),
        "commands slower than {SLOWLOG_MICROS} us: {slow:#?}"
    );
    let mut expected: Vec<TaskId> = checked.ids();
    expected.extend(all_ids.iter().cloned());
    let reported: HashSet<&TaskId> = removed.iter().collect();
    assert_eq!(reported.len(), removed.len(), "an id reported twice");
    assert_eq!(reported, expected.iter().collect::<HashSet<_>>());
    assert_eq!(
        llen(&mut conn, &queue).await,
        before.len() - expected.len(),
        "exactly the cancelled messages are gone"
    );
    println!(
        "checked round: cancel-all of 1,000 answered in {cancel_all:?}; the first pass took out {} messages in {first_pass:?}",
        removed.len()
    );

    // Measured round: every command's time is logged.
    for task in &measured.head {
        broker.publish(task).await.unwrap();
    }
    let published: Vec<String> = redis::cmd("LRANGE")
        .arg(&queue)
        .arg(0)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    before.extend(published);
    config_set(&mut conn, "slowlog-log-slower-than", "0").await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut conn)
        .await
        .unwrap();
    for id in measured.ids() {
        broker.revoke(std::slice::from_ref(&id)).await.unwrap();
    }
    let (removed_now, pass) = passes_until_nothing_is_owed(&broker, &mut conn, &queue).await;
    let logged = slowlog(&mut conn).await;
    config_set(&mut conn, "slowlog-log-slower-than", SLOWLOG_MICROS).await;
    assert_eq!(
        removed_now.iter().collect::<HashSet<_>>(),
        measured.ids().iter().collect::<HashSet<_>>()
    );
    let slowest = logged
        .iter()
        .filter(|e| !matches!(e[3][0].as_str(), Some("SLOWLOG" | "CONFIG")))
        .max_by_key(|e| e[2].as_i64())
        .unwrap();
    println!(
        "measured round: the pass took out the 5 in {pass:?}; {} commands, the slowest {} us: {}",
        logged.len(),
        slowest[2],
        slowest[3]
    );
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    for line in stats.lines().filter(|l| {
        [
            "lrange", "lrem", "evalsha", "lset", "lindex", "lpop", "scard", "sscan", "srem",
            "sadd", "mget", "set",
        ]
        .iter()
        .any(|c| l.starts_with(&format!("cmdstat_{c}:")))
    }) {
        println!("{line}");
    }

    // Exactly the cancelled messages are gone; every other one is there, unchanged.
    expected.extend(measured.ids());
    let gone: HashSet<String> = expected.iter().map(|id| id.as_str().to_owned()).collect();
    let after = contents(&mut conn, &queue).await;
    assert_eq!(after.len(), before.len() - gone.len());
    let kept: Vec<String> = before
        .into_iter()
        .filter(|m| !gone.contains(&message_id(m)))
        .collect();
    assert_eq!(sorted(after), sorted(kept), "other messages were touched");
}

const QUICK: Durations = Durations {
    options_secs: 0.05,
    video_secs: 0.1,
    video_steps: 1,
};

/// SLOWLOG GET entries as `[id, time, micros, [command, args...], ...]` JSON, arguments cut.
fn slowlog_entries(value: &redis::Value) -> Vec<Value> {
    let redis::Value::Array(entries) = value else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|entry| {
            let redis::Value::Array(fields) = entry else {
                return Value::Null;
            };
            Value::Array(fields.iter().map(to_json).collect())
        })
        .collect()
}

fn to_json(value: &redis::Value) -> Value {
    match value {
        redis::Value::Int(i) => Value::from(*i),
        redis::Value::BulkString(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            Value::from(text.chars().take(60).collect::<String>())
        }
        redis::Value::SimpleString(s) => Value::from(s.as_str()),
        redis::Value::Array(items) => Value::Array(items.iter().take(6).map(to_json).collect()),
        other => Value::from(format!("{other:?}")),
    }
}
