//! `briefings`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "briefings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub description: String,
    pub duration_minutes: i32,
    pub status: String,
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
pub enum Relation {
    #[sea_orm(has_many = "super::option::Entity")]
    Options,
}

impl Related<super::option::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Options.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
