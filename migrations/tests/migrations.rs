//! The schema's migrations on real databases: up from empty, down to empty, up again, on
//! PostgreSQL and SQLite; and the `ensinalab-migration status` command.

// Test code: a panic is how a failure is reported (helpers are not `#[test]` fns).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use ensinalab_migration::{Migrator, MigratorTrait};
use sea_orm_migration::SchemaManager;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection};

const TABLES: [&str; 8] = [
    "briefings",
    "options",
    "videos",
    "security_events",
    "revoke_outbox",
    "revoke_batches",
    "cleanup_outbox",
    "mail_slots",
];
const MIGRATIONS: [&str; 10] = [
    "m20261128_000001_create_tables",
    "m20261128_000002_briefing_task_id",
    "m20261128_000003_revoke_outbox",
    "m20261128_000004_revoke_outbox_by_task",
    "m20261129_000005_revoke_batches",
    "m20261202_000006_security_events_created",
    "m20261203_000007_started_at",
    "m20261203_000009_cleanup_outbox",
    "m20261203_000010_overdue_and_mail",
    "m20261203_000011_job_outcomes",
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

    for table in ["briefings", "videos"] {
        assert!(manager.has_column(table, "finished_at").await.unwrap());
        assert!(manager.has_column(table, "cancel_reason").await.unwrap());
    }
    let finished = "idx_videos_finished";
    assert!(manager.has_index("videos", finished).await.unwrap());
    Migrator::down(db, Some(1)).await.unwrap();
    for table in ["briefings", "videos"] {
        assert!(!manager.has_column(table, "finished_at").await.unwrap());
        assert!(!manager.has_column(table, "cancel_reason").await.unwrap());
    }
    assert!(!manager.has_index("videos", finished).await.unwrap());
    assert!(
        manager
            .has_column("revoke_outbox", "overdue_at")
            .await
            .unwrap()
    );
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(
        !manager
            .has_column("revoke_outbox", "overdue_at")
            .await
            .unwrap()
    );
    assert!(!manager.has_table("mail_slots").await.unwrap());
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(!manager.has_table("cleanup_outbox").await.unwrap());
    assert!(manager.has_column("videos", "started_at").await.unwrap());
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(!manager.has_column("videos", "started_at").await.unwrap());
    assert!(!manager.has_column("briefings", "started_at").await.unwrap());
    let created = "idx_security_events_created";
    assert!(manager.has_index("security_events", created).await.unwrap());
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(!manager.has_index("security_events", created).await.unwrap());
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(!manager.has_table("revoke_batches").await.unwrap());
    assert!(!manager.has_column("revoke_outbox", "id").await.unwrap());
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(manager.has_column("revoke_outbox", "id").await.unwrap());
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

const OWED: [&str; 2] = [
    "('8c2f5d9e-0a4b-4c1e-9f3a-1b2c3d4e5f60', 'video', 7, '2026-11-28T10:00:00Z', 2, \
     '2026-11-28T10:00:05Z', NULL, NULL, NULL, NULL)",
    "('1d7e3a2b-5c6f-4e8d-a9b0-c1d2e3f4a5b6', 'briefing', 3, '2026-11-28T09:00:00Z', 0, \
     '2026-11-28T09:00:05Z', '2026-11-28T09:00:01Z', 'signalled', NULL, NULL)",
];

/// Inserts one of [`OWED`] into the outbox.
async fn insert_owed(
    db: &DatabaseConnection,
    row: &str,
) -> Result<sea_orm_migration::sea_orm::ExecResult, sea_orm_migration::sea_orm::DbErr> {
    db.execute_unprepared(&format!(
        "INSERT INTO revoke_outbox (task_id, resource_kind, resource_id, created_at, \
         attempts, next_attempt_at, delivered_at, outcome, last_broadcast_at, settled_at) \
         VALUES {row}"
    ))
    .await
}

/// The outbox's rows as text, oldest first.
async fn owed_rows(db: &DatabaseConnection) -> Vec<String> {
    let rows = db
        .query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT task_id, resource_kind, resource_id, attempts, outcome \
             FROM revoke_outbox ORDER BY created_at",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let task: String = r.try_get_by_index(0).unwrap();
            let kind: String = r.try_get_by_index(1).unwrap();
            let id: i64 = r.try_get_by_index(2).unwrap();
            let attempts: i32 = r.try_get_by_index(3).unwrap();
            let outcome: Option<String> = r.try_get_by_index(4).unwrap();
            format!("{task} {kind} {id} {attempts} {outcome:?}")
        })
        .collect()
}

