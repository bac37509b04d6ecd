//! The real application, booted on port 0 exactly as `main` boots it with `REDIS_URL` set
//! (Celery broker, change feed, periodic sweep), over a real store, next to a real worker, on a
//! queue of the test's own; and what only these tests look at: the queue, the pidbox, a pool
//! process.

pub mod browser;
pub mod redis_probe;
pub mod worker;

use std::time::Duration;

use serde_json::Value;

pub use self::redis_probe::{Published, Subscription, backend_states, queued_task_ids};
pub use self::worker::{DeathWatch, Durations, Worker, parent_of, process_is_dead};
pub use crate::common::app::{Backend, TestApp, TestDb};
pub use crate::common::http::str_of;

/// The machine's Redis (scripts/ensure-redis.sh starts it).
const REDIS: &str = "redis://127.0.0.1:6379";

pub fn redis_url(db: u8) -> String {
    format!("{REDIS}/{db}")
}

/// A queue name no other test or rerun uses.
pub fn unique_queue(test: &str) -> String {
    crate::common::servers::unique_queue(&format!("e2e-{test}"))
}

/// A queue of the test's own on the shared Redis, deleted at the end (Redis is shared).
struct OwnQueue {
    db: u8,
    name: String,
}

impl Drop for OwnQueue {
    fn drop(&mut self) {
        self::redis_probe::delete_queue(self.db, &self.name);
    }
}

/// The app on Celery over Redis DB `db`, on its own queue.
pub struct CeleryApp {
    app: TestApp,
    queue: OwnQueue,
}

/// The shared app: `app.token(..)`, `app.get(..)`, `app.store`.
impl std::ops::Deref for CeleryApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl CeleryApp {
    /// Boots the app with `REDIS_URL` on Redis DB `db` and `CELERY_QUEUE=queue`.
    pub async fn spawn(backend: Backend, db: u8, queue: &str) -> Self {
        Self::spawn_with(backend, db, queue, &[]).await
    }

    /// [`Self::spawn`], with more of the environment `main` would read.
    pub async fn spawn_with(backend: Backend, db: u8, queue: &str, extra: &[(&str, &str)]) -> Self {
        let redis = redis_url(db);
        let celery = [("REDIS_URL", redis.as_str()), ("CELERY_QUEUE", queue)];
        let env: Vec<(&str, &str)> = extra.iter().chain(&celery).copied().collect();
        let app = TestApp::build(TestDb::on_disk(backend).await, &env).await;
        Self {
            app,
            queue: OwnQueue {
                db,
                name: queue.to_owned(),
            },
        }
    }

    /// Drops the test's database and queue.
    pub async fn cleanup(self) {
        self.app.cleanup().await;
    }

    /// The pidbox channel this app's revokes go to (`/<db>.celery.pidbox`).
    pub fn pidbox_channel(&self) -> String {
        format!("/{}.celery.pidbox", self.queue.db)
    }

    /// Ids of the task messages still waiting in the app's queue.
    pub fn queued(&self) -> Vec<String> {
        queued_task_ids(self.queue.db, &self.queue.name)
    }

    /// Waits until `GET /tasks/{id}/status` shows the task running in a pool process and
    /// returns that process's pid (STARTED `{pid, hostname}`, PROGRESS `{current, total, pid}`).
    pub async fn running_pid(&self, token: &str, task_id: &str) -> u32 {
        let body = self
            .wait_within(
                &format!("/tasks/{task_id}/status"),
                token,
                Duration::from_secs(20),
                |t| matches!(t["state"].as_str(), Some("STARTED" | "PROGRESS")),
            )
            .await;
        body["info"]["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or_else(|| panic!("no pid in {body}"))
    }
}

/// A video runs out of time after one second; options have a minute; the sweep looks every
/// second.
pub const VIDEO_TIMES_OUT: [(&str, &str); 4] = [
    ("AUTO_CANCEL_FACTOR", "1"),
    ("EXPECTED_VIDEO_SECS", "1"),
    ("EXPECTED_OPTIONS_SECS", "60"),
    ("AUTO_CANCEL_SWEEP_SECS", "1"),
];

/// The option of `briefing` with this `generator_type`.
pub fn option_of<'a>(briefing: &'a Value, generator_type: &str) -> &'a str {
    briefing["options"]
        .as_array()
        .and_then(|options| {
            options
                .iter()
                .find(|o| o["generator_type"] == generator_type)
        })
        .map(|o| str_of(o, "option_id"))
        .unwrap_or_else(|| panic!("no {generator_type} option in {briefing}"))
}
