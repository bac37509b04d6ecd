//! The `Videos` port.

use ensinalab_domain::{Cancel, CancelReason, VideoId, VideoStatus};
use ensinalab_ports::{NewVideo, StoreError, Video, VideoUpdate, Videos};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, NotSet, QueryFilter, Set};

use crate::SqlStore;
use crate::convert::{self, now};
use crate::entity::video;
use crate::error::classify;
use crate::guarded::{cancel_write, in_flight, moved_row};

impl Videos for SqlStore {
    #[tracing::instrument(skip(self), err)]
    async fn create_video(&self, new: &NewVideo) -> Result<Video, StoreError> {
        let now = now();
        let row = video::ActiveModel {
            id: NotSet,
            user_id: Set(new.user_id.get()),
            briefing_id: Set(new.briefing_id.get()),
            option_id: Set(new.option_id.get()),
            title: Set(new.title.clone()),
            generator_type: Set(new.generator_type.clone()),
            status: Set(VideoStatus::Queued.as_str().to_owned()),
            progress: Set(0.0),
            task_id: Set(Some(new.task_id.as_str().to_owned())),
            error_message: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .map_err(classify)?;
        convert::video(row)
    }

    #[tracing::instrument(skip(self), err)]
    async fn video(&self, id: VideoId) -> Result<Option<Video>, StoreError> {
        video::Entity::find_by_id(id.get())
            .one(&self.db)
            .await
            .map_err(classify)?
            .map(convert::video)
            .transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn apply_video_update(
        &self,
        id: VideoId,
        update: &VideoUpdate,
    ) -> Result<Option<Video>, StoreError> {
        let update = match update {
            VideoUpdate::Running { progress } => {
                in_flight::<video::Entity>(id.get(), VideoStatus::Processing)
                    .col_expr(video::Column::Progress, Expr::value(*progress))
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
