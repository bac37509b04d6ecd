//! `options`: what a briefing's generation proposed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "options")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub briefing_id: i64,
    pub title: String,
    pub description: String,
    pub generator_type: String,
    pub created_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::briefing::Entity",
        from = "Column::BriefingId",
        to = "super::briefing::Column::Id"
    )]
    Briefing,
}

impl Related<super::briefing::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Briefing.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
