//! `briefings.task_id`: the seed added it after the fact, so it stays a migration of its own.
//! Nullable, because briefings made before it have no task.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261128_000001_create_tables::Briefings as Table0;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Briefings {
    TaskId,
}

const INDEX: &str = "idx_briefings_task_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Table0::Table)
                    .add_column(string_len_null(Briefings::TaskId, 36))
                    .to_owned(),
            )
            .await?;
        // Task id -> briefing (status endpoint, reconciler). Unique: a task drives one briefing.
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Table0::Table)
                    .col(Briefings::TaskId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Table0::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Table0::Table)
                    .drop_column(Briefings::TaskId)
                    .to_owned(),
            )
            .await
    }
}
