//! `revoke_outbox`: the revokes cancels owe the task broker, one row per task, written by the
//! cancel in its own transaction and marked by the dispatcher.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "revoke_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: String,
    pub resource_kind: String,
    pub resource_id: i64,
    pub created_at: TimeDateTimeWithTimeZone,
    pub attempts: i32,
    pub next_attempt_at: TimeDateTimeWithTimeZone,
    pub delivered_at: Option<TimeDateTimeWithTimeZone>,
    pub outcome: Option<String>,
    pub last_broadcast_at: Option<TimeDateTimeWithTimeZone>,
    pub settled_at: Option<TimeDateTimeWithTimeZone>,
    pub overdue_at: Option<TimeDateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
