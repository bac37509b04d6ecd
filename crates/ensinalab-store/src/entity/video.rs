//! `videos`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "videos")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub briefing_id: i64,
    pub option_id: i64,
    pub title: String,
    pub generator_type: String,
    pub status: String,
    pub progress: f64,
    pub task_id: Option<String>,
    pub error_message: Option<String>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub updated_at: TimeDateTimeWithTimeZone,
    /// When a worker first reported the job running.
    pub started_at: Option<TimeDateTimeWithTimeZone>,
    /// When the job reached a final status (the daily statistics).
    pub finished_at: Option<TimeDateTimeWithTimeZone>,
    /// Why it was cancelled: a `CancelReason` wire string, null unless cancelled.
    pub cancel_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
