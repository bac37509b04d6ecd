//! `security_events`: the append-only security trail.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "security_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event: String,
    pub user_id: Option<i64>,
    pub resource_kind: Option<String>,
    pub resource_id: Option<i64>,
    pub task_id: Option<String>,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub details: Json,
    pub created_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
