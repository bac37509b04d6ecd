//! `finished_at` and `cancel_reason` on briefings and videos: when a job reached a final status,
//! and, for a cancel, why (`user`, `user_all`, `timeout`, `revoked`). Written by the guarded
//! transitions themselves, so the daily statistics (`GET /admin/stats`) are read from the
//! database and agree on every server and across restarts. Rows finished before this migration
//! keep both null: they are not counted as finished on any day.
//!
//! The statistics read a window of days from each table twice, by `created_at` and by
//! `finished_at`: one range scan of an index each.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Briefings {
    Table,
    CreatedAt,
    FinishedAt,
    CancelReason,
}

#[derive(DeriveIden)]
enum Videos {
    Table,
    CreatedAt,
    FinishedAt,
    CancelReason,
}

/// (table, created_at, finished_at, cancel_reason, created index, finished index)
fn tables() -> [(
    DynIden,
    DynIden,
    DynIden,
    DynIden,
    &'static str,
    &'static str,
); 2] {
    [
        (
            Briefings::Table.into_iden(),
            Briefings::CreatedAt.into_iden(),
            Briefings::FinishedAt.into_iden(),
            Briefings::CancelReason.into_iden(),
            "idx_briefings_created",
            "idx_briefings_finished",
        ),
        (
            Videos::Table.into_iden(),
            Videos::CreatedAt.into_iden(),
            Videos::FinishedAt.into_iden(),
            Videos::CancelReason.into_iden(),
            "idx_videos_created",
            "idx_videos_finished",
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, created_at, finished_at, reason, created_index, finished_index) in tables() {
            // One column per statement: SQLite's ALTER TABLE adds one at a time.
            manager
                .alter_table(
                    Table::alter()
                        .table(table.clone())
                        .add_column(timestamp_with_time_zone_null(finished_at.clone()))
                        .to_owned(),
                )
                .await?;
            manager
                .alter_table(
                    Table::alter()
                        .table(table.clone())
                        .add_column(string_len_null(reason, 16))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(created_index)
                        .table(table.clone())
                        .col(created_at)
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(finished_index)
                        .table(table)
                        .col(finished_at)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, _, finished_at, reason, created_index, finished_index) in tables() {
            for index in [created_index, finished_index] {
                manager
                    .drop_index(Index::drop().name(index).table(table.clone()).to_owned())
                    .await?;
            }
            for column in [finished_at, reason] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table.clone())
                            .drop_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
