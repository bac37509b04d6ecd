//! A REAL Celery worker for tests (feature `testing`, dev-dependencies only): the reference
//! worker of `apps/worker`, run from the `.venv/worker` that `scripts/ensure-celery-venv.sh`
//! installs, prefork with two pool processes, on the test's Redis URL and queue; claiming, as
//! deployed, or stock ([`WorkerKind`]). It runs in a
//! process group of its own, so dropping the guard (panics included) kills the pool children
//! along with the master. Its log is kept when the test fails. Setup failures panic: in a
//! test, that is the report.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{CeleryBroker, CeleryConfig};

/// How long the worker's simulated tasks take.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    /// `generate_options`.
    pub options_secs: f64,
    /// `generate_video`, from its first PROGRESS to its result.
    pub video_secs: f64,
    /// PROGRESS reports per video.
    pub video_steps: u32,
}

/// Which reference worker to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// Every task takes the claim of docs/celery-contract.md ("Cancelling") before it runs:
    /// the reference worker as deployed (`ENSINALAB_CLAIM=on`).
    Claiming,
    /// The same tasks and settings without the claim (`ENSINALAB_CLAIM=off`): a stock Celery
    /// worker, which only knows of a revoke it heard broadcast.
    Stock,
}

impl WorkerKind {
    fn claim_env(self) -> &'static str {
        match self {
            Self::Claiming => "on",
            Self::Stock => "off",
        }
    }
}

/// A running worker; killed with its pool when dropped.
pub struct Worker {
    child: Child,
    node: String,
    log: PathBuf,
    /// Its own `ENSINALAB_WORK_DIR` and `ENSINALAB_OUTPUT_DIR` live here.
    files: PathBuf,
    /// RabbitMQ and the queue declared there, when it is the broker (`CELERY_BROKER_URL` in
    /// the environment given): the queue and its exchange are deleted with the worker.
    amqp: Option<(String, String)>,
}

