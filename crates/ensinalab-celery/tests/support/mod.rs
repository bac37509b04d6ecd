//! A real Celery worker per test: the reference worker from `apps/worker`, run from the
//! `.venv/worker` that `scripts/ensure-celery-venv.sh` installs, on the test's own Redis DB and
//! queue, killed (whole process group) when the guard drops, panics included.

// Test support: a failed setup step should panic with its cause, like in a #[test].
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::{BriefingId, OptionId, TaskId, VideoId};
use ensinalab_ports::{TaskBroker, TaskKind, TaskRequest, TaskSnapshot};

/// Redis the tests talk to (scripts/ensure-redis.sh starts it).
pub const REDIS: &str = "redis://127.0.0.1:6379";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A unique queue name, so reruns and parallel tests never share messages.
pub fn unique_queue(test: &str) -> String {
    format!("ensinalab-test-{test}-{}", uuid::Uuid::new_v4().simple())
}

pub fn broker(db: u8, queue: &str) -> CeleryBroker {
    let mut config = CeleryConfig::new(format!("{REDIS}/{db}")).with_queue(queue);
    config.command_timeout = Duration::from_secs(5);
    CeleryBroker::new(config).unwrap()
}

pub async fn raw_connection(db: u8) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("{REDIS}/{db}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub use ensinalab_celery::testing::{Durations, process_is_dead};

/// The shared real worker, plus this suite's rule: the queue is unique to the test, so leave
/// nothing of it behind in the Redis it ran on.
pub struct Worker {
    inner: ensinalab_celery::testing::Worker,
    pub node: String,
    url: String,
    queue: String,
}

impl Worker {
    /// Starts `celery worker -P prefork -c 2` on DB `db`, queue `queue`; returns once it
    /// answers `inspect active`.
    pub async fn start(db: u8, queue: &str, durations: Durations) -> Self {
        Self::start_with_env(db, queue, durations, &[]).await
    }

    /// Same, with extra environment for the worker.
    pub async fn start_with_env(
        db: u8,
        queue: &str,
        durations: Durations,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_on(&format!("{REDIS}/{db}"), queue, durations, env).await
    }

    /// Same, on any Redis (a private server's URL).
    pub async fn start_with_url(url: &str, queue: &str, durations: Durations) -> Self {
        Self::start_on(url, queue, durations, &[]).await
    }

    async fn start_on(url: &str, queue: &str, durations: Durations, env: &[(&str, &str)]) -> Self {
        let inner = ensinalab_celery::testing::Worker::start(url, queue, durations, env).await;
        Self {
            node: inner.node().to_owned(),
            inner,
            url: url.to_owned(),
            queue: queue.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        self.inner.log_text()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the worker's main process.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.inner.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Whether the worker's log shows it ever received `id`.
    pub fn received(&self, id: &TaskId) -> bool {
        self.inner.received(id.as_str())
    }

    /// Whether the worker took `id`'s message and discarded it as revoked, without running it.
    pub fn discarded(&self, id: &TaskId) -> bool {
        self.inner.discarded(id.as_str())
    }

    /// Whether the worker's log shows `id` succeeded.
    pub fn succeeded(&self, id: &TaskId) -> bool {
        self.inner.succeeded(id.as_str())
    }

    /// Waits until the worker has discarded every one of `ids` (panics after `within`), then
    /// checks that none of them succeeded.
    pub async fn wait_discarded(&self, ids: &[&TaskId], within: Duration) {
        wait_discarded(&self.inner, ids, within).await;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(self.url.as_str())
            && let Ok(mut conn) = client.get_connection()
        {
            let keys: Vec<String> = ["", "\x06\x163", "\x06\x166", "\x06\x169"]
                .iter()
                .map(|s| format!("{}{s}", self.queue))
                .collect();
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

pub fn new_id() -> TaskId {
    TaskId::parse(&uuid::Uuid::new_v4().to_string()).unwrap()
}

pub fn video(title: &str, generator_type: &str) -> TaskRequest {
    TaskRequest {
        id: new_id(),
        kind: TaskKind::GenerateVideo {
            video_id: VideoId(41),
            briefing_id: BriefingId(7),
            option_id: OptionId(3),
            title: title.to_owned(),
            generator_type: generator_type.to_owned(),
            duration_minutes: 5,
        },
    }
}

pub fn options(title: &str) -> TaskRequest {
    TaskRequest {
        id: new_id(),
        kind: TaskKind::GenerateOptions {
            briefing_id: BriefingId(7),
            title: title.to_owned(),
            description: "Fotossíntese para o 6º ano".to_owned(),
            duration_minutes: 5,
        },
    }
}

/// Polls `states` until `done` holds for the snapshot of `id` (panics after `within`).
pub async fn wait_for(
    broker: &CeleryBroker,
    id: &TaskId,
    within: Duration,
    what: &str,
    done: impl Fn(&TaskSnapshot) -> bool,
) -> TaskSnapshot {
    let started = Instant::now();
    loop {
        let snapshot = broker
            .states(std::slice::from_ref(id))
            .await
            .unwrap()
            .remove(0);
        if done(&snapshot) {
            return snapshot;
        }
        assert!(
            started.elapsed() < within,
            "{id} not {what} within {within:?}; last: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pool child's pid a running task reports (STARTED `{pid, hostname}`, PROGRESS `{.., pid}`).
pub fn running_pid(s: &TaskSnapshot) -> Option<u32> {
    if !s.state.is_running() {
        return None;
    }
    s.info
        .as_ref()?
        .get("pid")?
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
}

/// How many messages wait in the list `queue`.
pub async fn llen(conn: &mut redis::aio::MultiplexedConnection, queue: &str) -> usize {
    redis::cmd("LLEN")
        .arg(queue)
        .query_async(conn)
        .await
        .expect("LLEN answers")
}

/// Waits until `worker` discarded every one of `ids` (each claimed by a cancel), and checks it
/// ran none of them.
pub async fn wait_discarded(
    worker: &ensinalab_celery::testing::Worker,
    ids: &[&TaskId],
    within: Duration,
) {
    let started = Instant::now();
    while !ids.iter().all(|id| worker.discarded(id.as_str())) {
        assert!(
            started.elapsed() < within,
            "not all of {ids:?} discarded within {within:?}; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in ids {
        assert!(
            !worker.succeeded(id.as_str()),
            "{id} ran; log:\n{}",
            worker.log_text()
        );
    }
}

/// Publishes `task` and waits until a pool process runs it: that process's pid.
pub async fn publish_running(broker: &CeleryBroker, task: &TaskRequest) -> u32 {
    broker.publish(task).await.unwrap();
    let running = wait_for(broker, &task.id, Duration::from_secs(30), "running", |s| {
        running_pid(s).is_some()
    })
    .await;
    running_pid(&running).unwrap()
}

/// A worker whose jobs finish in moments (a suite may shadow it with its own).
pub const QUICK: Durations = Durations {
    options_secs: 0.3,
    video_secs: 3.0,
    video_steps: 6,
};
/// A worker whose videos run two minutes: long enough to be cancelled while running.
pub const SLOW: Durations = Durations {
    options_secs: 0.2,
    video_secs: 120.0,
    video_steps: 120,
};
