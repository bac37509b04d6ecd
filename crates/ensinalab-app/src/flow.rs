//! The generation flow the cancel routes act on: briefing -> options -> video.
//!
//! Each task id is chosen before its row is written, and the row is written before the task is
//! published, so no worker report can arrive for a row that does not know its task yet. If the
//! publish fails, the row is marked `failed` (it will never run) and the caller gets the error.
//!
//! Reads are by id; whether the caller may see the row is decided here, once: someone else's
//! row and a missing one are the same `NotFound`, and both are a refused read in the trail.

use ensinalab_domain::{
    BriefingDraft, BriefingId, BriefingStatus, OptionId, ResourceKind, VideoId,
};
use serde_json::json;
use time::OffsetDateTime;

use ensinalab_ports::{
    Briefing, BriefingOption, BriefingUpdate, BrokerError, Caller, ChangeKind, EventOutcome,
    NewVideo, Resource, Store, StoreError, TaskBroker, TaskChange, TaskKind, TaskRequest, Video,
    VideoUpdate,
};

use crate::{Service, new_task_id};

/// Message stored on a row whose task could not be dispatched.
pub(crate) const DISPATCH_FAILED: &str = "Falha ao enviar a tarefa para a fila";

/// Why a job (a briefing's option generation, or a video) could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateJobError {
    /// The caller already holds `max` jobs; nothing was created.
    #[error("{max} jobs in flight already")]
    TooManyJobs { max: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The row exists (as `failed`) but its task could not be dispatched.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Why a briefing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BriefingError {
    /// Missing or someone else's.
    #[error("briefing not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an option could not be selected.
#[derive(Debug, thiserror::Error)]
pub enum SelectOptionError {
    /// Missing, or of someone else's briefing.
    #[error("option not found")]
    NotFound,
    /// The briefing's options are not ready (or it was cancelled or failed).
    #[error("briefing is not ready for a video in status {status}")]
    BriefingNotReady { status: BriefingStatus },
    /// The video could not be created.
    #[error(transparent)]
    Create(#[from] CreateJobError),
}

impl From<StoreError> for SelectOptionError {
    fn from(err: StoreError) -> Self {
        Self::Create(err.into())
    }
}

/// Why a video could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VideoStatusError {
    /// Missing or someone else's.
    #[error("video not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Stores a briefing in `processing` and dispatches `ensinalab.generate_options` for it,
    /// unless the caller already holds [`Settings::max_active_jobs_per_user`](crate::Settings)
    /// jobs.
    ///
    /// # Errors
    /// [`CreateJobError`].
    pub async fn create_briefing(
        &self,
        caller: &Caller,
        draft: &BriefingDraft,
    ) -> Result<Briefing, CreateJobError> {
        let task_id = new_task_id();
        let max = self.settings.max_active_jobs_per_user;
        let briefing = self
            .store
            .create_briefing(caller.user_id, draft, &task_id, max)
            .await?
            .ok_or(CreateJobError::TooManyJobs { max })?;
        let task = TaskRequest {
            id: task_id,
            kind: TaskKind::GenerateOptions {
                briefing_id: briefing.id,
                title: briefing.title.clone(),
                description: briefing.description.clone(),
                duration_minutes: briefing.duration_minutes,
            },
        };
        if let Err(err) = self.broker.publish(&task).await {
            let failed = BriefingUpdate::Failed(DISPATCH_FAILED.to_owned());
            self.update_briefing(briefing.id, &failed).await?;
            return Err(err.into());
        }
        self.emit_now(&briefing, ChangeKind::Created);
        Ok(briefing)
    }

    /// A briefing of the caller with its options.
    ///
    /// # Errors
    /// [`BriefingError`].
    pub async fn briefing(
        &self,
        caller: &Caller,
        id: BriefingId,
    ) -> Result<(Briefing, Vec<BriefingOption>), BriefingError> {
        let found = self.store.briefing(id).await?;
        let requested = Some((ResourceKind::Briefing, id.get()));
        self.owned(
            caller,
            found,
            |(b, _)| b,
            requested,
            json!({"action": "read_briefing"}),
        )
        .await
        .ok_or(BriefingError::NotFound)
    }

    /// Creates a `queued` video from an option of the caller's briefing and dispatches
    /// `ensinalab.generate_video`. Selecting again after a cancel is the seed's way to retry,
    /// so a briefing that already made a video may make another.
    ///
    /// # Errors
    /// [`SelectOptionError`].
    pub async fn select_option(
        &self,
        caller: &Caller,
        id: OptionId,
    ) -> Result<Video, SelectOptionError> {
        let found = self.store.option(id).await?;
        let details = json!({"action": "select_option", "option_id": id.get()});
        let (briefing, option) = self
            .owned(caller, found, |(b, _)| b, None, details)
            .await
            .ok_or(SelectOptionError::NotFound)?;
        if !matches!(
            briefing.status,
            BriefingStatus::OptionsReady | BriefingStatus::Completed
        ) {
            return Err(SelectOptionError::BriefingNotReady {
                status: briefing.status,
            });
        }
        let task_id = new_task_id();
        let max = self.settings.max_active_jobs_per_user;
        let new = NewVideo {
            user_id: caller.user_id,
            briefing_id: briefing.id,
            option_id: option.id,
            title: option.title.clone(),
            generator_type: option.generator_type.clone(),
            task_id: task_id.clone(),
        };
        let video = self
            .store
            .create_video(&new, max)
            .await?
            .ok_or(CreateJobError::TooManyJobs { max })?;
        let task = TaskRequest {
            id: task_id,
            kind: TaskKind::GenerateVideo {
                video_id: video.id,
                briefing_id: briefing.id,
                option_id: option.id,
                title: video.title.clone(),
                generator_type: video.generator_type.clone(),
                duration_minutes: briefing.duration_minutes,
            },
        };
        if let Err(err) = self.broker.publish(&task).await {
            let failed = VideoUpdate::Failed(DISPATCH_FAILED.to_owned());
            self.update_video(video.id, &failed, failed.change())
                .await?;
            return Err(CreateJobError::from(err).into());
        }
        self.emit_now(&video, ChangeKind::Created);
        Ok(video)
    }

    /// A video of the caller.
    ///
    /// # Errors
    /// [`VideoStatusError`].
    pub async fn video_status(
        &self,
        caller: &Caller,
        id: VideoId,
    ) -> Result<Video, VideoStatusError> {
        let found = self.store.video(id).await?;
        let requested = Some((ResourceKind::Video, id.get()));
        self.owned(
            caller,
            found,
            |v| v,
            requested,
            json!({"action": "read_video"}),
        )
        .await
        .ok_or(VideoStatusError::NotFound)
    }

    /// `found` if its resource (`resource_of` it) is the caller's. Otherwise `None`, and the
    /// refused read is in the trail, naming the resource found, or else the one `requested`.
    async fn owned<T, R: Resource>(
        &self,
        caller: &Caller,
        found: Option<T>,
        resource_of: impl Fn(&T) -> &R,
        requested: Option<(ResourceKind, i64)>,
        details: serde_json::Value,
    ) -> Option<T> {
        let (refusal, resource) = match &found {
            Some(t) if resource_of(t).owner() == caller.user_id => return found,
            Some(t) => (EventOutcome::NotOwner, Some(resource_of(t).key())),
            None => (EventOutcome::NotFound, requested),
        };
        self.refuse_read(caller, details, resource, None, refusal);
        None
    }

    /// Emits change `kind` of `row`, as it is now.
    pub(crate) fn emit_now<R: Resource>(&self, row: &R, kind: ChangeKind) {
        self.emit(&TaskChange::of(row, kind, OffsetDateTime::now_utc()));
    }
}
