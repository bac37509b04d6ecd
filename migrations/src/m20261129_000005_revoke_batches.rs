//! `revoke_batches`: what a cancel writes in its transaction is now ONE row holding every revoke
//! it owes (a JSON array of `[task_id, resource_kind, resource_id]`), not one `revoke_outbox`
//! row per task. The dispatcher spreads batches into `revoke_outbox`, whose per-task rows it
//! marks, before it reads or marks that table, so writing the per-task rows happens after the
//! cancel's response (docs/benchmarks.md, "the revoke batch"). `down` spreads the batches still pending first, so no owed revoke is
//! lost.

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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// `down`'s spread and drop are all or nothing on SQLite too.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let columns = "INSERT INTO revoke_outbox (task_id, resource_kind, resource_id, \
                       created_at, attempts, next_attempt_at)";
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(&format!(
                "{columns} SELECT r->>0, r->>1, (r->>2)::bigint, b.created_at, 0, \
                 b.next_attempt_at FROM revoke_batches b, json_array_elements(b.tasks) r \
                 ON CONFLICT (task_id) DO NOTHING"
            ))
            .await?;
        } else {
            db.execute_unprepared(&format!(
                "{columns} SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, b.created_at, 0, \
                 b.next_attempt_at FROM revoke_batches b, json_each(b.tasks) j WHERE true \
                 ON CONFLICT (task_id) DO NOTHING"
            ))
            .await?;
        }
        manager
            .drop_table(Table::drop().table(RevokeBatches::Table).to_owned())
            .await
    }
}
