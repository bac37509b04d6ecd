//! `POST /tasks/cancel-all` over running and queued tasks: one broadcast, nothing left running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{
    Backend, CeleryApp, DeathWatch, Durations, Subscription, Worker, backend_states, option_of,
    redis_url, str_of, unique_queue,
};

/// Its own DB: every PUBLISH on `/7.celery.pidbox` during the cancel is counted.
const DB: u8 = 7;

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

#[tokio::test]
async fn cancel_all_sends_one_broadcast_and_leaves_nothing_running() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 60.0,
        video_steps: 60,
    };
    let queue = unique_queue("cancel-all");
    let worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let ready = app.briefing_with_options(&token, "Cancelar tudo").await;
    let option = option_of(&ready, "simple");

    // Two videos in the two pool processes, then two videos and two briefings behind them.
    let mut running = Vec::new();
    for _ in 0..2 {
        let video = app.select(&token, option).await;
        let pid = app.running_pid(&token, str_of(&video, "task_id")).await;
        running.push((video, pid));
    }
    let queued_videos = [
        app.select(&token, option).await,
        app.select(&token, option).await,
    ];
    let queued_briefings = [
        app.create_briefing(&token, "Outro briefing").await,
        app.create_briefing(&token, "Mais um briefing").await,
    ];
    let queued_tasks: BTreeSet<String> = queued_videos
        .iter()
        .chain(&queued_briefings)
        .map(|r| str_of(r, "task_id").to_owned())
        .collect();
    let running_tasks: BTreeSet<String> = running
        .iter()
        .map(|(v, _)| str_of(v, "task_id").to_owned())
        .collect();
    assert_eq!(
        app.queued().into_iter().collect::<BTreeSet<_>>(),
        queued_tasks
    );

    let meta = Subscription::start("celery-task-meta-*");
    let watches: Vec<_> = running
        .iter()
        .map(|(_, pid)| (*pid, DeathWatch::start(*pid, Duration::from_secs(10))))
        .collect();
    let pidbox = Subscription::start(&app.pidbox_channel());
    let sent = Instant::now();
    let (status, body) = app.post("/tasks/cancel-all", &token).await;
    let broadcasts = pidbox.stop();
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(body["message"], "6 tasks canceladas com sucesso");
    assert_eq!(body["cancelled"]["total"], 6);
    let video_hashes: BTreeSet<String> = running
        .iter()
        .map(|(v, _)| v)
        .chain(&queued_videos)
        .map(|v| str_of(v, "video_id").to_owned())
        .collect();
    assert_eq!(strings(&body["cancelled"]["videos"]), video_hashes);
    let briefing_hashes: BTreeSet<String> = queued_briefings
        .iter()
        .map(|b| str_of(b, "briefing_id").to_owned())
        .collect();
    assert_eq!(strings(&body["cancelled"]["briefings"]), briefing_hashes);
    let revokes: BTreeMap<String, (String, bool)> = body["revokes"]
        .as_array()
        .unwrap_or_else(|| panic!("no revokes in {body}"))
        .iter()
        .map(|r| {
            (
                str_of(r, "task_id").to_owned(),
                (str_of(r, "revoke").to_owned(), r["task_revoked"] == true),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, bool)> = running_tasks
        .iter()
        .map(|t| (t.clone(), ("killed".to_owned(), true)))
        .chain(
            queued_tasks
                .iter()
                .map(|t| (t.clone(), ("claimed".to_owned(), true))),
        )
        .collect();
    assert_eq!(revokes, expected, "{body}");

    // ONE message on the pidbox channel: the revoke of every id, terminate with SIGKILL.
    assert_eq!(
        broadcasts.len(),
        1,
        "PUBLISHes on {}: {:?}",
        app.pidbox_channel(),
        broadcasts
            .iter()
            .map(|p| p.control_body())
            .collect::<Vec<_>>()
    );
    let revoke = broadcasts[0].control_body();
    assert_eq!(revoke["method"], "revoke", "{revoke}");
    assert_eq!(revoke["arguments"]["terminate"], true, "{revoke}");
    assert_eq!(revoke["arguments"]["signal"], "SIGKILL", "{revoke}");
    let signalled = strings(&revoke["arguments"]["task_id"]);
    assert!(signalled.is_superset(&running_tasks), "{revoke}");
    assert!(
        signalled.is_subset(&running_tasks.union(&queued_tasks).cloned().collect()),
        "{revoke}"
    );

    for (pid, watch) in watches {
        let died = watch
            .died_at()
            .await
            .unwrap_or_else(|| panic!("pool process {pid} alive 10 s after cancel-all"));
        println!(
            "cancel-all request -> pool process {pid} killed: {:?}",
            died.saturating_duration_since(sent)
        );
    }
    // Nothing running, by the worker's own account and by the API's.
    let broker = CeleryBroker::new(CeleryConfig::new(redis_url(DB)).with_queue(&queue))
        .expect("celery config");
    let started = Instant::now();
    loop {
        let replies = broker
            .inspect_active(Duration::from_millis(500))
            .await
            .expect("inspect active");
        let mine = replies.iter().find(|r| r.worker == worker.node());
        if mine.is_some_and(|r| r.active.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the worker still runs tasks: {replies:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, active) = app.get("/tasks/active", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(active["total"], 0, "{active}");
    assert_eq!(active["tasks"], serde_json::json!([]));

    // A control video published now runs behind the cancelled messages, which the removal pass
    // took out of the queue or the freed pool processes' worker discarded by then.
    let control = app.select(&token, option).await;
    app.running_pid(&token, str_of(&control, "task_id")).await;
    let seen = meta.stop();
    for task in &queued_tasks {
        let states = backend_states(&seen, task);
        assert!(
            states.iter().all(|s| s == "REVOKED"),
            "{task} went through {states:?}"
        );
        assert!(
            (!worker.received(task) || worker.discarded(task)) && !worker.succeeded(task),
            "the worker did not discard {task} unrun; log:\n{}",
            worker.log_text()
        );
    }
    for task in &running_tasks {
        let states = backend_states(&seen, task);
        assert!(!states.iter().any(|s| s == "SUCCESS"), "{states:?}");
    }

    app.cleanup().await;
}
