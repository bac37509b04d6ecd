//! Alerts: `revoke_outbox.overdue_at`, when a cancel's revoke was reported overdue (still
//! undelivered, or its task still running, past its grace), so each is reported once however
//! many servers look; and `mail_slots`, when each kind of e-mail was last sent, so the operators
//! get at most one alert e-mail per interval from all the servers together.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RevokeOutbox {
    Table,
    OverdueAt,
}

#[derive(DeriveIden)]
enum MailSlots {
    Table,
    Name,
    TakenAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RevokeOutbox::Table)
                    .add_column(timestamp_with_time_zone_null(RevokeOutbox::OverdueAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailSlots::Table)
                    .col(string_len(MailSlots::Name, 32).primary_key())
                    .col(timestamp_with_time_zone(MailSlots::TakenAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MailSlots::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RevokeOutbox::Table)
                    .drop_column(RevokeOutbox::OverdueAt)
                    .to_owned(),
            )
            .await
    }
}
