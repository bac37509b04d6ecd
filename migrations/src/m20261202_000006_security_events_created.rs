//! `security_events` by creation time: the retention job deletes the events older than
//! `SECURITY_EVENT_RETENTION_DAYS` in batches, oldest first, reading only what it deletes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    CreatedAt,
}

const INDEX: &str = "idx_security_events_created";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(SecurityEvents::Table)
                    .col(SecurityEvents::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(SecurityEvents::Table)
                    .to_owned(),
            )
            .await
    }
}
