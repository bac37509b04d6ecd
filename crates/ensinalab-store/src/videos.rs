//! The `Videos` port.

use ensinalab_domain::{Cancel, CancelReason, VideoId, VideoStatus};
use ensinalab_ports::{NewVideo, StoreError, Video, VideoUpdate, Videos};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Value};

use crate::SqlStore;
use crate::convert::{self, now};
use crate::entity::video;
use crate::error::classify;
use crate::guarded::{cancel_write, in_flight, moved_row};
use crate::slots;

impl Videos for SqlStore {
    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn create_video(&self, new: &NewVideo, slots: u32) -> Result<Option<Video>, StoreError> {
        let now = now();
        let values: Vec<Value> = vec![
            new.user_id.get().into(),
            new.briefing_id.get().into(),
            new.option_id.get().into(),
            new.title.as_str().into(),
            new.generator_type.as_str().into(),
            VideoStatus::Queued.as_str().into(),
            0.0_f64.into(),
            new.task_id.as_str().into(),
            now.into(),
            now.into(),
        ];
        let columns = [
            "user_id",
            "briefing_id",
            "option_id",
            "title",
            "generator_type",
            "status",
            "progress",
            "task_id",
            "created_at",
            "updated_at",
        ];
        slots::insert_if_free(&self.db, "videos", &columns, values, new.user_id, slots)
            .await?
            .map(convert::video)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn video(&self, id: VideoId) -> Result<Option<Video>, StoreError> {
        video::Entity::find_by_id(id.get())
            .one(&self.db)
            .await
            .map_err(classify)?
            .map(convert::video)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn apply_video_update(
        &self,
        id: VideoId,
        update: &VideoUpdate,
    ) -> Result<Option<Video>, StoreError> {
        let update = match update {
            VideoUpdate::Running { progress } => {
                in_flight::<video::Entity>(id.get(), VideoStatus::Processing)
                    .col_expr(video::Column::Progress, Expr::value(*progress))
                    .col_expr(
                        video::Column::StartedAt,
                        Func::coalesce([Expr::col(video::Column::StartedAt), Expr::value(now())])
                            .into(),
                    )
            }
            VideoUpdate::Finished(status) => in_flight::<video::Entity>(id.get(), *status)
                .col_expr(video::Column::Progress, Expr::value(1.0)),
            VideoUpdate::Failed(message) => {
                in_flight::<video::Entity>(id.get(), VideoStatus::Failed)
                    .col_expr(video::Column::ErrorMessage, Expr::value(message.clone()))
            }
            VideoUpdate::Revoked => {
                cancel_write::<video::Entity>(&Cancel::new(CancelReason::Revoked))
                    .filter(video::Column::Id.eq(id.get()))
            }
        };
        moved_row(&self.db, update).await
    }
}
