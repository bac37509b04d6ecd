//! The `Briefings` port: briefings and their options.

use ensinalab_domain::{
    BriefingDraft, BriefingId, BriefingStatus, Cancel, CancelReason, OptionId, TaskId, UserId,
};
use ensinalab_ports::{Briefing, BriefingOption, BriefingUpdate, Briefings, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, NotSet, QueryFilter, QueryOrder, Set, TransactionTrait, Value,
};

use crate::SqlStore;
use crate::convert::{self, now};
use crate::entity::{briefing, option};
use crate::error::classify;
use crate::guarded::{cancel_write, in_flight, moved_row};
use crate::slots;

fn duration_column(minutes: u32) -> Result<i32, StoreError> {
    i32::try_from(minutes)
        .map_err(|_| StoreError::Other(format!("duration_minutes {minutes} out of range").into()))
}

impl Briefings for SqlStore {
    #[tracing::instrument(level = "debug", skip(self, draft), err)]
    async fn create_briefing(
        &self,
        user: UserId,
        draft: &BriefingDraft,
        task_id: &TaskId,
        slots: u32,
    ) -> Result<Option<Briefing>, StoreError> {
        let now = now();
        let values: Vec<Value> = vec![
            user.get().into(),
            draft.title().into(),
            draft.description().into(),
            duration_column(draft.duration_minutes())?.into(),
            BriefingStatus::Processing.as_str().into(),
            task_id.as_str().into(),
            now.into(),
            now.into(),
        ];
        let columns = [
            "user_id",
            "title",
            "description",
            "duration_minutes",
            "status",
            "task_id",
            "created_at",
            "updated_at",
        ];
        slots::insert_if_free(&self.db, "briefings", &columns, values, user, slots)
            .await?
            .map(convert::briefing)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn briefing(
        &self,
        id: BriefingId,
    ) -> Result<Option<(Briefing, Vec<BriefingOption>)>, StoreError> {
        let Some(row) = briefing::Entity::find_by_id(id.get())
            .one(&self.db)
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let options = option::Entity::find()
            .filter(option::Column::BriefingId.eq(row.id))
            .order_by_asc(option::Column::Id)
            .all(&self.db)
            .await
            .map_err(classify)?;
        Ok(Some((
            convert::briefing(row)?,
            options.into_iter().map(convert::option).collect(),
        )))
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn option(&self, id: OptionId) -> Result<Option<(Briefing, BriefingOption)>, StoreError> {
        let row = option::Entity::find_by_id(id.get())
            .find_also_related(briefing::Entity)
            .one(&self.db)
            .await
            .map_err(classify)?;
        match row {
            Some((option, Some(briefing))) => Ok(Some((
                convert::briefing(briefing)?,
                convert::option(option),
            ))),
            _ => Ok(None),
        }
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn apply_briefing_update(
        &self,
        id: BriefingId,
        update: &BriefingUpdate,
    ) -> Result<Option<Briefing>, StoreError> {
        let update = match update {
            // The first running report records the start; the status may already say
            // `processing` (a briefing is created so), so later reports change nothing.
            BriefingUpdate::Running => {
                in_flight::<briefing::Entity>(id.get(), BriefingStatus::Processing)
                    .col_expr(briefing::Column::StartedAt, Expr::value(now()))
                    .filter(briefing::Column::StartedAt.is_null())
            }
            BriefingUpdate::Failed(message) => {
                in_flight::<briefing::Entity>(id.get(), BriefingStatus::Failed)
                    .col_expr(briefing::Column::ErrorMessage, Expr::value(message.clone()))
            }
            BriefingUpdate::Revoked => {
                cancel_write::<briefing::Entity>(&Cancel::new(CancelReason::Revoked))
                    .filter(briefing::Column::Id.eq(id.get()))
            }
            BriefingUpdate::OptionsReady(options) => {
                // The status and the options land together or not at all.
                let txn = self.db.begin().await.map_err(classify)?;
                let moved = in_flight::<briefing::Entity>(id.get(), BriefingStatus::OptionsReady)
                    .exec_with_returning(&txn)
                    .await
                    .map_err(classify)?
                    .into_iter()
                    .next();
                if moved.is_some() && !options.is_empty() {
                    let created_at = now();
                    let rows = options.iter().map(|o| option::ActiveModel {
                        id: NotSet,
                        briefing_id: Set(id.get()),
                        title: Set(o.title.clone()),
                        description: Set(o.description.clone()),
                        generator_type: Set(o.generator_type.clone()),
                        created_at: Set(created_at),
                    });
                    option::Entity::insert_many(rows)
                        .exec(&txn)
                        .await
                        .map_err(classify)?;
                }
                txn.commit().await.map_err(classify)?;
                return moved.map(convert::briefing).transpose();
            }
        };
        moved_row(&self.db, update).await
    }
}
