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
