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
fn the_migrate_subcommand_migrates_a_fresh_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("ensinalab-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/m.db?mode=rwc", dir.display());
    succeeds(bin().arg("migrate").env("DATABASE_URL", &url));
    assert!(dir.join("m.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
