//! `revoke_outbox`: the revokes a cancel owes the task broker. A cancel inserts its row in the
//! same transaction as the status change, so a cancel the database accepted is never lost to a
//! broker that was down; the server's dispatcher delivers it, then keeps re-broadcasting it
//! (Celery workers remember revokes in memory only) until the task shows as finished or the
//! row is a day old.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

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

/// Due work: `delivered_at IS NULL AND next_attempt_at <= now` (delivery), and
/// `settled_at IS NULL AND created_at >= since` (re-broadcast).
const DUE_INDEX: &str = "idx_revoke_outbox_due";
const OPEN_INDEX: &str = "idx_revoke_outbox_open";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevokeOutbox::Table)
                    .col(big_pk_auto(RevokeOutbox::Id))
                    // One row per task: a row is cancelled once (the transition guard).
                    .col(string_len_uniq(RevokeOutbox::TaskId, 36))
                    .col(string_len(RevokeOutbox::ResourceKind, 16))
                    .col(big_integer(RevokeOutbox::ResourceId))
                    .col(timestamp_with_time_zone(RevokeOutbox::CreatedAt))
                    .col(integer(RevokeOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(RevokeOutbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(RevokeOutbox::DeliveredAt))
                    .col(string_len_null(RevokeOutbox::Outcome, 32))
                    .col(timestamp_with_time_zone_null(RevokeOutbox::LastBroadcastAt))
                    .col(timestamp_with_time_zone_null(RevokeOutbox::SettledAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(DUE_INDEX)
                    .table(RevokeOutbox::Table)
                    .col(RevokeOutbox::DeliveredAt)
                    .col(RevokeOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(OPEN_INDEX)
                    .table(RevokeOutbox::Table)
                    .col(RevokeOutbox::SettledAt)
                    .col(RevokeOutbox::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RevokeOutbox::Table).to_owned())
            .await
    }
}
