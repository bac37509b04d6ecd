//! `started_at` on briefings and videos: when a worker first reported the job running (STARTED
//! or PROGRESS). The automatic timeout counts running time from it, and finds the late jobs
//! through `(status, started_at)`, one index scan per table whatever the number in flight.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Briefings {
    Table,
    Status,
    StartedAt,
}

#[derive(DeriveIden)]
enum Videos {
    Table,
    Status,
    StartedAt,
}

const BRIEFINGS_INDEX: &str = "idx_briefings_status_started";
const VIDEOS_INDEX: &str = "idx_videos_status_started";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            (
                Briefings::Table.into_iden(),
                Briefings::Status.into_iden(),
                Briefings::StartedAt.into_iden(),
                BRIEFINGS_INDEX,
            ),
            (
                Videos::Table.into_iden(),
                Videos::Status.into_iden(),
                Videos::StartedAt.into_iden(),
                VIDEOS_INDEX,
            ),
        ];
        for (table, status, started_at, index) in tables {
            manager
                .alter_table(
                    Table::alter()
                        .table(table.clone())
                        .add_column(timestamp_with_time_zone_null(started_at.clone()))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(index)
                        .table(table)
                        .col(status)
                        .col(started_at)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            (
                Briefings::Table.into_iden(),
                Briefings::StartedAt.into_iden(),
                BRIEFINGS_INDEX,
            ),
            (
                Videos::Table.into_iden(),
                Videos::StartedAt.into_iden(),
                VIDEOS_INDEX,
            ),
        ];
        for (table, started_at, index) in tables {
            manager
                .drop_index(Index::drop().name(index).table(table.clone()).to_owned())
                .await?;
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(started_at)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
