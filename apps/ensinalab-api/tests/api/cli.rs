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

/// The served binary with `LOG_FORMAT=json`: every stdout line is one JSON object, and each
/// request's line names the user whose token was valid, and no one otherwise.
#[tokio::test]
async fn json_logs_give_one_line_per_request_naming_its_user() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = tokio::process::Command::from(bin())
        .env("DATABASE_URL", "sqlite::memory:")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("METRICS_ADDR", "")
        .env("JWT_SECRET", SECRET)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    let url = format!("http://127.0.0.1:{port}/tasks/active");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client.get(&url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "the server never answered");
    let token = succeeds(
        bin()
            .args(["token", "--user-id", "42"])
            .env("JWT_SECRET", SECRET),
    )
    .stdout;
    let token = String::from_utf8(token).expect("utf-8");
    let res = client
        .get(&url)
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), 200);
    server.start_kill().expect("stop the server");
    let out = server.wait_with_output().await.expect("its output");

    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
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
    // The readiness polls had no token: a 401 with no user.
    assert!(
        requests[..requests.len() - 1]
            .iter()
            .all(|r| r["status"] == 401 && r.get("user_id").is_none())
    );
    assert!(
        lines
            .iter()
            .all(|line| line["level"].is_string() && line["target"].is_string())
    );
}
