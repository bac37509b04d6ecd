//! Servers a test starts, stops and restarts itself, on free loopback ports and in scratch
//! directories of its own: the machine's shared PostgreSQL (5432) and Redis (6379) are never
//! touched, stopped or flushed.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A queue name no other test or rerun uses.
pub fn unique_queue(prefix: &str) -> String {
    format!("ensinalab-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh directory under the system's temp dir.
pub fn scratch_dir(prefix: &str) -> PathBuf {
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

/// Runs `cmd` and fails the test with its output unless it succeeded; its stdout.
fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A private PostgreSQL cluster (`initdb` + `pg_ctl`) in a scratch directory, on a free port.
/// PostgreSQL refuses to run as root, so under root (CI) its commands run as the `postgres`
/// user.
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// `-c` settings of the test's own, kept for every restart.
    settings: String,
}

/// The newest `/usr/lib/postgresql/<major>/bin` (Debian's layout; `scripts/ensure-postgres.sh`
/// installs it).
fn postgres_bin() -> PathBuf {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed under /usr/lib/postgresql (scripts/ensure-postgres.sh)")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors
        .pop()
        .expect("a pg_ctl under /usr/lib/postgresql/*/bin")
        .1
}

impl PgServer {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A cluster with `pg_stat_statements` preloaded and created in `postgres`, so a test can
    /// count the statements of its own traffic. Its commits return before their WAL is flushed:
    /// it is never stopped, so nothing committed is lost.
    pub fn counting() -> Self {
        let pg = Self::start_with(
            "-c synchronous_commit=off -c shared_preload_libraries=pg_stat_statements \
             -c pg_stat_statements.track=all",
        );
        pg.psql("postgres", "CREATE EXTENSION pg_stat_statements");
        pg
    }

    fn start_with(settings: &str) -> Self {
        let dir = scratch_dir("ensinalab-pg");
        let as_postgres = is_root();
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres:postgres").arg(&dir);
            run(chown);
        }
        let server = Self {
            port: free_port(),
            bin: postgres_bin(),
            dir,
            as_postgres,
            settings: settings.to_owned(),
        };
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(server.data()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "--no-locale",
            "-E",
            "UTF8",
        ]);
        run(initdb);
        server.restart();
        server
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Starts it (again) on the same port and data.
    pub fn restart(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
            self.port,
            self.dir.display(),
            self.settings
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "-o", &options, "start"]);
        run(start);
    }

    /// Stops it at once (`-m immediate`: like a crash, connections are cut; what was committed
    /// survives the restart).
    pub fn stop(&self) {
        run(self.stop_command());
    }

    fn stop_command(&self) -> Command {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        stop
    }

    /// Runs `sql` in `db` with `psql`; its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db, "-c", sql]);
        run(psql)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut stop = self.stop_command();
        let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private `redis-server`. A durable one keeps an fsync-always append-only file, so a stop
/// (SIGKILL, the way a crash looks) and a restart keep the queue and the result backend.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    durable: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// A durable server.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// A server that keeps nothing on disk.
    pub fn in_memory() -> Self {
        Self::start_with(false)
    }

    fn start_with(durable: bool) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: scratch_dir("ensinalab-redis"),
            durable,
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
        let persistence: &[&str] = if self.durable {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", ""])
            .args(persistence)
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

    /// Runs one command with `redis-cli`; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cli = Command::new("redis-cli");
        cli.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args);
        run(cli).trim().to_owned()
    }

    /// Calls so far of each command, from `INFO commandstats` (the INFO calls themselves left
    /// out). Commands run inside a Lua script are counted under their own names too.
    pub fn commands(&self) -> BTreeMap<String, i64> {
        let info = self.cli(&["INFO", "commandstats"]);
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .filter(|(name, _)| name != "info")
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
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
