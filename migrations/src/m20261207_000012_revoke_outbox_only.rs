//! One stored shape for an owed revoke: a cancel writes one `revoke_outbox` row per task in its
//! own transaction, so `revoke_batches` goes. `up` moves every batch still owed into
//! `revoke_outbox` first (each task with its batch's `created_at` and `next_attempt_at`, no
//! attempt yet; a task already owed keeps its row), then drops the table, in one transaction.
//! `down` brings the empty table back: the owed rows stay in `revoke_outbox`, where the code
//! that wrote batches also reads them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RevokeBatches {
    Table,
    Id,
    CreatedAt,
    NextAttemptAt,
    Tasks,
}

const MOVE: &str = "INSERT INTO revoke_outbox \
                    (task_id, resource_kind, resource_id, created_at, attempts, next_attempt_at)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too: a move stopped half-way would lose owed revokes.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            // Servers of the previous version may still be cancelling: the lock makes them wait
            // before the move reads, so no batch commits between the move and the drop (their
            // cancel then fails on the missing table and rolls back, its row unchanged).
            db.execute_unprepared("LOCK TABLE revoke_batches IN ACCESS EXCLUSIVE MODE")
                .await?;
            db.execute_unprepared(&format!(
                "{MOVE} SELECT r->>0, r->>1, (r->>2)::bigint, b.created_at, 0, \
                 b.next_attempt_at FROM revoke_batches b, json_array_elements(b.tasks) r \
                 ON CONFLICT (task_id) DO NOTHING"
            ))
            .await?;
        } else {
            // SQLite has one writer at a time: from this statement to the commit, no other
            // connection commits a batch (one that would have to be seen makes it fail, busy,
            // and the migration with it).
            db.execute_unprepared(&format!(
                "{MOVE} SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, b.created_at, 0, \
                 b.next_attempt_at FROM revoke_batches b, json_each(b.tasks) j WHERE true \
                 ON CONFLICT (task_id) DO NOTHING"
            ))
            .await?;
        }
        manager
            .drop_table(Table::drop().table(RevokeBatches::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevokeBatches::Table)
                    .col(big_pk_auto(RevokeBatches::Id))
                    .col(timestamp_with_time_zone(RevokeBatches::CreatedAt))
                    .col(timestamp_with_time_zone(RevokeBatches::NextAttemptAt))
                    .col(json(RevokeBatches::Tasks))
                    .to_owned(),
            )
            .await
    }
}
