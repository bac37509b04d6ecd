//! Servers the fault tests start, stop and restart themselves, on free ports of their own (the
//! machine's shared PostgreSQL 5432 and Redis 6379 are never touched), and the real app over
//! them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ensinalab_api::Application;
use ensinalab_api::auth::Authenticator;
use ensinalab_api::config::Config;
use ensinalab_api::ids::Hashids;
use ensinalab_app::Service;
use ensinalab_celery::{CeleryBroker, CeleryConfig, WorkerOnline};
use ensinalab_domain::TaskId;
use ensinalab_jobs::dispatcher::DispatcherSettings;
use ensinalab_ports::TaskBroker;
use ensinalab_store::SqlStore;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc::Receiver;

#[path = "../common/http.rs"]
mod http;
pub use http::Http;

pub const SECRET: &str = "fault-secret-fault-secret-fault-secret!";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Waits until `port` accepts connections, or panics after `limit`.
fn wait_listening(port: u16, limit: Duration, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < limit, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real SMTP server (aiosmtpd from `.venv/smtp`, scripts/ensure-smtp-venv.sh) on a free
/// port, writing every message it receives to a Maildir of its own.
pub struct SmtpServer {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

/// One received message: its raw headers and its body.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: String,
    pub body: String,
}

impl Received {
    /// The value of header `name` (first occurrence, folded lines joined).
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut lines = self.headers.lines().peekable();
        while let Some(line) = lines.next() {
            if line.to_ascii_lowercase().starts_with(&prefix) {
                let mut value = line[prefix.len()..].trim().to_owned();
                while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
                    value.push(' ');
                    value.push_str(next.trim());
                }
                return Some(value);
            }
        }
        None
    }
}

impl SmtpServer {
    pub fn start() -> Self {
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/smtp/bin/python");
        assert!(
            python.exists(),
            "{} missing: run scripts/ensure-smtp-venv.sh (scripts/test.sh does)",
            python.display()
        );
        let port = free_port();
        let dir = scratch_dir("ensinalab-smtp");
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.join("maildir"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        wait_listening(port, Duration::from_secs(20), "aiosmtpd");
        Self { port, dir, child }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Received> {
        let new = self.dir.join("maildir/new");
        let Ok(entries) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|raw| {
                let raw = raw.replace("\r\n", "\n");
                let (headers, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
                let mut mail = Received {
                    headers: headers.to_owned(),
                    body: body.to_owned(),
                };
                if mail
                    .header("Content-Transfer-Encoding")
                    .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"))
                {
                    mail.body = quoted_printable(&mail.body);
                }
                mail
            })
            .collect()
    }
}

/// A quoted-printable body decoded (RFC 2045 6.7): soft line breaks joined, `=XX` bytes
/// restored.
fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private `redis-server` with an fsync-always append-only file, so a stop (SIGKILL, the
/// way a crash looks) and a restart keep the queue and the result backend.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            dir: scratch_dir("ensinalab-redis"),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/ensure-redis.sh)");
        self.child = Some(child);
        wait_listening(self.port, Duration::from_secs(10), "redis-server");
    }

    /// Kills it (SIGKILL): clients see refused connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private PostgreSQL cluster (`initdb` + `pg_ctl`, run as the `postgres` user) in a scratch
/// directory, on a free port.
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed (scripts/ensure-postgres.sh)")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL with pg_ctl")
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgServer {
    pub fn start() -> Self {
        let dir = scratch_dir("ensinalab-pg");
        let chown = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(chown.success());
        let server = Self {
            port: free_port(),
            bin: pg_bin(),
            dir,
        };
        let data = server.data();
        as_postgres(
            &server.bin,
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.restart();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn restart(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let data = self.data();
        as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
    }

    /// Stops it at once (`-m immediate`: like a crash, connections are cut).
    pub fn stop(&self) {
        let data = self.data();
        as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Celery adapter on `url` with a short timeout (a dead Redis must answer fast).
pub fn celery(url: &str, queue: &str) -> CeleryBroker {
    let mut config = CeleryConfig::new(url).with_queue(queue);
    config.command_timeout = Duration::from_secs(1);
    CeleryBroker::new(config).expect("celery config")
}

pub fn unique_queue() -> String {
    format!("faults-{}", uuid::Uuid::new_v4().simple())
}

/// The real application, on port 0.
pub struct App {
    pub http: Http,
    #[allow(dead_code)]
    pub store: SqlStore,
    pub ids: Hashids,
    auth: Authenticator,
}

/// The app's HTTP side: `app.get(..)`, `app.client`, `app.address`.
impl std::ops::Deref for App {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

/// Knobs of a fault test's app.
pub struct AppSettings {
    pub task_time_limit_secs: u64,
    pub dispatch: DispatcherSettings,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            task_time_limit_secs: 300,
            dispatch: DispatcherSettings {
                rebroadcast_every: Duration::from_secs(2),
                ..DispatcherSettings::default()
            },
        }
    }
}

pub fn config(settings: &AppSettings) -> Config {
    let mut config = Config::from_lookup(|key| match key {
        "BIND_ADDR" => Some("127.0.0.1:0".to_owned()),
        "METRICS_ADDR" => Some(String::new()),
        "JWT_SECRET" => Some(SECRET.to_owned()),
        "HASHIDS_SALT" => Some("faults".to_owned()),
        "RECONCILE_INTERVAL_SECS" => Some("1".to_owned()),
        // Fault tests hammer a few routes; the limiter is not what they test.
        "RATE_LIMIT_PER_MIN" | "CANCEL_RATE_LIMIT_PER_MIN" => Some("100000".to_owned()),
        _ => None,
    })
    .expect("fault test configuration is valid");
    config.task_time_limit_secs = settings.task_time_limit_secs;
    config
}

impl App {
    /// The app over a Celery broker, with its change feed and worker-online events wired.
    pub async fn over_celery(
        store: SqlStore,
        broker: &CeleryBroker,
        settings: AppSettings,
    ) -> Self {
        let (changes, online) = (broker.watch(), broker.workers_online());
        Self::spawn(store, broker.clone(), Some(changes), Some(online), settings).await
    }

    pub async fn spawn<B: TaskBroker + 'static>(
        store: SqlStore,
        broker: B,
        changes: Option<Receiver<TaskId>>,
        online: Option<Receiver<WorkerOnline>>,
        settings: AppSettings,
    ) -> Self {
        let config = config(&settings);
        let service = Service::new(
            store.clone(),
            broker,
            ensinalab_api::startup::settings(&config),
        );
        let app =
            Application::from_parts_with(&config, service, changes, online, settings.dispatch)
                .expect("app starts");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let http = Http::new(app.port(), client);
        tokio::spawn(app.run_until_stopped());
        Self {
            http,
            store,
            ids: Hashids::new(&config.hashids).expect("hashids"),
            auth: Authenticator::new(&config.jwt),
        }
    }

    pub fn token(&self, user: i64) -> String {
        self.auth.mint(user, false, 600).expect("mint")
    }

    pub async fn readyz(&self) -> (StatusCode, Value) {
        self.send(self.client.get(self.url("/readyz"))).await
    }

    /// `POST /briefings`; returns the body.
    pub async fn create_briefing(&self, token: &str, title: &str) -> Value {
        let (status, body) = self
            .post_json(
                "/briefings",
                token,
                &serde_json::json!({"title": title, "description": "...", "duration_minutes": 10}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

/// Polls `check` every 100 ms until it gives `Some`, or panics after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
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
