//! A private `redis-server` on a free loopback port, for tests that restart it or change its
//! configuration (never the shared one). Killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server(Child);

impl Server {
    /// Starts `redis-server` on `port` without persistence, with `extra` arguments (e.g.
    /// `["--slowlog-log-slower-than", "5000"]`); returns once it accepts connections.
    pub fn start(port: u16, extra: &[&str]) -> Self {
        Self::spawn(Command::new("redis-server"), port, extra)
            .expect("redis-server (scripts/ensure-redis.sh installs it)")
    }

    /// Same, scheduled ahead of every ordinary process: SCHED_FIFO (`chrt -f`), or the top
    /// nice level where real-time scheduling is not permitted. The SLOWLOG measures a
    /// command's wall time, and on a shared machine the scheduler stretches any command, an
    /// O(1) SET included, past a few milliseconds now and then when Redis is an ordinary
    /// process (docs/benchmarks.md, "Cancel with a backlog").
    pub fn start_ahead_of_other_processes(port: u16, extra: &[&str]) -> Self {
        let mut fifo = Command::new("chrt");
        fifo.args(["-f", "10", "redis-server"]);
        if let Some(server) = Self::spawn(fifo, port, extra) {
            return server;
        }
        eprintln!("chrt -f refused: redis-server runs at nice -20 instead");
        let mut nice = Command::new("nice");
        nice.args(["-n", "-20", "redis-server"]);
        Self::spawn(nice, port, extra).expect("redis-server (scripts/ensure-redis.sh installs it)")
    }

    /// `None` when the process ended before it listened (e.g. `chrt` not permitted).
    fn spawn(mut command: Command, port: u16, extra: &[&str]) -> Option<Self> {
        let mut child = command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.try_wait().ok().flatten().is_some() {
                return None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self(child))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
