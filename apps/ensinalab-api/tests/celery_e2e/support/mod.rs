//! The real application, booted by [`Application::build`] on port 0 exactly as `main` boots it
//! with `REDIS_URL` set (Celery broker, change feed, periodic sweep), over a real store, next to
//! a real worker; and HTTP helpers to talk to it.

pub mod browser;
pub mod redis_probe;
pub mod worker;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ensinalab_api::Application;
use ensinalab_api::auth::Authenticator;
use ensinalab_api::config::Config;
use ensinalab_api::ids::Hashids;
use ensinalab_store::SqlStore;
use ensinalab_store::testing::TestPostgres;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub use self::redis_probe::{Published, Subscription, backend_states, queued_task_ids};
pub use self::worker::{DeathWatch, Durations, Worker, parent_of, process_is_dead};

/// The machine's Redis (scripts/ensure-redis.sh starts it).
const REDIS: &str = "redis://127.0.0.1:6379";

/// A secret of the required length, for tests only.
const SECRET: &str = "celery-e2e-secret-celery-e2e-secret!";

pub fn redis_url(db: u8) -> String {
    format!("{REDIS}/{db}")
}

/// A queue name no other test or rerun uses.
pub fn unique_queue(test: &str) -> String {
    format!("ensinalab-e2e-{test}-{}", uuid::Uuid::new_v4().simple())
}

/// Which database the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file of the test's own (the zero-setup default's engine).
    Sqlite,
    /// A fresh database on the local PostgreSQL (the store's `testing` helper).
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The app's own store, for asserting what the database holds.
    pub store: SqlStore,
    pub ids: Hashids,
    pub db: u8,
    pub queue: String,
    auth: Authenticator,
    postgres: Option<TestPostgres>,
    sqlite_file: Option<PathBuf>,
}

impl TestApp {
    /// Boots the app with `REDIS_URL` on Redis DB `db` and `CELERY_QUEUE=queue`.
    pub async fn spawn(backend: Backend, db: u8, queue: &str) -> Self {
        Self::spawn_with(backend, db, queue, &[]).await
    }

    /// [`Self::spawn`], with more of the environment `main` would read.
    pub async fn spawn_with(backend: Backend, db: u8, queue: &str, extra: &[(&str, &str)]) -> Self {
        let (database_url, postgres, sqlite_file) = match backend {
            Backend::Sqlite => {
                let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("celery-e2e-{}.db", uuid::Uuid::new_v4().simple()));
                (
                    format!("sqlite://{}?mode=rwc", file.display()),
                    None,
                    Some(file),
                )
            }
            Backend::Postgres => {
                let pg = TestPostgres::new()
                    .await
                    .expect("PostgreSQL at 127.0.0.1:5432 (scripts/ensure-postgres.sh)");
                (pg.url().to_owned(), Some(pg), None)
            }
        };
        let env = [
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", database_url.clone()),
            ("REDIS_URL", redis_url(db)),
            ("CELERY_QUEUE", queue.to_owned()),
            ("JWT_SECRET", SECRET.to_owned()),
            ("HASHIDS_SALT", "ensinalab-e2e".to_owned()),
            ("RECONCILE_INTERVAL_SECS", "1".to_owned()),
            // These tests poll every 50 ms; the limits are the subject of other tests.
            ("RATE_LIMIT_PER_MIN", "100000".to_owned()),
            ("CANCEL_RATE_LIMIT_PER_MIN", "100000".to_owned()),
        ];
        let lookup = |key: &str| {
            extra
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()))
        };
        let config = Config::from_lookup(lookup).expect("test configuration is valid");
        let app = Application::build(&config).await.expect("app starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let store = match &postgres {
            Some(pg) => pg.store().clone(),
            None => SqlStore::connect(&database_url)
                .await
                .expect("sqlite store"),
        };
        Self {
            address,
            client: reqwest::Client::new(),
            store,
            ids: Hashids::new(&config.hashids).expect("hashids"),
            db,
            queue: queue.to_owned(),
            auth: Authenticator::new(&config.jwt),
            postgres,
            sqlite_file,
        }
    }

    /// Drops the test's database and queue.
    pub async fn cleanup(mut self) {
        if let Some(pg) = self.postgres.take() {
            pg.cleanup().await.expect("drop the test database");
        }
    }

    pub fn token(&self, user: i64) -> String {
        self.auth.mint(user, false, 600).expect("mint")
    }

    pub fn admin_token(&self, user: i64) -> String {
        self.auth.mint(user, true, 600).expect("mint")
    }

    /// The pidbox channel this app's revokes go to (`/<db>.celery.pidbox`).
    pub fn pidbox_channel(&self) -> String {
        format!("/{}.celery.pidbox", self.db)
    }

    /// Ids of the task messages still waiting in the app's queue.
    pub fn queued(&self) -> Vec<String> {
        queued_task_ids(self.db, &self.queue)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body read");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.address);
        self.send(self.client.get(url).bearer_auth(token)).await
    }

    pub async fn post(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.address);
        self.send(self.client.post(url).bearer_auth(token)).await
    }

    /// `POST /briefings`; returns the 201 body.
    pub async fn create_briefing(&self, token: &str, title: &str) -> Value {
        let url = format!("{}/briefings", self.address);
        let body = json!({
            "title": title,
            "description": "Fotossíntese para o 6º ano",
            "duration_minutes": 10
        });
        let (status, created) = self
            .send(self.client.post(url).bearer_auth(token).json(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["status"], "processing", "{created}");
        created
    }

    /// Creates a briefing and waits for the worker's options; returns the briefing's body.
    pub async fn briefing_with_options(&self, token: &str, title: &str) -> Value {
        let created = self.create_briefing(token, title).await;
        let hash = str_of(&created, "briefing_id");
        self.wait(
            &format!("/briefings/{hash}"),
            token,
            Duration::from_secs(20),
            |b| b["status"] == "options_ready",
        )
        .await
    }

    /// `POST /options/{hash}/select`; returns the 202 body (a queued video).
    pub async fn select(&self, token: &str, option: &str) -> Value {
        let (status, video) = self.post(&format!("/options/{option}/select"), token).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{video}");
        assert_eq!(video["status"], "queued", "{video}");
        video
    }

    /// Polls a GET route (200 expected) until `done` holds on its body; panics after `within`.
    pub async fn wait(
        &self,
        path: &str,
        token: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.get(path, token).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            if done(&body) {
                return body;
            }
            assert!(
                started.elapsed() < within,
                "{path} not as expected within {within:?}; last: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `GET /tasks/{id}/status` shows the task running in a pool process and
    /// returns that process's pid (STARTED `{pid, hostname}`, PROGRESS `{current, total, pid}`).
    pub async fn running_pid(&self, token: &str, task_id: &str) -> u32 {
        let body = self
            .wait(
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

impl Drop for TestApp {
    fn drop(&mut self) {
        self::redis_probe::delete_queue(self.db, &self.queue);
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

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