/// The workspace root (this crate lives two levels below it).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Worker {
    /// Starts a claiming `celery worker -P prefork -c 2` on `redis_url` and `queue`, with extra
    /// environment; returns once it answers `inspect active`, that is once it consumes.
    pub async fn start(
        redis_url: &str,
        queue: &str,
        durations: Durations,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_kind(redis_url, queue, durations, env, WorkerKind::Claiming).await
    }

    /// Same, of the given kind (which wins over an `ENSINALAB_CLAIM` in `env`). With
    /// `CELERY_BROKER_URL` in `env`, RabbitMQ there is the worker's broker (and the readiness
    /// check's), Redis its result backend.
    pub async fn start_kind(
        redis_url: &str,
        queue: &str,
        durations: Durations,
        env: &[(&str, &str)],
        kind: WorkerKind,
    ) -> Self {
        let root = repo_root();
        let celery = root.join(".venv/worker/bin/celery");
        assert!(
            celery.exists(),
            "{} missing: run scripts/ensure-celery-venv.sh (scripts/test.sh does)",
            celery.display()
        );
        let node = format!("t{}@ensinalab-test", uuid::Uuid::new_v4().simple());
        let log = std::env::temp_dir().join(format!("ensinalab-worker-{node}.log"));
        let files = std::env::temp_dir().join(format!("ensinalab-worker-{node}"));
        let out = std::fs::File::create(&log).expect("worker log file");
        let child = Command::new(celery)
            .arg("--workdir")
            .arg(root.join("apps/worker"))
            .args([
                "-A",
                "ensinalab_worker",
                "worker",
                "-P",
                "prefork",
                "-c",
                "2",
            ])
            .args(["-l", "INFO", "--without-mingle", "--without-gossip", "-n"])
            .arg(&node)
            .env("REDIS_URL", redis_url)
            .env("CELERY_QUEUE", queue)
            .env("ENSINALAB_OPTIONS_SECS", durations.options_secs.to_string())
            .env("ENSINALAB_VIDEO_SECS", durations.video_secs.to_string())
            .env("ENSINALAB_VIDEO_STEPS", durations.video_steps.to_string())
            .env("ENSINALAB_WORK_DIR", files.join("work"))
            .env("ENSINALAB_OUTPUT_DIR", files.join("output"))
            .envs(env.iter().copied())
            .env("ENSINALAB_CLAIM", kind.claim_env())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("worker log file"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("celery worker starts");
        let broker_url = env
            .iter()
            .find(|(k, _)| *k == "CELERY_BROKER_URL")
            .map(|(_, v)| (*v).to_owned());
        let worker = Self {
            child,
            node,
            log,
            files,
            amqp: broker_url.clone().map(|url| (url, queue.to_owned())),
        };

        let mut config = CeleryConfig::new(redis_url).with_queue(queue);
        config.broker_url = broker_url;
        config.command_timeout = Duration::from_secs(5);
        let broker = CeleryBroker::new(config).expect("celery config");
        let started = Instant::now();
        loop {
            let replies = broker
                .inspect_active(Duration::from_millis(500))
                .await
                .expect("Redis reachable (scripts/ensure-redis.sh)");
            if replies.iter().any(|r| r.worker == worker.node) {
                return worker;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "worker {} did not answer within 60 s; log:\n{}",
                worker.node,
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The master process (the pool processes are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Node name, as `inspect active` replies carry it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where its tasks write their partial output (`ENSINALAB_WORK_DIR`), each under its task
    /// id; made by the first task that writes.
    pub fn work_dir(&self) -> PathBuf {
        self.files.join("work")
    }

    /// The partial directory of task `id`.
    pub fn partial_dir(&self, id: &str) -> PathBuf {
        self.work_dir().join(id)
    }

    /// Everything the worker logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the worker ever received task `id` (it logs `Task <name>[<id>] received`).
    pub fn received(&self, id: &str) -> bool {
        self.log_text().contains(&format!("[{id}] received"))
    }

    /// Whether the worker took task `id`'s message and discarded it as revoked, without running
    /// it (Celery logs `Discarding revoked task: <name>[<id>]` and hands nothing to the pool).
    pub fn discarded(&self, id: &str) -> bool {
        let id = format!("[{id}]");
        self.log_text()
            .lines()
            .any(|line| line.contains("Discarding revoked task") && line.contains(&id))
    }

    /// Whether the worker logged task `id` as succeeded.
    pub fn succeeded(&self, id: &str) -> bool {
        self.log_text().contains(&format!("[{id}] succeeded"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        if let Some((url, queue)) = self.amqp.take() {
            // A thread of its own: a runtime cannot be started inside the test's.
            let _ = std::thread::spawn(move || delete_amqp_queue(&url, &queue)).join();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
            let _ = std::fs::remove_dir_all(&self.files);
        }
    }
}

/// Whether process `pid` is gone (absent, or a zombie its parent has not reaped yet).
pub fn process_is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Deletes `queue` and its exchange from the RabbitMQ at `url` (best effort; blocking, and
/// never inside a runtime: from a test's async code, call it on a thread of its own).
pub fn delete_amqp_queue(url: &str, queue: &str) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let Ok(uri) = crate::parse_broker_url(url) else {
            return;
        };
        let connect = lapin::Connection::connect_uri(uri, lapin::ConnectionProperties::default());
        let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
            return;
        };
        if let Ok(channel) = conn.create_channel().await {
            let _ = channel
                .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
                .await;
            let _ = channel
                .exchange_delete(
                    queue.into(),
                    lapin::options::ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = conn.close(200, "done".into()).await;
    });
}

/// A private `rabbitmq-server` on free loopback ports, for tests that stop and restart it
/// (never the shared one): its own node name, Erlang cookie (its own HOME), configuration,
/// data and logs in a temporary directory. `stop` and `restart` keep its data, as a restart
/// does; dropped, it is killed with its process group and its directory removed.
pub struct Rabbit {
    pub port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Rabbit {
    /// Starts it; returns once it accepts AMQP connections.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ensinalab-rabbit-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("rabbitmq test server setup");
        let port = free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .expect("rabbitmq test server setup");
        // An empty environment file: the system's would name the shared node.
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("rabbitmq test server setup");
        let mut rabbit = Self {
            port,
            dist_port: free_port(),
            dir,
            child: None,
        };
        rabbit.boot();
        rabbit
    }

    /// `amqp://guest:guest@127.0.0.1:<port>//`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}//", self.port)
    }

    fn boot(&mut self) {
        let script = "/usr/lib/rabbitmq/bin/rabbitmq-server";
        let log =
            std::fs::File::create(self.dir.join("server.out")).expect("rabbitmq test server setup");
        let child = Command::new(script)
            .env("HOME", &self.dir)
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_NODENAME",
                format!("ensinalab-test-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_ENABLED_PLUGINS", "")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("rabbitmq test server setup"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server (scripts/ensure-rabbitmq.sh installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(60),
                "rabbitmq-server did not start ({exited:?}); output:\n{}",
                std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it the abrupt way (every connection drops at once); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
        }
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same ports, with the same data.
    pub fn restart(&mut self) {
        self.boot();
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A free loopback port (free when asked; a test binds it soon after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
