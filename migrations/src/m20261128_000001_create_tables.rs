//! The four tables as the seed had them, before `briefings.task_id` existed.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Briefings {
    Table,
    Id,
    UserId,
    Title,
    Description,
    DurationMinutes,
    Status,
    ErrorMessage,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Options {
    Table,
    Id,
    BriefingId,
    Title,
    Description,
    GeneratorType,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Videos {
    Table,
    Id,
    UserId,
    BriefingId,
    OptionId,
    Title,
    GeneratorType,
    Status,
    Progress,
    TaskId,
    ErrorMessage,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    Id,
    Event,
    UserId,
    ResourceKind,
    ResourceId,
    TaskId,
    Outcome,
    ClientIp,
    Details,
    CreatedAt,
}

/// Status columns hold the domain's wire strings (`generating_options` is the longest).
const STATUS_LEN: u32 = 32;
/// A hyphenated UUID.
const TASK_ID_LEN: u32 = 36;
const TITLE_LEN: u32 = 255;
const NAME_LEN: u32 = 64;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Briefings::Table)
                    .col(big_pk_auto(Briefings::Id))
                    .col(big_integer(Briefings::UserId))
                    .col(string_len(Briefings::Title, TITLE_LEN))
                    .col(text(Briefings::Description))
                    .col(integer(Briefings::DurationMinutes))
                    .col(string_len(Briefings::Status, STATUS_LEN))
                    .col(text_null(Briefings::ErrorMessage))
                    .col(timestamp_with_time_zone(Briefings::CreatedAt))
                    .col(timestamp_with_time_zone(Briefings::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // A user's active briefings: `WHERE user_id = ? AND status IN (...)`.
        manager
            .create_index(
                Index::create()
                    .name("idx_briefings_user_status")
                    .table(Briefings::Table)
                    .col(Briefings::UserId)
                    .col(Briefings::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Options::Table)
                    .col(big_pk_auto(Options::Id))
                    .col(big_integer(Options::BriefingId))
                    .col(string_len(Options::Title, TITLE_LEN))
                    .col(text(Options::Description))
                    .col(string_len(Options::GeneratorType, NAME_LEN))
                    .col(timestamp_with_time_zone(Options::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_options_briefing")
                            .from(Options::Table, Options::BriefingId)
                            .to(Briefings::Table, Briefings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A briefing's options.
        manager
            .create_index(
                Index::create()
                    .name("idx_options_briefing")
                    .table(Options::Table)
                    .col(Options::BriefingId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Videos::Table)
                    .col(big_pk_auto(Videos::Id))
                    .col(big_integer(Videos::UserId))
                    .col(big_integer(Videos::BriefingId))
                    .col(big_integer(Videos::OptionId))
                    .col(string_len(Videos::Title, TITLE_LEN))
                    .col(string_len(Videos::GeneratorType, NAME_LEN))
                    .col(string_len(Videos::Status, STATUS_LEN))
                    .col(double(Videos::Progress).default(0.0))
                    .col(string_len_null(Videos::TaskId, TASK_ID_LEN))
                    .col(text_null(Videos::ErrorMessage))
                    .col(timestamp_with_time_zone(Videos::CreatedAt))
                    .col(timestamp_with_time_zone(Videos::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_videos_briefing")
                            .from(Videos::Table, Videos::BriefingId)
                            .to(Briefings::Table, Briefings::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_videos_option")
                            .from(Videos::Table, Videos::OptionId)
                            .to(Options::Table, Options::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // A user's active videos.
        manager
            .create_index(
                Index::create()
                    .name("idx_videos_user_status")
                    .table(Videos::Table)
                    .col(Videos::UserId)
                    .col(Videos::Status)
                    .to_owned(),
            )
            .await?;
        // Task id -> video (status endpoint, reconciler). Unique: a task drives one video.
        manager
            .create_index(
                Index::create()
                    .name("idx_videos_task_id")
                    .table(Videos::Table)
                    .col(Videos::TaskId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SecurityEvents::Table)
                    .col(big_pk_auto(SecurityEvents::Id))
                    .col(string_len(SecurityEvents::Event, NAME_LEN))
                    // Null for failed authentication: there is no user yet.
                    .col(big_integer_null(SecurityEvents::UserId))
                    .col(string_len_null(SecurityEvents::ResourceKind, 16))
                    .col(big_integer_null(SecurityEvents::ResourceId))
                    .col(string_len_null(SecurityEvents::TaskId, TASK_ID_LEN))
                    .col(string_len(SecurityEvents::Outcome, NAME_LEN))
                    // Long enough for any IPv6 text form.
                    .col(string_len_null(SecurityEvents::ClientIp, NAME_LEN))
                    .col(json(SecurityEvents::Details))
                    .col(timestamp_with_time_zone(SecurityEvents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // A user's trail, newest first (audits).
        manager
            .create_index(
                Index::create()
                    .name("idx_security_events_user_created")
                    .table(SecurityEvents::Table)
                    .col(SecurityEvents::UserId)
                    .col(SecurityEvents::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children first, for the foreign keys.
        for table in [
            SecurityEvents::Table.into_iden(),
            Videos::Table.into_iden(),
            Options::Table.into_iden(),
            Briefings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
