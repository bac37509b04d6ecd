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
    }

    /// Same, at the top CPU priority (`nice -n -20`). The SLOWLOG measures a command's wall
    /// time: on a shared machine, other processes' CPU use would otherwise stretch any command
    /// past a few milliseconds now and then, whatever it costs.
    pub fn start_at_top_priority(port: u16, extra: &[&str]) -> Self {
        let mut nice = Command::new("nice");
        nice.args(["-n", "-20", "redis-server"]);
        Self::spawn(nice, port, extra)
    }

    fn spawn(mut command: Command, port: u16, extra: &[&str]) -> Self {
        let child = command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/ensure-redis.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child)
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
