//! The fake's [`Videos`].

use ensinalab_domain::{Cancel, CancelReason, VideoId, VideoStatus};
use time::OffsetDateTime;

use super::*;
use ensinalab_ports::{NewVideo, StoreError, Video, VideoUpdate, Videos};

impl Videos for InMemoryStore {
    async fn create_video(&self, new: &NewVideo, slots: u32) -> Result<Option<Video>, StoreError> {
        self.with(|t| {
            if t.held_slots(new.user_id) >= slots as usize {
                return None;
            }
            let now = OffsetDateTime::now_utc();
            let v = Video {
                id: VideoId(t.next()),
                user_id: new.user_id,
                briefing_id: new.briefing_id,
                option_id: new.option_id,
                title: new.title.clone(),
                generator_type: new.generator_type.clone(),
                status: VideoStatus::Queued,
                progress: 0.0,
                task_id: Some(new.task_id.clone()),
                error_message: None,
                created_at: now,
                updated_at: now,
                started_at: None,
            };
            t.videos.push(v.clone());
            Some(v)
        })
    }

    async fn video(&self, id: VideoId) -> Result<Option<Video>, StoreError> {
        self.with(|t| t.videos.iter().find(|v| v.id == id).cloned())
    }

    async fn apply_video_update(
        &self,
        id: VideoId,
        update: &VideoUpdate,
    ) -> Result<Option<Video>, StoreError> {
        self.with(|t| {
            let v = t
                .videos
                .iter_mut()
                .find(|v| v.id == id && v.status.is_in_flight())?;
            v.updated_at = OffsetDateTime::now_utc();
            match update {
                VideoUpdate::Running { progress } => {
                    v.status = VideoStatus::Processing;
                    v.progress = *progress;
                    v.started_at.get_or_insert_with(OffsetDateTime::now_utc);
                }
                VideoUpdate::Finished(status) => {
                    v.status = *status;
                    v.progress = 1.0;
                }
                VideoUpdate::Failed(msg) => {
                    v.status = VideoStatus::Failed;
                    v.error_message = Some(msg.clone());
                }
                VideoUpdate::Revoked => v.write(&Cancel::new(CancelReason::Revoked)),
            }
            Some(v.clone())
        })
    }
}
