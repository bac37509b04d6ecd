//! The real application on port 0, booted the way a test needs it: as `main` boots it (from the
//! environment), or from parts over any store (SQLite or PostgreSQL) and any [`TaskBroker`];
//! and what a test asks of it beside HTTP: tokens, hashids, its store, the metrics listener.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ensinalab_api::Application;
use ensinalab_api::auth::Authenticator;
use ensinalab_api::config::Config;
use ensinalab_api::ids::Hashids;
use ensinalab_app::Service;
use ensinalab_celery::{CeleryBroker, WorkerOnline};
use ensinalab_domain::TaskId;
use ensinalab_jobs::dispatcher::DispatcherSettings;
use ensinalab_local::{LocalBroker, LocalConfig};
use ensinalab_ports::TaskBroker;
use ensinalab_store::SqlStore;
use ensinalab_store::testing::{TestPostgres, sqlite_memory};
use reqwest::StatusCode;
use tokio::sync::mpsc::Receiver;

use super::http::Http;

/// A secret of the required length, for tests only.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// The environment every test server starts from: port 0, a metrics listener on port 0, the
/// test secret, a sweep every second, and rate limits that never get in the way of a test that
/// is not about them.
const BASE_ENV: [(&str, &str); 7] = [
    ("BIND_ADDR", "127.0.0.1:0"),
    ("METRICS_ADDR", "127.0.0.1:0"),
    ("JWT_SECRET", SECRET),
    ("HASHIDS_SALT", "ensinalab"),
    ("RECONCILE_INTERVAL_SECS", "1"),
    ("RATE_LIMIT_PER_MIN", "100000"),
    ("CANCEL_RATE_LIMIT_PER_MIN", "100000"),
];

