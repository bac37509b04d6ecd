//! The schema's migrations on real databases: up from empty, down to empty, up again, on
//! PostgreSQL and SQLite; and the `ensinalab-migration status` command.

// Test code: a panic is how a failure is reported (helpers are not `#[test]` fns).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use ensinalab_migration::{Migrator, MigratorTrait};
use sea_orm_migration::SchemaManager;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection};

const TABLES: [&str; 5] = [
    "briefings",
    "options",
    "videos",
    "security_events",
    "revoke_outbox",
];
const MIGRATIONS: [&str; 3] = [
    "m20261128_000001_create_tables",
    "m20261128_000002_briefing_task_id",
    "m20261128_000003_revoke_outbox",
];

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}_{nanos}", std::process::id())
}

async fn assert_schema(db: &DatabaseConnection, present: bool) {
    let manager = SchemaManager::new(db);
    for table in TABLES {
        assert_eq!(manager.has_table(table).await.unwrap(), present, "{table}");
    }
}

/// Up from empty, the last migration down and up, everything down, everything up again.
async fn up_down_up(db: &DatabaseConnection) {
    assert_schema(db, false).await;
    Migrator::up(db, None).await.unwrap();
    assert_schema(db, true).await;
    let manager = SchemaManager::new(db);
    assert!(manager.has_column("briefings", "task_id").await.unwrap());
    assert!(
        manager
            .has_index("videos", "idx_videos_task_id")
            .await
            .unwrap()
    );

    Migrator::down(db, Some(1)).await.unwrap();
    assert!(!manager.has_table("revoke_outbox").await.unwrap());
    assert!(manager.has_column("briefings", "task_id").await.unwrap());
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(!manager.has_column("briefings", "task_id").await.unwrap());
    assert!(manager.has_table("briefings").await.unwrap());
    Migrator::up(db, None).await.unwrap();
    assert!(manager.has_column("briefings", "task_id").await.unwrap());

    Migrator::down(db, None).await.unwrap();
    assert_schema(db, false).await;
    Migrator::up(db, None).await.unwrap();
    assert_schema(db, true).await;
    assert!(
        manager
            .has_index("briefings", "idx_briefings_task_id")
            .await
            .unwrap()
    );
    let applied = Migrator::get_applied_migrations(db).await.unwrap();
    let names: Vec<_> = applied.iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(names, MIGRATIONS);
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again_on_sqlite() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    up_down_up(&db).await;
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again_on_postgres() {
    // This crate imports none of ours, so it makes its own throwaway database.
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = unique("ensinalab_test_migration_");
    let admin = Database::connect(&admin_url)
        .await
        .expect("PostgreSQL for tests (scripts/ensure-postgres.sh)");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let (server, _) = admin_url.rsplit_once('/').unwrap();
    let db = Database::connect(format!("{server}/{name}")).await.unwrap();

    // Catch a failure so the database is dropped either way.
    let outcome = tokio::spawn({
        let db = db.clone();
        async move { up_down_up(&db).await }
    })
    .await;
    db.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[test]
fn the_status_command_lists_every_migration_pending_then_applied() {
    let dir = std::env::temp_dir().join(unique("ensinalab-migration-"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("status.db").display());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ensinalab-migration"))
            .args(args)
            .env("DATABASE_URL", &url)
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };

    let before = run(&["status"]);
    let after = {
        run(&["up"]);
        run(&["status"])
    };
    std::fs::remove_dir_all(&dir).unwrap();

    for name in MIGRATIONS {
        assert!(
            before.contains(&format!("Migration '{name}'... Pending")),
            "{before}"
        );
        assert!(
            after.contains(&format!("Migration '{name}'... Applied")),
            "{after}"
        );
    }
}
