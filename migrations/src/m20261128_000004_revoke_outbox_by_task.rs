//! `revoke_outbox` keyed by its task id, with partial indexes: the rows a cancel-all inserts
//! (one per task, inside its transaction) were the largest write of a cancel-all, and part of
//! that was upkeep of indexes no query needs in full (docs/benchmarks.md, "outbox indexes").
//! The surrogate `id` key and its sequence go (`task_id` was already unique, and nothing
//! refers to a row by `id`); the two dispatcher indexes keep only the rows their queries read
//! (undelivered, unsettled), which also keeps them small while the table grows. The table is
//! rebuilt and its rows copied: SQLite cannot change a primary key in place.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RevokeOutbox {
    Table,
    Id,
    TaskId,
    ResourceKind,
    ResourceId,
    CreatedAt,
    Attempts,
    NextAttemptAt,
    DeliveredAt,
    Outcome,
    LastBroadcastAt,
    SettledAt,
}

const TABLE: &str = "revoke_outbox";
/// The table being built, renamed to [`TABLE`] once the rows are in.
const REBUILT: &str = "revoke_outbox_rebuilt";
const COLUMNS: &str = "task_id, resource_kind, resource_id, created_at, attempts, \
                       next_attempt_at, delivered_at, outcome, last_broadcast_at, settled_at";
const DUE_INDEX: &str = "idx_revoke_outbox_due";
const OPEN_INDEX: &str = "idx_revoke_outbox_open";

/// The table as migration 3 made it, keyed by `keys`.
fn outbox(keys: Vec<ColumnDef>) -> TableCreateStatement {
    let mut table = Table::create();
    table.table(Alias::new(REBUILT));
    for key in keys {
        table.col(key);
    }
    table
        .col(string_len(RevokeOutbox::ResourceKind, 16))
        .col(big_integer(RevokeOutbox::ResourceId))
        .col(timestamp_with_time_zone(RevokeOutbox::CreatedAt))
        .col(integer(RevokeOutbox::Attempts).default(0))
        .col(timestamp_with_time_zone(RevokeOutbox::NextAttemptAt))
        .col(timestamp_with_time_zone_null(RevokeOutbox::DeliveredAt))
        .col(string_len_null(RevokeOutbox::Outcome, 32))
        .col(timestamp_with_time_zone_null(RevokeOutbox::LastBroadcastAt))
        .col(timestamp_with_time_zone_null(RevokeOutbox::SettledAt))
        .to_owned()
}

/// Builds `table`, copies the rows into it, puts it in the old one's place and indexes it.
/// PostgreSQL named the new table's `constraints` (suffixes such as `pkey`) after it: they get
/// the names the table's own would have had.
async fn rebuild(
    manager: &SchemaManager<'_>,
    table: TableCreateStatement,
    constraints: &[&str],
    indexes: [&str; 2],
) -> Result<(), DbErr> {
    manager.create_table(table).await?;
    let db = manager.get_connection();
    db.execute_unprepared(&format!(
        "INSERT INTO {REBUILT} ({COLUMNS}) SELECT {COLUMNS} FROM {TABLE} ORDER BY created_at"
    ))
    .await?;
    manager
        .drop_table(Table::drop().table(RevokeOutbox::Table).to_owned())
        .await?;
    manager
        .rename_table(
            Table::rename()
                .table(Alias::new(REBUILT), RevokeOutbox::Table)
                .to_owned(),
        )
        .await?;
    if manager.get_database_backend() == DbBackend::Postgres {
        for suffix in constraints {
            db.execute_unprepared(&format!(
                "ALTER TABLE {TABLE} RENAME CONSTRAINT {REBUILT}_{suffix} TO {TABLE}_{suffix}"
            ))
            .await?;
        }
    }
    for index in indexes {
        db.execute_unprepared(index).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too (sea-orm-migration wraps only PostgreSQL's by default): a
    /// rebuild stopped half-way would lose the outbox. It also keeps every step on one
    /// connection: without it, on a pooled SQLite file, the rename failed as if the old table
    /// were still there.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(
            manager,
            outbox(vec![string_len(RevokeOutbox::TaskId, 36).primary_key().to_owned()]),
            &["pkey"],
            [
                &format!(
                    "CREATE INDEX {DUE_INDEX} ON {TABLE} (next_attempt_at) WHERE delivered_at IS NULL"
                ),
                &format!(
                    "CREATE INDEX {OPEN_INDEX} ON {TABLE} (created_at) WHERE settled_at IS NULL"
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(
            manager,
            outbox(vec![
                big_pk_auto(RevokeOutbox::Id),
                string_len_uniq(RevokeOutbox::TaskId, 36),
            ]),
            &["pkey", "task_id_key"],
            [
                &format!("CREATE INDEX {DUE_INDEX} ON {TABLE} (delivered_at, next_attempt_at)"),
                &format!("CREATE INDEX {OPEN_INDEX} ON {TABLE} (settled_at, created_at)"),
            ],
        )
        .await
    }
}