/// [`BASE_ENV`] with `env` over it: the configuration `main` would read (no environment read).
pub fn config(env: &[(&str, &str)]) -> Config {
    Config::from_lookup(|key| {
        env.iter()
            .chain(&BASE_ENV)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("test configuration is valid")
}

/// Tokens the test servers accept (those configured with [`config`]'s JWT settings).
pub fn authenticator() -> Authenticator {
    Authenticator::new(&config(&[]).jwt)
}

/// Polls `check` every 100 ms until it gives `Some`, or panics after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which database the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A fresh database on the local PostgreSQL (the store's `testing` helper).
    Postgres,
}

/// A migrated database of the test's own, dropped (PostgreSQL) or deleted (a SQLite file) at
/// the end.
pub struct TestDb {
    pub store: SqlStore,
    /// `None` for SQLite in memory: no other connection can reach it.
    url: Option<String>,
    postgres: Option<TestPostgres>,
    sqlite_file: Option<PathBuf>,
}

impl TestDb {
    /// SQLite in memory, or a fresh PostgreSQL database.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::of(sqlite_memory().await.expect("sqlite store")),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// A SQLite file, or a fresh PostgreSQL database: for an app that opens its database by
    /// URL.
    pub async fn on_disk(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("test-{}.db", uuid::Uuid::new_v4().simple()));
                let url = format!("sqlite://{}?mode=rwc", file.display());
                let store = SqlStore::connect(&url).await.expect("sqlite store");
                store.migrate().await.expect("sqlite schema");
                Self {
                    store,
                    url: Some(url),
                    postgres: None,
                    sqlite_file: Some(file),
                }
            }
            Backend::Postgres => Self::postgres().await,
        }
    }

    async fn postgres() -> Self {
        let pg = TestPostgres::new()
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (scripts/ensure-postgres.sh)");
        Self {
            store: pg.store().clone(),
            url: Some(pg.url().to_owned()),
            postgres: Some(pg),
            sqlite_file: None,
        }
    }

    /// A store the test prepared and owns.
    pub fn of(store: SqlStore) -> Self {
        Self {
            store,
            url: None,
            postgres: None,
            sqlite_file: None,
        }
    }

    /// Its `DATABASE_URL`.
    pub fn url(&self) -> &str {
        self.url
            .as_deref()
            .expect("a database other connections can reach (TestDb::on_disk)")
    }

    /// Drops the PostgreSQL database, if any.
    pub async fn cleanup(mut self) {
        if let Some(pg) = self.postgres.take() {
            pg.cleanup().await.expect("drop the test database");
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

/// What the background jobs listen to: the broker's feed of changed task ids, and its
/// workers coming online.
#[derive(Default)]
pub struct Feeds {
    pub changes: Option<Receiver<TaskId>>,
    pub online: Option<Receiver<WorkerOnline>>,
}

impl Feeds {
    /// Both feeds of a Celery broker, as `main` wires them.
    pub fn celery(broker: &CeleryBroker) -> Self {
        Self {
            changes: Some(broker.watch()),
            online: Some(broker.workers_online()),
        }
    }

    pub fn changes(changes: Receiver<TaskId>) -> Self {
        Self {
            changes: Some(changes),
            online: None,
        }
    }
}

/// The real application on port 0 and a client to talk to it.
pub struct TestApp {
    pub http: Http,
    /// The app's own store, for preparing rows and asserting what the database holds.
    pub store: SqlStore,
    pub ids: Hashids,
    pub auth: Authenticator,
    metrics_port: Option<u16>,
    local: Option<LocalBroker>,
    db: TestDb,
}

/// The app's HTTP side: `app.get(..)`, `app.client`, `app.address`.
impl std::ops::Deref for TestApp {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl TestApp {
    /// Boots the app as `main` does ([`Application::build`]: migrations, broker chosen by
    /// `REDIS_URL`, the alert e-mail when configured) from `env` over [`config`]'s, on `db`.
    pub async fn build(db: TestDb, env: &[(&str, &str)]) -> Self {
        let database_url = [("DATABASE_URL", db.url())];
        let env: Vec<(&str, &str)> = env.iter().chain(&database_url).copied().collect();
        let config = config(&env);
        let app = Application::build(&config).await.expect("app starts");
        Self::run(app, &config, db)
    }

    /// The app on the in-process broker.
    pub fn local(db: TestDb, config: &Config, local: LocalConfig) -> Self {
        let broker = LocalBroker::new(local);
        let feeds = Feeds::changes(broker.watch());
        let mut app = Self::over(
            db,
            config,
            broker.clone(),
            feeds,
            DispatcherSettings::default(),
        );
        app.local = Some(broker);
        app
    }

    /// The app over any broker, its background jobs on `feeds`, its revoke dispatcher paced by
    /// `dispatch`.
    pub fn over<B: TaskBroker + 'static>(
        db: TestDb,
        config: &Config,
        broker: B,
        feeds: Feeds,
        dispatch: DispatcherSettings,
    ) -> Self {
        let service = Service::new(
            db.store.clone(),
            broker,
            ensinalab_api::startup::settings(config),
        );
        let app =
            Application::from_parts_with(config, service, feeds.changes, feeds.online, dispatch)
                .expect("app starts");
        Self::run(app, config, db)
    }

    fn run(app: Application, config: &Config, db: TestDb) -> Self {
        let http = Http::new(app.port(), reqwest::Client::new());
        let metrics_port = app.metrics_port();
        tokio::spawn(app.run_until_stopped());
        Self {
            http,
            store: db.store.clone(),
            ids: Hashids::new(&config.hashids).expect("hashids"),
            auth: Authenticator::new(&config.jwt),
            metrics_port,
            local: None,
            db,
        }
    }

    /// Gives up on any request after `limit` (a hang fails the test instead of stalling it).
    pub fn with_request_timeout(mut self, limit: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(limit)
            .build()
            .expect("client");
        self.http.client = client;
        self
    }

    /// Drops the PostgreSQL database, if any.
    pub async fn cleanup(self) {
        self.db.cleanup().await;
    }

    /// The in-process broker the app runs on.
    pub fn broker(&self) -> &LocalBroker {
        self.local
            .as_ref()
            .expect("this app runs on the local broker")
    }

    pub fn token(&self, user: i64) -> String {
        self.auth.mint(user, false, 600).expect("mint")
    }

    pub fn admin_token(&self, user: i64) -> String {
        self.auth.mint(user, true, 600).expect("mint")
    }

    pub fn hash(&self, key: i64) -> String {
        self.ids.encode(key)
    }

    /// The metrics listener's port (`METRICS_ADDR`, port 0 in tests).
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port.expect("a metrics listener")
    }

    /// A GET on the metrics listener: status and body.
    pub async fn scrape(&self, path: &str) -> (StatusCode, String) {
        let res = self
            .client
            .get(format!("http://127.0.0.1:{}{path}", self.metrics_port()))
            .send()
            .await
            .expect("the metrics listener answers");
        let status = res.status();
        (status, res.text().await.expect("a body"))
    }
}
