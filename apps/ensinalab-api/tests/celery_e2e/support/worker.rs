//! A real Celery worker per test: the reference worker of `apps/worker`, run from the
//! `.venv/worker` that `scripts/ensure-celery-venv.sh` installs, prefork with two pool processes,
//! on the test's Redis DB and queue. It runs in a process group of its own, so dropping the guard
//! (panics included) kills the pool children along with the master.
//!
//! Written here rather than borrowed from `crates/ensinalab-celery/tests/support`: another
//! crate's integration-test module is no library to depend on, that guard deletes the queue
//! when it drops (a test here replaces a worker mid-way on the same queue), and this one
//! exposes the master's pid, so a test can check that a pid a task reports is one of this
//! worker's pool processes. Its log is kept when the test fails.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ensinalab_celery::{CeleryBroker, CeleryConfig};

use super::redis_url;

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

pub struct Worker {
    child: Child,
    node: String,
    log: PathBuf,
}

impl Worker {
    /// Starts `celery worker -P prefork -c 2` on DB `db` and `queue`; returns once it answers
    /// `inspect active`, that is once it consumes.
    pub async fn start(db: u8, queue: &str, durations: Durations) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let celery = root.join(".venv/worker/bin/celery");
        assert!(
            celery.exists(),
            "{} missing: run scripts/ensure-celery-venv.sh (scripts/test.sh does)",
            celery.display()
        );
        let node = format!("e2e{}@ensinalab-test", uuid::Uuid::new_v4().simple());
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("celery-e2e-{node}.log"));
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
            .env("REDIS_URL", redis_url(db))
            .env("CELERY_QUEUE", queue)
            .env("ENSINALAB_OPTIONS_SECS", durations.options_secs.to_string())
            .env("ENSINALAB_VIDEO_SECS", durations.video_secs.to_string())
            .env("ENSINALAB_VIDEO_STEPS", durations.video_steps.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("worker log file"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("celery worker starts");
        let worker = Self { child, node, log };

        let mut config = CeleryConfig::new(redis_url(db)).with_queue(queue);
        config.command_timeout = Duration::from_secs(5);
        let broker = CeleryBroker::new(config).expect("celery config");
        let started = Instant::now();
        loop {
            let replies = broker
                .inspect_active(Duration::from_millis(500))
                .await
                .expect("Redis at 127.0.0.1:6379 (scripts/ensure-redis.sh)");
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the worker ever received task `id` (it logs `Task <name>[<id>] received`).
    pub fn received(&self, id: &str) -> bool {
        self.log_text().contains(&format!("[{id}] received"))
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
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
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

/// The parent of a live process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "<pid> (<comm>) <state> <ppid> ...": comm may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Watches `pid` from a thread of its own (1 ms polls, independent of the test's runtime) and
/// says when it died; gives up after `within`.
pub struct DeathWatch {
    handle: std::thread::JoinHandle<Option<Instant>>,
}

impl DeathWatch {
    pub fn start(pid: u32, within: Duration) -> Self {
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < within {
                if process_is_dead(pid) {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        });
        Self { handle }
    }

    /// When the process was first seen dead, if it died in time.
    pub async fn died_at(self) -> Option<Instant> {
        tokio::task::spawn_blocking(move || self.handle.join().expect("death watch thread"))
            .await
            .expect("death watch join")
    }
}
