//! The binary: `token`, `migrate`, and a bad variable stopping startup with its name.

use std::process::Command;

use ensinalab_api::auth::Authenticator;
use ensinalab_api::config::{JwtConfig, JwtSecret};
use ensinalab_domain::UserId;

use crate::helpers::SECRET;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ensinalab-api"));
    for var in [
        "JWT_SECRET",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "REDIS_URL",
        "DATABASE_URL",
        "BIND_ADDR",
        "HASHIDS_MIN_LENGTH",
        "TASK_TIME_LIMIT_SECS",
        "RATE_LIMIT_PER_MIN",
        "CANCEL_RATE_LIMIT_PER_MIN",
        "RATE_LIMIT_BACKEND",
        "METRICS_ADDR",
        "LOG_FORMAT",
        "RUST_LOG",
        "NO_COLOR",
        "SMTP_URL",
        "ALERT_EMAIL_TO",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` and fails the test with its stderr unless it succeeded.
fn succeeds(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_token_subcommand_mints_a_token_the_server_accepts() {
    let out = succeeds(
        bin()
            .args([
                "token",
                "--user-id",
                "42",
                "--role",
                "admin",
                "--ttl-secs",
                "60",
            ])
            .env("JWT_SECRET", SECRET),
    );
    let token = String::from_utf8(out.stdout).expect("utf-8");
    let auth = Authenticator::new(&JwtConfig {
        secret: JwtSecret::Configured(SECRET.to_owned()),
        issuer: None,
        audience: None,
        leeway_secs: 0,
        max_ttl_secs: 3600,
    });
    let identity = auth.verify(token.trim()).expect("valid token");
    assert_eq!(identity.user_id, UserId(42));
    assert!(identity.is_admin);
}

#[test]
fn the_token_subcommand_refuses_to_sign_with_a_dev_secret() {
    let out = bin()
        .args(["token", "--user-id", "1"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}

#[test]
fn a_bad_variable_stops_startup_naming_it() {
    for (var, value) in [
        ("HASHIDS_MIN_LENGTH", "six"),
        ("BIND_ADDR", "nowhere"),
        ("JWT_SECRET", "short"),
        ("RATE_LIMIT_PER_MIN", "0"),
        ("CANCEL_RATE_LIMIT_PER_MIN", "lots"),
        ("RATE_LIMIT_BACKEND", "memcached"),
    ] {
        let out = bin().env(var, value).output().expect("runs");
        assert!(!out.status.success(), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

#[test]
fn redis_rate_limits_without_a_redis_url_stop_startup_naming_it() {
    let out = bin()
        .env("RATE_LIMIT_BACKEND", "redis")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
}

#[test]
fn the_token_subcommand_refuses_a_lifetime_past_the_maximum() {
    let out = bin()
        .args(["token", "--user-id", "1", "--ttl-secs", "86401"])
        .env("JWT_SECRET", SECRET)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_MAX_TTL_SECS"), "{stderr}");
    succeeds(
        bin()
            .args(["token", "--user-id", "1", "--ttl-secs", "7200"])
            .env("JWT_SECRET", SECRET)
            .env("JWT_MAX_TTL_SECS", "7200"),
    );
}

#[test]
fn dev_mode_refuses_to_listen_beyond_loopback_and_says_why() {
    let out = bin().env("BIND_ADDR", "0.0.0.0:0").output().expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
}

#[test]
fn the_migrate_subcommand_migrates_a_fresh_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("ensinalab-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/m.db?mode=rwc", dir.display());
    succeeds(bin().arg("migrate").env("DATABASE_URL", &url));
    assert!(dir.join("m.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The repository's root.
fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_scripts_find_the_build_where_cargo_puts_it() {
    let elsewhere = std::env::temp_dir().join(format!(
        "ensinalab-target-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let out = Command::new("bash")
        .args(["-c", ". scripts/lib/target-dir.sh && target_dir"])
        .current_dir(root())
        .env("CARGO_TARGET_DIR", &elsewhere)
        .output()
        .expect("runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.trim(),
        elsewhere.display().to_string(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No script names the default build directory itself.
    for entry in std::fs::read_dir(root().join("scripts")).expect("scripts") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "sh") {
            let text = std::fs::read_to_string(&path).expect("readable");
            for fixed in ["target/debug", "target/release"] {
                assert!(
                    !text.contains(fixed),
                    "{} builds into {fixed}",
                    path.display()
                );
            }
        }
    }
}

/// A free port on loopback (free when asked: the OS may hand it out again later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The binary serving on `port` over an in-memory database, its stdout piped, once it answers.
async fn serve(port: u16, cmd: &mut Command) -> tokio::process::Child {
    let server = tokio::process::Command::from(std::mem::replace(cmd, bin()))
        .env("DATABASE_URL", "sqlite::memory:")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(&url).send().await.is_ok() {
            return server;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server never answered");
}

/// Stops `server` and returns what it wrote to stdout.
async fn stop(mut server: tokio::process::Child) -> String {
    server.start_kill().expect("stop the server");
    let out = server.wait_with_output().await.expect("its output");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A bearer token for `user`, minted by the binary.
/// Every line of `stdout`, each of which must be one JSON object.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The binary served on a free port with `LOG_FORMAT=json` and `RUST_LOG=rust_log`.
async fn serve_json_logs(rust_log: &str) -> (u16, tokio::process::Child) {
    let port = free_port();
    let server = serve(
        port,
        bin()
            .env("METRICS_ADDR", "")
            .env("JWT_SECRET", SECRET)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", rust_log),
    )
    .await;
    (port, server)
}

/// `request` with `token`, sent.
async fn authed(request: reqwest::RequestBuilder, token: &str) -> reqwest::Response {
    request.bearer_auth(token).send().await.expect("an answer")
}

fn token_for(user: i64) -> String {
    let out = succeeds(
        bin()
            .args(["token", "--user-id", &user.to_string()])
            .env("JWT_SECRET", SECRET),
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// The served binary with `LOG_FORMAT=json`: every stdout line is one JSON object, and each
/// request's line names the user whose token was valid, and no one otherwise.
#[tokio::test]
async fn json_logs_give_one_line_per_request_naming_its_user() {
    let (port, server) = serve_json_logs("info").await;
    let url = format!("http://127.0.0.1:{port}/tasks/active");
    let client = reqwest::Client::new();
    // Unauthenticated, as a readiness poll that knows no token.
    let res = client.get(&url).send().await.expect("an answer");
    assert_eq!(res.status(), 401);
    let res = authed(client.get(&url), &token_for(42)).await;
    assert_eq!(res.status(), 200);
    let lines = json_lines(&stop(server).await);
    let requests: Vec<_> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == "request")
        .map(|line| &line["fields"])
        .collect();
    let last = requests.last().expect("request lines");
    assert_eq!(
        (&last["path"], &last["status"], &last["user_id"]),
        (&"/tasks/active".into(), &200.into(), &42.into())
    );
    // The request without a token: a 401 with no user.
    let anonymous = requests
        .iter()
        .find(|r| r["path"] == "/tasks/active" && r["status"] == 401)
        .expect("the anonymous request's line");
    assert!(anonymous.get("user_id").is_none(), "{anonymous}");
    assert!(
        lines
            .iter()
            .all(|line| line["level"].is_string() && line["target"].is_string())
    );
}

/// A user's cancel is logged at INFO, naming the briefing by the hashid every answer uses: no
/// log line carries a raw database id.
#[tokio::test]
async fn a_cancel_is_an_info_line_naming_its_resource_by_hashid() {
    let (port, server) = serve_json_logs("info,changes=debug").await;
    let (client, token) = (reqwest::Client::new(), token_for(7));
    let base = format!("http://127.0.0.1:{port}");
    let create = client
        .post(format!("{base}/briefings"))
        .json(&serde_json::json!({"title": "Logs", "duration_minutes": 10}));
    let briefing: serde_json::Value = authed(create, &token).await.json().await.expect("json");
    let hash = briefing["briefing_id"]
        .as_str()
        .expect("a hashid")
        .to_owned();
    let cancel = client.post(format!("{base}/briefings/{hash}/cancel-generation"));
    assert_eq!(authed(cancel, &token).await.status(), 200);
    let lines = json_lines(&stop(server).await);
    let cancel = lines
        .iter()
        .find(|l| l["fields"]["event"] == "briefing_cancelled")
        .expect("the cancel's security line");
    assert_eq!(cancel["level"], "INFO", "{cancel}");
    assert_eq!(cancel["fields"]["resource_id"], hash.as_str(), "{cancel}");
    let change = lines
        .iter()
        .find(|l| l["fields"]["change"] == "cancelled")
        .expect("the change's line");
    assert_eq!(change["fields"]["resource_id"], hash.as_str(), "{change}");
    // Every id a line names, but the user's and the task's, is a hashid, never a number.
    for line in &lines {
        let fields = line["fields"].as_object().expect("fields");
        for (key, value) in fields {
            if key.ends_with("_id") && key != "user_id" && key != "task_id" {
                assert!(value.is_string(), "{key} in {line}");
            }
        }
    }
}

/// The text log format writes no colour escapes into a pipe or a file.
#[tokio::test]
async fn text_logs_in_a_pipe_carry_no_colour_escapes() {
    let port = free_port();
    let server = serve(port, bin().env("METRICS_ADDR", "").env("RUST_LOG", "info")).await;
    let stdout = stop(server).await;
    assert!(stdout.contains("listening"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
}

/// A metrics listener beyond loopback starts, with a warning of what it exposes to anyone.
#[tokio::test]
async fn metrics_beyond_loopback_are_served_with_a_warning_of_what_they_expose() {
    let port = free_port();
    let server = serve(port, bin().env("METRICS_ADDR", "0.0.0.0:0")).await;
    let stdout = stop(server).await;
    let warning = stdout
        .lines()
        .find(|l| l.contains("METRICS_ADDR is not a loopback address"))
        .unwrap_or_else(|| panic!("no warning in {stdout}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("unauthenticated"), "{warning}");
    let loopback = serve(free_port(), bin().env("METRICS_ADDR", "127.0.0.1:0")).await;
    assert!(!stop(loopback).await.contains("not a loopback address"));
}

/// A listener whose port is taken stops startup naming the setting to change.
#[test]
fn a_busy_port_stops_startup_naming_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address").to_string();
    for (var, metrics) in [("METRICS_ADDR", addr.as_str()), ("BIND_ADDR", "")] {
        let bind = if var == "BIND_ADDR" {
            addr.clone()
        } else {
            format!("127.0.0.1:{}", free_port())
        };
        let out = bin()
            .env("DATABASE_URL", "sqlite::memory:")
            .env("BIND_ADDR", bind)
            .env("METRICS_ADDR", metrics)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{var}: cannot bind {addr}")),
            "{var}: {stderr}"
        );
    }
}

/// A mail server login without TLS stops startup naming `SMTP_URL`, unless the URL says
/// `tls=none`; the password is never repeated.
#[test]
fn a_mail_password_in_clear_stops_startup_unless_asked_for() {
    // `token` reads the whole configuration, and exits either way.
    let with = |url: &str| {
        bin()
            .args(["token", "--user-id", "1"])
            .env("JWT_SECRET", SECRET)
            .env("SMTP_URL", url)
            .env("ALERT_EMAIL_TO", "ops@example.com")
            .output()
            .expect("runs")
    };
    let out = with("smtp://ops:hunter2@127.0.0.1:2525");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SMTP_URL"), "{stderr}");
    assert!(stderr.contains("tls=none"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let out = with("smtp://ops:hunter2@127.0.0.1:2525?tls=none");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
