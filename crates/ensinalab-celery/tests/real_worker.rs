//! The adapter against a real, stock Celery 5.7 worker (apps/worker, prefork, concurrency 2).
//! Each test starts its own worker on its OWN Redis DB number and a unique queue, so tests run
//! in parallel without hearing each other's broadcasts (the pidbox channel carries the DB).
//!
//! DBs: 1 stock worker, 8 compressed results, 9 run, 10 cancel running, 11 cancel queued, 12 no worker,
//! 13 cancel-all, 14 failure, 15 captured values.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ensinalab_celery::testing::{Worker as AnyWorker, WorkerKind};
use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::{CeleryState, TaskId};
use ensinalab_ports::{BrokerError, RevokeOutcome, TaskBroker, TaskRequest};
use futures_util::StreamExt as _;
use serde_json::Value;
use support::*;

/// Messages waiting in `queue`.
/// The one task's snapshot, as a list of one.
async fn state_of(broker: &CeleryBroker, id: &TaskId) -> Vec<ensinalab_ports::TaskSnapshot> {
    broker
        .states(std::slice::from_ref(id))
        .await
        .expect("states answer")
}

fn is_running(s: &ensinalab_ports::TaskSnapshot) -> bool {
    running_pid(s).is_some()
}

#[tokio::test]
async fn published_tasks_run_on_the_worker_and_report_progress_then_success() {
    let (db, queue) = (9, unique_queue("run"));
    let _worker = Worker::start(db, &queue, QUICK).await;
    let broker = broker(db, &queue);
    let mut feed = broker.watch();
    // let the feed subscribe before anything is published
    tokio::time::sleep(Duration::from_millis(300)).await;

    let opts = options("Fotossíntese");
    let vid = video("Fotossíntese", "simple");
    let avatar = video("Fotossíntese", "avatar");
    for task in [&opts, &vid, &avatar] {
        broker.publish(task).await.unwrap();
    }

    let mut saw_progress = None;
    let started = Instant::now();
    loop {
        let ids = [opts.id.clone(), vid.id.clone(), avatar.id.clone(), new_id()];
        let states = broker.states(&ids).await.unwrap();
        assert_eq!(states.len(), 4);
        assert_eq!(states[3].state, CeleryState::Pending, "unknown id");
        if states[1].state == CeleryState::Custom("PROGRESS".into()) {
            let p = states[1].progress.expect("PROGRESS carries a progress");
            assert!((0.0..=1.0).contains(&p));
            if p > 0.0 {
                saw_progress = Some(p);
            }
        }
        if states[..3].iter().all(|s| s.state == CeleryState::Success) {
            // final states: the state-only read (the active list's) must say the same
            let only = broker
                .states_only(&ids.iter().collect::<Vec<_>>())
                .await
                .unwrap();
            assert_eq!(
                only,
                states.iter().map(|s| s.state.clone()).collect::<Vec<_>>()
            );
            let options = states[0].info.as_ref().unwrap()["options"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(options.len(), 3);
            for o in &options {
                for field in ["title", "description", "generator_type"] {
                    assert!(o[field].is_string(), "{field} in {o}");
                }
            }
            let done = states[1].info.as_ref().unwrap();
            assert_eq!(done["status"], "completed");
            assert_eq!(done["video_id"], 41);
            assert!(done["url"].is_string());
            assert_eq!(
                states[2].info.as_ref().unwrap()["status"],
                "pending_approval"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "tasks did not finish: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = saw_progress.expect("the video reported PROGRESS between 0 and 1");
    println!("saw PROGRESS at {p:.2}");

    // the change feed told us about every task
    let mut heard = HashSet::new();
    let wanted: HashSet<_> = [opts.id, vid.id, avatar.id].into_iter().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !wanted.is_subset(&heard) {
        match tokio::time::timeout_at(deadline, feed.recv()).await {
            Ok(Some(id)) => {
                heard.insert(id);
            }
            other => panic!("feed stopped before hearing every task: {other:?}"),
        }
    }
}

/// A worker on `queue` running a long video: the worker, the adapter, the task and the pid of
/// the pool process running it.
async fn running_video(db: u8, queue: &str) -> (Worker, CeleryBroker, TaskRequest, u32) {
    let worker = Worker::start(db, queue, SLOW).await;
    let broker = broker(db, queue);
    let task = video("Longo", "simple");
    broker.publish(&task).await.expect("published");
    let running = wait_for(
        &broker,
        &task.id,
        Duration::from_secs(30),
        "running",
        is_running,
    )
    .await;
    let pid = running_pid(&running).expect("a running task's pid");
    (worker, broker, task, pid)
}

#[tokio::test]
async fn cancelling_a_running_video_kills_its_worker_process_and_it_never_completes() {
    let (db, queue) = (10, unique_queue("kill"));
    let (worker, broker, task, pid) = running_video(db, &queue).await;
    assert!(!process_is_dead(pid), "pool child {pid} alive before");

    let t0 = Instant::now();
    let report = broker.revoke(std::slice::from_ref(&task.id)).await.unwrap();
    assert_eq!(
        report[0].outcome,
        RevokeOutcome::Killed,
        "confirmed by the worker"
    );
    while !process_is_dead(pid) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pool child {pid} still alive"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "revoke -> pool child {pid} killed in {:.1} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );

    let revoked = wait_for(&broker, &task.id, Duration::from_secs(5), "revoked", |s| {
        s.state == CeleryState::Revoked
    })
    .await;
    assert_eq!(revoked.error.as_deref(), Some("terminated"));
    // it never completes: nothing overwrites REVOKED and no worker runs it any more
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = state_of(&broker, &task.id).await;
    assert_eq!(later[0].state, CeleryState::Revoked);
    let active = broker.inspect_active(Duration::from_secs(2)).await.unwrap();
    let mine = active.iter().find(|w| w.worker == worker.node).unwrap();
    assert!(
        mine.active.iter().all(|t| t.task_id != task.id),
        "{active:?}"
    );
}

#[tokio::test]
async fn a_kill_no_worker_confirms_within_the_window_is_only_signalled_and_reads_as_killed_once_confirmed()
 {
    let (db, queue) = (10, unique_queue("unconfirmed"));
    let (worker, broker, task, pid) = running_video(db, &queue).await;

    // A stopped main process still holds its subscription, so the broadcast is heard, but
    // nothing acts on it until the process goes on.
    worker.signal("STOP");
    let report = broker.revoke(std::slice::from_ref(&task.id)).await;
    worker.signal("CONT");
    assert_eq!(report.unwrap()[0].outcome, RevokeOutcome::Signalled);

    let killed = wait_for(&broker, &task.id, Duration::from_secs(10), "killed", |s| {
        s.state == CeleryState::Revoked
    })
    .await;
    assert_eq!(killed.error.as_deref(), Some("terminated"));
    assert!(process_is_dead(pid) || !worker.succeeded(&task.id));
    // What the re-broadcast then reads: the kill, confirmed.
    let again = broker.revoke(std::slice::from_ref(&task.id)).await.unwrap();
    assert_eq!(again[0].outcome, RevokeOutcome::Killed);
}

#[tokio::test]
async fn with_every_slot_busy_a_cancelled_queued_video_is_discarded_when_its_turn_comes_and_never_runs()
 {
    let (db, queue) = (11, unique_queue("queued"));
    let worker = Worker::start(db, &queue, SLOW).await;
    let broker = broker(db, &queue);
    let mut redis = raw_connection(db).await;
    let (a, b) = (video("A", "simple"), video("B", "simple"));
    broker.publish(&a).await.unwrap();
    broker.publish(&b).await.unwrap();
    for t in [&a, &b] {
        wait_for(
            &broker,
            &t.id,
            Duration::from_secs(30),
            "running",
            is_running,
        )
        .await;
    }
    let queued = video("C", "simple");
    broker.publish(&queued).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let len = llen(&mut redis, &queue).await;
    assert_eq!(len, 1, "both slots busy: C waits in the list");

    let report = broker
        .revoke(std::slice::from_ref(&queued.id))
        .await
        .unwrap();
    assert_eq!(report[0].outcome, RevokeOutcome::Claimed);
    let len = llen(&mut redis, &queue).await;
    assert_eq!(len, 1, "the cancel does not touch the queue");
    let s = state_of(&broker, &queued.id).await;
    assert_eq!(s[0].state, CeleryState::Revoked);
    assert_eq!(s[0].error.as_deref(), Some("revoked"));

    // Free both slots: the worker takes C next and discards it unrun.
    let report = broker.revoke(&[a.id.clone(), b.id.clone()]).await.unwrap();
    assert!(
        report.iter().all(|r| r.outcome == RevokeOutcome::Killed),
        "{report:?}"
    );
    worker
        .wait_discarded(&[&queued.id], Duration::from_secs(10))
        .await;
    let s = state_of(&broker, &queued.id).await;
    assert_eq!(s[0].state, CeleryState::Revoked);
    assert_eq!(s[0].error.as_deref(), Some("revoked"));
    assert!(worker.received(&a.id), "the log records received tasks");
}

#[tokio::test]
async fn a_cancel_while_no_worker_runs_keeps_the_task_from_running_once_one_starts() {
    let (db, queue) = (12, unique_queue("noworker"));
    let broker = broker(db, &queue);
    let mut redis = raw_connection(db).await;
    let cancelled = video("Cancelado", "simple");
    let control = options("Controle");
    broker.publish(&cancelled).await.unwrap();
    broker.publish(&control).await.unwrap();
    let never_published = new_id();
    // A task some worker claimed (as the contract has it: RECEIVED written unless the key
    // exists) before it died.
    let claimed = new_id();
    let taken: Option<String> = redis::cmd("SET")
        .arg(format!("celery-task-meta-{claimed}"))
        .arg(format!(
            r#"{{"status": "RECEIVED", "result": null, "traceback": null, "children": [], "date_done": null, "task_id": "{claimed}"}}"#
        ))
        .arg("NX")
        .arg("GET")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(taken, None);

    let report = broker
        .revoke(&[
            cancelled.id.clone(),
            never_published.clone(),
            claimed.clone(),
        ])
        .await
        .unwrap();
    // No worker claimed the first two: the cancel did, so neither can ever run.
    assert_eq!(report[0].outcome, RevokeOutcome::Claimed);
    assert_eq!(report[1].outcome, RevokeOutcome::Claimed);
    assert_eq!(report[2].outcome, RevokeOutcome::NoWorkerListening);
    assert!(!report[2].outcome.revoked());
    let len = llen(&mut redis, &queue).await;
    assert_eq!(len, 2, "the cancel does not touch the queue");

    // A worker started now heard no broadcast: it takes the cancelled message first (the
    // queue is FIFO) and discards it, then runs the control.
    let worker = Worker::start(db, &queue, QUICK).await;
    wait_for(&broker, &control.id, Duration::from_secs(30), "done", |s| {
        s.state == CeleryState::Success
    })
    .await;
    worker
        .wait_discarded(&[&cancelled.id], Duration::from_secs(5))
        .await;
    let s = state_of(&broker, &cancelled.id).await;
    assert_eq!(s[0].state, CeleryState::Revoked);
}

/// A cancel's claim binds only workers that claim. A stock Celery worker knows of a cancel
/// through the broadcast alone, so a task cancelled while no worker listened still runs on one
/// started afterwards: the gap left open while any worker of the queue does not claim.
#[tokio::test]
async fn a_task_cancelled_while_no_worker_ran_is_discarded_by_a_claiming_worker_but_still_run_by_a_stock_one()
 {
    let (db, queue) = (1, unique_queue("stock"));
    let url = format!("{REDIS}/{db}");
    let broker = broker(db, &queue);
    let cancel_while_no_worker_runs = |title: &'static str| {
        let broker = broker.clone();
        async move {
            let task = options(title);
            broker.publish(&task).await.unwrap();
            let report = broker.revoke(std::slice::from_ref(&task.id)).await.unwrap();
            assert_eq!(report[0].outcome, RevokeOutcome::Claimed);
            task
        }
    };

    let cancelled = cancel_while_no_worker_runs("Cancelado").await;
    let claiming = AnyWorker::start_kind(&url, &queue, QUICK, &[], WorkerKind::Claiming).await;
    wait_discarded(&claiming, &[&cancelled.id], Duration::from_secs(10)).await;
    assert_eq!(
        state_of(&broker, &cancelled.id).await[0].state,
        CeleryState::Revoked
    );
    drop(claiming);

    let cancelled = cancel_while_no_worker_runs("Cancelado também").await;
    let stock = AnyWorker::start_kind(&url, &queue, QUICK, &[], WorkerKind::Stock).await;
    wait_for(
        &broker,
        &cancelled.id,
        Duration::from_secs(30),
        "run by the stock worker",
        |s| s.state == CeleryState::Success,
    )
    .await;
    assert!(stock.succeeded(cancelled.id.as_str()));
    assert!(!stock.discarded(cancelled.id.as_str()));
}

#[tokio::test]
async fn cancel_all_sends_one_broadcast_and_leaves_nothing_running() {
    let (db, queue) = (13, unique_queue("all"));
    let worker = Worker::start(db, &queue, SLOW).await;
    let broker = broker(db, &queue);

    let finished = options("Pronto");
    broker.publish(&finished).await.unwrap();
    wait_for(
        &broker,
        &finished.id,
        Duration::from_secs(30),
        "done",
        |s| s.state == CeleryState::Success,
    )
    .await;
    let videos: Vec<_> = (0..6).map(|i| video(&format!("V{i}"), "simple")).collect();
    for v in &videos {
        broker.publish(v).await.unwrap();
    }
    let mut pids = Vec::new();
    for v in &videos[..2] {
        let s = wait_for(
            &broker,
            &v.id,
            Duration::from_secs(30),
            "running",
            is_running,
        )
        .await;
        pids.push(running_pid(&s).unwrap());
    }

    // count revoke broadcasts the way a worker hears them
    let client = redis::Client::open(format!("{REDIS}/{db}")).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.psubscribe(broker.pidbox_channel()).await.unwrap();
    let counter = tokio::spawn(async move {
        let mut revokes = Vec::new();
        let mut stream = pubsub.on_message();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, stream.next()).await {
            let env: Value = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
            let body = base64::engine::general_purpose::STANDARD
                .decode(env["body"].as_str().unwrap())
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            if body["method"] == "revoke" {
                revokes.push(body["arguments"].clone());
            }
        }
        revokes
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut ids = vec![finished.id.clone()];
    ids.extend(videos.iter().map(|v| v.id.clone()));
    let report = broker.revoke(&ids).await.unwrap();
    let outcomes: Vec<_> = report.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes[0], RevokeOutcome::FinishedFirst);
    assert_eq!(&outcomes[1..3], [RevokeOutcome::Killed; 2]);
    assert_eq!(&outcomes[3..], [RevokeOutcome::Claimed; 4]);

    let revokes = counter.await.unwrap();
    assert_eq!(revokes.len(), 1, "one broadcast: {revokes:?}");
    assert_eq!(revokes[0]["terminate"], true);
    assert_eq!(revokes[0]["signal"], "SIGKILL");
    let listed: HashSet<&str> = revokes[0]["task_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: HashSet<&str> = videos.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(listed, expected);

    for pid in pids {
        assert!(process_is_dead(pid), "pool child {pid} survived");
    }
    let states = broker.states(&ids[1..]).await.unwrap();
    assert!(
        states.iter().all(|s| s.state == CeleryState::Revoked),
        "{states:?}"
    );
    let active = broker.inspect_active(Duration::from_secs(2)).await.unwrap();
    let mine = active.iter().find(|w| w.worker == worker.node).unwrap();
    assert!(mine.active.is_empty(), "still running: {:?}", mine.active);
    // inspect cleaned up its reply binding and reply lists
    let mut redis = raw_connection(db).await;
    let bindings: usize = redis::cmd("SCARD")
        .arg("_kombu.binding.reply.celery.pidbox")
        .query_async(&mut redis)
        .await
        .unwrap();
    let reply_lists: Vec<String> = redis::cmd("KEYS")
        .arg("*.reply.celery.pidbox*")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!((bindings, reply_lists), (0, Vec::<String>::new()));
    // The freed slots take the cancelled queued videos, and discard them unrun.
    let queued: Vec<&TaskId> = videos[2..].iter().map(|v| &v.id).collect();
    worker
        .wait_discarded(&queued, Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn a_failing_task_reads_as_failure_with_its_error_and_traceback() {
    let (db, queue) = (14, unique_queue("fail"));
    let _worker = Worker::start(db, &queue, QUICK).await;
    let broker = broker(db, &queue);
    let task = video("[fail] Fotossíntese", "simple");
    broker.publish(&task).await.unwrap();
    let s = wait_for(&broker, &task.id, Duration::from_secs(30), "failed", |s| {
        s.state == CeleryState::Failure
    })
    .await;
    assert_eq!(
        s.error.as_deref(),
        Some("ConnectionError: Failed to connect to OpenAI API")
    );
    let tb = s.traceback.unwrap();
    assert!(tb.starts_with("Traceback (most recent call last)"), "{tb}");
    assert!(
        tb.contains("ConnectionError: Failed to connect to OpenAI API"),
        "{tb}"
    );
    // revoking a finished task claims nothing
    let report = broker.revoke(std::slice::from_ref(&task.id)).await.unwrap();
    assert_eq!(report[0].outcome, RevokeOutcome::FinishedFirst);
}

#[tokio::test]
async fn captured_backend_values_decode_through_one_mget() {
    let db = 15;
    let broker = broker(db, "celery");
    let mut redis = raw_connection(db).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut ids = Vec::new();
    let mut expected = Vec::new();
    for (file, state, error) in [
        ("result-started.json", "STARTED", None),
        ("result-progress.json", "PROGRESS", None),
        (
            "result-failure-valueerror.json",
            "FAILURE",
            Some("ValueError: boom"),
        ),
        (
            "result-revoked-terminated.json",
            "REVOKED",
            Some("terminated"),
        ),
        (
            "result-revoked-queued-first-write.json",
            "REVOKED",
            Some("revoked"),
        ),
    ] {
        let sample: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let id = new_id(); // fresh key: samples share ids and the DB may be reused
        let value = serde_json::to_string(&sample["value"]).unwrap();
        let _: () = redis::cmd("SETEX")
            .arg(format!("celery-task-meta-{id}"))
            .arg(60)
            .arg(value)
            .query_async(&mut redis)
            .await
            .unwrap();
        ids.push(id);
        expected.push((state, error));
    }
    let bz2 = new_id();
    let _: () = redis::cmd("SETEX")
        .arg(format!("celery-task-meta-{bz2}"))
        .arg(60)
        .arg(b"\x00celery-compressed\x00application/x-bz2\x00BZh9".as_slice())
        .query_async(&mut redis)
        .await
        .unwrap();
    ids.push(bz2);
    ids.push(new_id());

    let states = broker.states(&ids).await.unwrap();
    for (s, (state, error)) in states.iter().zip(&expected) {
        assert_eq!(s.state.as_str(), *state);
        assert_eq!(s.error.as_deref(), *error);
    }
    assert_eq!(states[1].progress, Some(0.0));
    assert_eq!(states[5].state, CeleryState::Pending);
    assert!(states[5].error.as_deref().unwrap().contains("x-bz2"));
    assert_eq!(
        states[6],
        ensinalab_ports::TaskSnapshot::pending(ids[6].clone())
    );
}

/// Reads go through a connection per thread, driven by that thread's runtime (an actix worker's
/// own): a runtime that shuts down takes only its own connection with it.
#[test]
fn a_read_after_another_threads_runtime_shut_down_still_answers() {
    let broker = broker(15, "celery");
    let read_on_a_thread_of_its_own = |broker: CeleryBroker| {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async { broker.states(&[new_id()]).await })
        })
        .join()
        .unwrap()
    };
    // The first thread's read makes a connection; its runtime, and the driver task of that
    // connection, end with the thread.
    read_on_a_thread_of_its_own(broker.clone()).unwrap();
    let second = read_on_a_thread_of_its_own(broker.clone());
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(second.unwrap()[0].state, CeleryState::Pending);
}

#[tokio::test]
async fn a_dead_redis_is_a_fast_unavailable_error() {
    let mut config = CeleryConfig::new("redis://127.0.0.1:1/0");
    config.command_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = CeleryBroker::connect(config.clone()).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    let broker = CeleryBroker::new(config).unwrap();
    let err = broker.states(&[new_id()]).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    let err = broker.revoke(&[new_id()]).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    let err = broker.publish(&video("x", "simple")).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn results_of_a_worker_with_gzip_result_compression_are_read() {
    let (db, queue) = (8, unique_queue("gzip"));
    let _worker = Worker::start_with_env(
        db,
        &queue,
        QUICK,
        &[("ENSINALAB_RESULT_COMPRESSION", "gzip")],
    )
    .await;
    let broker = broker(db, &queue);
    let mut redis = raw_connection(db).await;
    let task = options("Comprimido");
    broker.publish(&task).await.unwrap();
    let s = wait_for(&broker, &task.id, Duration::from_secs(30), "done", |s| {
        s.state == CeleryState::Success
    })
    .await;
    assert_eq!(s.info.unwrap()["options"].as_array().unwrap().len(), 3);
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(format!("celery-task-meta-{}", task.id))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        raw.starts_with(b"\x00celery-compressed\x00"),
        "the worker really compressed it"
    );
}
