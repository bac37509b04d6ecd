//! `cleanup_outbox`: the partial-file cleanups cancels and failures owe the workers, one row per
//! job's task, kept until the cleanup task was sent. A cleanup that follows a cancel is sent
//! only once the revoke of the same task (`revoke_outbox.task_id`) was delivered.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CleanupOutbox {
    Table,
    TaskId,
    ResourceKind,
    ResourceId,
    Reason,
    CreatedAt,
    Attempts,
    NextAttemptAt,
}

/// Due work: `next_attempt_at <= now`, oldest first.
const DUE_INDEX: &str = "idx_cleanup_outbox_due";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CleanupOutbox::Table)
                    .col(string_len(CleanupOutbox::TaskId, 36).primary_key())
                    .col(string_len(CleanupOutbox::ResourceKind, 16))
                    .col(big_integer(CleanupOutbox::ResourceId))
                    .col(string_len(CleanupOutbox::Reason, 16))
                    .col(timestamp_with_time_zone(CleanupOutbox::CreatedAt))
                    .col(integer(CleanupOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(CleanupOutbox::NextAttemptAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(DUE_INDEX)
                    .table(CleanupOutbox::Table)
                    .col(CleanupOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CleanupOutbox::Table).to_owned())
            .await
    }
}
