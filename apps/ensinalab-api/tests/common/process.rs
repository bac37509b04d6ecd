//! The `ensinalab-api` binary as a process of its own, for tests of what only a process shows:
//! several servers on one database, a SIGTERM, a restart on the same port.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use super::app::{SECRET, eventually};
use super::http::Http;
use super::servers::free_port;

/// A server process configured by nothing but the environment given (no metrics listener, the
/// test secret), killed when dropped; its output goes to a log file of its own.
pub struct ServerProcess {
    child: Child,
    pub http: Http,
    log: PathBuf,
}

impl ServerProcess {
    /// On a free port.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), env)
    }

    /// On `port` (a restart listens where the clients already look).
    pub fn start_on(port: u16, env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "ensinalab-server-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ensinalab-api"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("METRICS_ADDR", "")
            .env("JWT_SECRET", SECRET)
            .envs(env.iter().copied())
            .stdout(Stdio::from(out.try_clone().expect("log file")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("the server starts");
        Self {
            child,
            http: Http::new(port, reqwest::Client::new()),
            log,
        }
    }

    /// Waits until it answers `/readyz` with 200.
    pub async fn ready(&self) {
        eventually(
            Duration::from_secs(30),
            "the server answers /readyz",
            || async {
                let res = self.http.client.get(self.http.url("/readyz")).send().await;
                res.ok().filter(|r| r.status() == StatusCode::OK)
            },
        )
        .await;
    }

    /// The log lines at WARN or above written so far (with `LOG_FORMAT=json`).
    pub fn warnings(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .expect("the log")
            .lines()
            .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
            .map(str::to_owned)
            .collect()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// How it exited, once it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the server's status")
    }

    /// SIGTERM, then waits for it to exit cleanly.
    pub fn stop(mut self) {
        self.terminate();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
