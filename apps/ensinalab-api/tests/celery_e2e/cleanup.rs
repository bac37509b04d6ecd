//! Partial files on the real worker's disk: a cancelled or failed job's directory is deleted
//! once the kill was sent; the orphan sweep deletes what no job in flight claims, and nothing
//! else.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;

use crate::support::{
    Backend, CeleryApp, Durations, Worker, option_of, redis_url, str_of, unique_queue,
};

const DB: u8 = 5;

/// Waits until `done` holds, polling every 50 ms; panics with `what` and the worker's log after
/// `within`.
async fn eventually(worker: &Worker, within: Duration, what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}; worker log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets a directory's modification time an hour back.
fn age(dir: &Path) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(dir)
        .and_then(|f| f.set_modified(hour_ago))
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", dir.display()));
}

#[tokio::test]
async fn a_cancelled_videos_partial_directory_is_deleted_after_the_kill() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 30.0,
        video_steps: 30,
    };
    let queue = unique_queue("cleanup-cancel");
    let worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Limpeza").await;
    let video = app.select(&token, option_of(&briefing, "simple")).await;
    let (hash, task) = (str_of(&video, "video_id"), str_of(&video, "task_id"));
    app.running_pid(&token, task).await;
    let partial = worker.partial_dir(task);
    eventually(
        &worker,
        Duration::from_secs(10),
        "partial output written",
        || partial.join("video.part").is_file(),
    )
    .await;

    let (status, body) = app.post(&format!("/videos/{hash}/cancel"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cancelled = Instant::now();
    eventually(
        &worker,
        Duration::from_secs(10),
        "partial directory deleted",
        || !partial.exists(),
    )
    .await;
    println!(
        "cancel -> partial directory gone: {:?}",
        cancelled.elapsed()
    );
    let video_id = app.ids.video(hash).expect("our hash").get();
    let logged = format!("cleanup of video {video_id} (task {task}, user): files deleted");
    assert!(worker.log_text().contains(&logged), "{}", worker.log_text());
    // It never finished, so nothing reached the output either.
    assert!(!worker.work_dir().join("../output").join(task).exists());

    app.cleanup().await;
}

#[tokio::test]
async fn a_failed_jobs_partial_directory_is_deleted() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 1.0,
        video_steps: 2,
    };
    let queue = unique_queue("cleanup-failed");
    let worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let app = CeleryApp::spawn(Backend::Sqlite, DB, &queue).await;
    let token = app.token(1);
    let created = app.create_briefing(&token, "[fail] Limpeza").await;
    let task = str_of(&created, "task_id").to_owned();
    // The worker wrote its partial output, then raised.
    eventually(&worker, Duration::from_secs(20), "the task failed", || {
        worker.log_text().contains(&format!("[{task}] raised"))
    })
    .await;
    eventually(
        &worker,
        Duration::from_secs(10),
        "partial directory deleted",
        || {
            worker
                .log_text()
                .contains(&format!("(task {task}, failed): files deleted"))
        },
    )
    .await;
    assert!(!worker.partial_dir(&task).exists());

    app.cleanup().await;
}

#[tokio::test]
async fn the_orphan_sweep_deletes_what_no_job_in_flight_claims_and_nothing_else() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 60.0,
        video_steps: 60,
    };
    let queue = unique_queue("cleanup-sweep");
    let worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let work = worker.work_dir();
    // Left by a worker killed long ago: a task directory nobody will ever clean up.
    let orphan = work.join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("video.part"), "frame 0\n").unwrap();
    age(&orphan);
    // Not ours: a directory whose name is no task id, and a file beside the work dir.
    let stranger = work.join("operator-notes");
    std::fs::create_dir_all(&stranger).unwrap();
    age(&stranger);
    let outside = work.with_file_name("precious.txt");
    std::fs::write(&outside, "keep me").unwrap();

    let app =
        CeleryApp::spawn_with(Backend::Sqlite, DB, &queue, &[("ORPHAN_SWEEP_SECS", "1")]).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Varredura").await;
    let video = app.select(&token, option_of(&briefing, "simple")).await;
    let task = str_of(&video, "task_id");
    app.running_pid(&token, task).await;
    let live = worker.partial_dir(task);
    eventually(
        &worker,
        Duration::from_secs(10),
        "partial output written",
        || live.join("video.part").is_file(),
    )
    .await;
    // As old as the orphan: only being in flight spares it.
    age(&live);

    eventually(&worker, Duration::from_secs(20), "orphan deleted", || {
        !orphan.exists()
    })
    .await;
    let sweeps = || worker.log_text().matches("orphan sweep:").count();
    let after = sweeps();
    eventually(&worker, Duration::from_secs(20), "another sweep", || {
        sweeps() > after
    })
    .await;
    assert!(
        live.join("video.part").is_file(),
        "a job in flight lost its files"
    );
    assert!(
        stranger.is_dir(),
        "a directory that is not a task's was deleted"
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");

    app.cleanup().await;
}
