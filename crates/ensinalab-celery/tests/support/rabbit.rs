//! A private `rabbitmq-server` on free loopback ports, for tests that stop and restart it
//! (never the shared one): its own node name, Erlang cookie (its own HOME), configuration,
//! data and logs in a temporary directory. `stop` and `start` again keep its data, as a
//! restart does; dropped, it is killed with its process group and its directory removed.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::free_port;

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
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .unwrap();
        // An empty environment file: the system's would name the shared node.
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
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
        let log = std::fs::File::create(self.dir.join("server.out")).unwrap();
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
            .stdout(log.try_clone().unwrap())
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
