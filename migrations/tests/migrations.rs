//! The schema's migrations on real databases: up from empty, down to empty, up again, on
//! PostgreSQL and SQLite, owed revokes kept through every change of the outbox's shape; and the
//! `ensinalab-migration status` command.

// Test code: a panic is how a failure is reported (helpers are not `#[test]` fns).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use ensinalab_migration::{Migrator, MigratorTrait};
use sea_orm_migration::SchemaManager;
use sea_orm_migration::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
};

const TABLES: [&str; 7] = [
    "briefings",
    "options",
    "videos",
    "security_events",
    "revoke_outbox",
    "cleanup_outbox",
    "mail_slots",
];
const MIGRATIONS: [&str; 11] = [
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
    "m20261207_000012_revoke_outbox_only",
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
    assert!(!manager.has_table("revoke_batches").await.unwrap());
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(manager.has_table("revoke_batches").await.unwrap());
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
    assert!(!manager.has_table("revoke_batches").await.unwrap());
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
        .query_all_raw(Statement::from_string(
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

/// How many migrations come before the one that moves the batches into the outbox (the last).
fn before_the_move() -> Option<u32> {
    Some(u32::try_from(MIGRATIONS.len() - 1).unwrap())
}

/// Inserts a batch in the shape cancels wrote before migration 12: `[[task, kind, id], ...]`.
async fn insert_batch(
    db: &DatabaseConnection,
    created_at: &str,
    next_attempt_at: &str,
    tasks: &str,
) {
    db.execute_unprepared(&format!(
        "INSERT INTO revoke_batches (created_at, next_attempt_at, tasks) \
         VALUES ('{created_at}', '{next_attempt_at}', '{tasks}')"
    ))
    .await
    .unwrap();
}

/// Every field of the outbox's rows, times in UTC as text, by task id.
async fn outbox_rows(db: &DatabaseConnection) -> Vec<String> {
    let backend = db.get_database_backend();
    let utc = |column: &str| match backend {
        DbBackend::Postgres => {
            format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        }
        _ => format!("strftime('%Y-%m-%dT%H:%M:%SZ', {column})"),
    };
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT task_id, resource_kind, resource_id, {}, attempts, {}, {}, outcome \
                 FROM revoke_outbox ORDER BY task_id",
                utc("created_at"),
                utc("next_attempt_at"),
                utc("delivered_at")
            ),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let task: String = r.try_get_by_index(0).unwrap();
            let kind: String = r.try_get_by_index(1).unwrap();
            let id: i64 = r.try_get_by_index(2).unwrap();
            let created: String = r.try_get_by_index(3).unwrap();
            let attempts: i32 = r.try_get_by_index(4).unwrap();
            let next: String = r.try_get_by_index(5).unwrap();
            let delivered: Option<String> = r.try_get_by_index(6).unwrap();
            let outcome: Option<String> = r.try_get_by_index(7).unwrap();
            format!(
                "{task} {kind} {id} created {created} attempts {attempts} next {next} \
                 delivered {delivered:?} {outcome:?}"
            )
        })
        .collect()
}

/// Migration 12 makes every revoke owed in a batch a `revoke_outbox` row, as the dispatcher's
/// spread did (the batch's times, no attempt yet; a task already owed keeps its row), and
/// drops the batches: no owed revoke is lost to the change of shape.
async fn owed_batches_become_outbox_rows(db: &DatabaseConnection) {
    Migrator::up(db, before_the_move()).await.unwrap();
    insert_owed(db, OWED[1]).await.unwrap();
    insert_batch(
        db,
        "2026-11-28T10:00:00Z",
        "2026-11-28T10:00:05Z",
        "[[\"8c2f5d9e-0a4b-4c1e-9f3a-1b2c3d4e5f60\", \"video\", 7], \
          [\"1d7e3a2b-5c6f-4e8d-a9b0-c1d2e3f4a5b6\", \"briefing\", 3]]",
    )
    .await;
    insert_batch(
        db,
        "2026-11-28T11:00:00Z",
        "2026-11-28T11:00:05Z",
        "[[\"0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9\", \"briefing\", 12]]",
    )
    .await;
    Migrator::up(db, Some(1)).await.unwrap();
    assert!(
        !SchemaManager::new(db)
            .has_table("revoke_batches")
            .await
            .unwrap()
    );
    assert_eq!(
        outbox_rows(db).await,
        [
            "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9 briefing 12 created 2026-11-28T11:00:00Z \
             attempts 0 next 2026-11-28T11:00:05Z delivered None None",
            "1d7e3a2b-5c6f-4e8d-a9b0-c1d2e3f4a5b6 briefing 3 created 2026-11-28T09:00:00Z \
             attempts 0 next 2026-11-28T09:00:05Z delivered Some(\"2026-11-28T09:00:01Z\") \
             Some(\"signalled\")",
            "8c2f5d9e-0a4b-4c1e-9f3a-1b2c3d4e5f60 video 7 created 2026-11-28T10:00:00Z \
             attempts 0 next 2026-11-28T10:00:05Z delivered None None",
        ],
        "each batch's tasks with its times; the task already owed left as it was"
    );
    // Down and up again: the owed rows stay where they are.
    let before = outbox_rows(db).await;
    Migrator::down(db, Some(1)).await.unwrap();
    Migrator::up(db, Some(1)).await.unwrap();
    assert_eq!(outbox_rows(db).await, before);
    Migrator::down(db, None).await.unwrap();
}

/// A server of the previous version cancelling while migration 12 runs on PostgreSQL: its
/// batch, committed while the migration waits, is moved, not dropped with the table.
async fn a_batch_committed_during_the_move_is_not_lost(db: &DatabaseConnection) {
    Migrator::up(db, before_the_move()).await.unwrap();
    let cancel = db.begin().await.unwrap();
    cancel
        .execute_unprepared(
            "INSERT INTO revoke_batches (created_at, next_attempt_at, tasks) VALUES \
             ('2026-11-28T10:00:00Z', '2026-11-28T10:00:05Z', \
              '[[\"8c2f5d9e-0a4b-4c1e-9f3a-1b2c3d4e5f60\", \"video\", 7]]')",
        )
        .await
        .unwrap();
    let migration = tokio::spawn({
        let db = db.clone();
        async move { Migrator::up(&db, Some(1)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !migration.is_finished(),
        "the migration waits for the cancel"
    );
    cancel.commit().await.unwrap();
    migration.await.unwrap().unwrap();
    let rows = outbox_rows(db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].starts_with("8c2f5d9e-0a4b-4c1e-9f3a-1b2c3d4e5f60 video 7"),
        "{rows:?}"
    );
    Migrator::down(db, None).await.unwrap();
}

/// The outbox's constraint names on PostgreSQL, which names them after the table they were
/// made with (the rebuild renames them). SQLite's are internal: nothing to check there.
async fn assert_constraints(db: &DatabaseConnection, expected: &[&str]) {
    if db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let rows = db
        .query_all_raw(Statement::from_string(
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
    owed_batches_become_outbox_rows(&db).await;
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
            owed_batches_become_outbox_rows(&db).await;
            a_batch_committed_during_the_move_is_not_lost(&db).await;
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