/// Rebuilding the outbox around its task id (migration 4, and its `down`) keeps every owed
/// revoke: a cancel's record must survive an upgrade.
async fn the_outbox_keeps_its_rows_through_its_rebuild(db: &DatabaseConnection) {
    Migrator::up(db, Some(3)).await.unwrap();
    for row in OWED {
        insert_owed(db, row).await.unwrap();
    }
    let before = owed_rows(db).await;
    assert_eq!(before.len(), 2);
    assert!(before[0].starts_with("1d7e3a2b-5c6f-4e8d-a9b0-c1d2e3f4a5b6 briefing 3 0"));
    Migrator::up(db, Some(1)).await.unwrap();
    assert_eq!(owed_rows(db).await, before);
    assert_constraints(db, &["revoke_outbox_pkey"]).await;
    assert!(insert_owed(db, OWED[0]).await.is_err(), "one row per task");
    Migrator::down(db, Some(1)).await.unwrap();
    assert_eq!(owed_rows(db).await, before);
    assert_constraints(db, &["revoke_outbox_pkey", "revoke_outbox_task_id_key"]).await;
    Migrator::down(db, None).await.unwrap();
}

/// Taking the batches table away (migration 5's `down`) first spreads the batches cancels left
/// there into the outbox, as the dispatcher would have: their revokes stay owed.
async fn pending_batches_survive_their_table_going_down(db: &DatabaseConnection) {
    Migrator::up(db, Some(5)).await.unwrap();
    insert_owed(db, OWED[1]).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO revoke_batches (created_at, next_attempt_at, tasks) VALUES \
         ('2026-11-28T10:00:00Z', '2026-11-28T10:00:05Z', \
          '[[\"8c2f5d9e-0a4b-4c1e-9f3a-1b2c3d4e5f60\", \"video\", 7], \
            [\"1d7e3a2b-5c6f-4e8d-a9b0-c1d2e3f4a5b6\", \"briefing\", 3]]')",
    )
    .await
    .unwrap();
    Migrator::down(db, Some(1)).await.unwrap();
    assert_eq!(
        owed_rows(db).await,
        [
            "1d7e3a2b-5c6f-4e8d-a9b0-c1d2e3f4a5b6 briefing 3 0 Some(\"signalled\")",
            "8c2f5d9e-0a4b-4c1e-9f3a-1b2c3d4e5f60 video 7 0 None",
        ],
        "the batch's new task added, the task already owed left as it was"
    );
    Migrator::down(db, None).await.unwrap();
}

/// The outbox's constraint names on PostgreSQL, which names them after the table they were
/// made with (the rebuild renames them). SQLite's are internal: nothing to check there.
async fn assert_constraints(db: &DatabaseConnection, expected: &[&str]) {
    if db.get_database_backend() != sea_orm_migration::sea_orm::DbBackend::Postgres {
        return;
    }
    let rows = db
        .query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT conname::text FROM pg_constraint \
             WHERE conrelid = 'revoke_outbox'::regclass ORDER BY conname",
        ))
        .await
        .unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again_on_sqlite() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    the_outbox_keeps_its_rows_through_its_rebuild(&db).await;
    pending_batches_survive_their_table_going_down(&db).await;
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
        async move {
            the_outbox_keeps_its_rows_through_its_rebuild(&db).await;
            pending_batches_survive_their_table_going_down(&db).await;
            up_down_up(&db).await;
        }
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
