//! Repository ports. One adapter (`ensinalab-store`) implements them all on one database, so a
//! use case that needs several of them takes one `S: Store`.

use std::future::Future;

use ensinalab_domain::{
    BriefingDraft, BriefingId, BriefingStatus, Cancel, OptionId, TaskId, UserId, VideoId,
    VideoStatus,
};

use time::OffsetDateTime;

use crate::alerts::MailSlots;
use crate::audit::{SecurityEvent, SecurityEventPage, SecurityEventQuery};
use crate::cleanup::CleanupOutbox;
use crate::error::StoreError;
use crate::model::{
    ActivePage, ActiveRows, Briefing, BriefingOption, BriefingUpdate, CancelledAll, ExpiredJob,
    InFlightTask, NewVideo, Resource, ResourceId, ResourceRef, Transition, Video, VideoUpdate,
};
use crate::outbox::RevokeOutbox;
use crate::stats::Statistics;

/// Briefings and their options.
pub trait Briefings: Send + Sync {
    /// Inserts a briefing in `processing` with its `generate_options` task id already set, so a
    /// worker's report can never arrive before the row knows its task; unless `user` already
    /// holds `slots` jobs ([`Lifecycle::ACTIVE`](ensinalab_domain::Lifecycle::ACTIVE) briefings
    /// and videos), then `None` and nothing is written. Counting and inserting MUST not
    /// interleave with another creation of the same user's (on one database, however many
    /// servers).
    ///
    /// # Errors
    /// `StoreError` when the insert fails.
    fn create_briefing(
        &self,
        user: UserId,
        draft: &BriefingDraft,
        task_id: &TaskId,
        slots: u32,
    ) -> impl Future<Output = Result<Option<Briefing>, StoreError>> + Send;

    /// The briefing and its options (oldest first), whoever owns it: the use case decides who
    /// may see it (a missing row and someone else's MUST look the same to the caller).
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn briefing(
        &self,
        id: BriefingId,
    ) -> impl Future<Output = Result<Option<(Briefing, Vec<BriefingOption>)>, StoreError>> + Send;

    /// The option and its briefing, whoever owns it.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn option(
        &self,
        id: OptionId,
    ) -> impl Future<Output = Result<Option<(Briefing, BriefingOption)>, StoreError>> + Send;

    /// Applies a task report if, and only if, the briefing is still in
    /// [`BriefingStatus::IN_FLIGHT`]; options are stored in the same transaction; a
    /// [`BriefingUpdate::Revoked`] writes what the domain's cancel for
    /// [`CancelReason::Revoked`](ensinalab_domain::CancelReason::Revoked) says. Returns the row
    /// after the change when it changed, `None` when the guard kept it as it was.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn apply_briefing_update(
        &self,
        id: BriefingId,
        update: &BriefingUpdate,
    ) -> impl Future<Output = Result<Option<Briefing>, StoreError>> + Send;
}

/// Videos.
pub trait Videos: Send + Sync {
    /// Inserts a video in `queued`, progress 0, with its task id; unless its user already holds
    /// `slots` jobs (as [`Briefings::create_briefing`]), then `None`.
    ///
    /// # Errors
    /// `StoreError` when the insert fails.
    fn create_video(
        &self,
        new: &NewVideo,
        slots: u32,
    ) -> impl Future<Output = Result<Option<Video>, StoreError>> + Send;

    /// The video, whoever owns it (see [`Briefings::briefing`]).
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn video(&self, id: VideoId) -> impl Future<Output = Result<Option<Video>, StoreError>> + Send;

    /// Like [`Briefings::apply_briefing_update`], guarded by [`VideoStatus::IN_FLIGHT`].
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn apply_video_update(
        &self,
        id: VideoId,
        update: &VideoUpdate,
    ) -> impl Future<Output = Result<Option<Video>, StoreError>> + Send;
}

/// A user's cancel of one resource, for each kind of id (`BriefingId`, `VideoId`).
pub trait Cancels<I: ResourceId>: Send + Sync {
    /// Carries out `cancel` (decided by the domain's cancel rule) on resource `id` if it belongs
    /// to `user`: ONE conditional write guarded by `cancel.from`, setting what `cancel` says, so
    /// a cancel racing a completion ends in exactly one terminal state. Otherwise MUST say why:
    /// `NotFound`, `NotOwned`, or `Refused(current)`, changing nothing.
    ///
    /// When the row moves and has a task id, an [`OwedRevoke`](crate::OwedRevoke) for that task
    /// MUST be written in the same transaction (see [`RevokeOutbox`]): the status and the debt
    /// of a revoke are committed together or not at all.
    ///
    /// # Errors
    /// `StoreError` on database failure only; nothing is changed then.
    fn cancel(
        &self,
        user: UserId,
        id: I,
        cancel: &Cancel<Status<I>>,
    ) -> impl Future<Output = Result<Transition<I::Row, Status<I>>, StoreError>> + Send;
}

/// The status type of the resource `I` names.
pub type Status<I> = <<I as ResourceId>::Row as Resource>::Status;

/// Queries and transitions across briefings and videos.
pub trait Tasks: Send + Sync {
    /// A page of the user's cancellable briefings and videos, newest first (by `created_at`,
    /// then kind, then id: a total order, so pages never overlap or skip), at most
    /// `page.limit + 1` rows after `page.after` (the one extra says a next page exists), with
    /// the counts of the whole list; one statement whatever their number.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn active(
        &self,
        user: UserId,
        page: &ActivePage,
    ) -> impl Future<Output = Result<ActiveRows, StoreError>> + Send;

    /// The resource whose current task is `task_id`, whoever owns it.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn resource_for_task(
        &self,
        task_id: &TaskId,
    ) -> impl Future<Output = Result<Option<ResourceRef>, StoreError>> + Send;

    /// In one transaction: carries out `briefings` on every briefing of `user` and `videos` on
    /// every video of `user` (the same guarded writes as the single cancels) and writes an owed
    /// revoke for every moved row with a task id (see [`RevokeOutbox`]). Returns what moved,
    /// with the task ids to revoke, sorted by id.
    ///
    /// # Errors
    /// `StoreError` on database failure; nothing is changed then.
    fn cancel_all(
        &self,
        user: UserId,
        briefings: &Cancel<BriefingStatus>,
        videos: &Cancel<VideoStatus>,
    ) -> impl Future<Output = Result<CancelledAll, StoreError>> + Send;

    /// In one transaction: carries out `briefings` on every briefing a worker started before
    /// `briefings_started_before`, and `videos` on every video started before
    /// `videos_started_before` (the same guarded writes as every cancel, so a job moves once
    /// however many servers sweep at the same moment), and writes an owed revoke for every moved
    /// row with a task id. Returns the moved jobs. A constant number of statements, served by
    /// the `(status, started_at)` indexes.
    ///
    /// # Errors
    /// `StoreError` on database failure; nothing is changed then.
    fn cancel_expired(
        &self,
        briefings: &Cancel<BriefingStatus>,
        briefings_started_before: OffsetDateTime,
        videos: &Cancel<VideoStatus>,
        videos_started_before: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<ExpiredJob>, StoreError>> + Send;

    /// Up to `limit` resources in flight with a task id, oldest first (the reconciler's sweep).
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn in_flight(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<InFlightTask>, StoreError>> + Send;
}

/// The security trail.
pub trait SecurityLog: Send + Sync {
    /// Appends one event.
    ///
    /// # Errors
    /// `StoreError` when it cannot be written.
    fn record(&self, event: &SecurityEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The events passing every filter of `query`, newest first (by id), at most
    /// `query.clamped_limit()` of them, with the cursor of the next page when there is one.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn security_events(
        &self,
        query: &SecurityEventQuery,
    ) -> impl Future<Output = Result<SecurityEventPage, StoreError>> + Send;

    /// Deletes up to `limit` events created before `before`, oldest first; returns how many.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn prune_security_events(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Everything a use case may need from storage; a store says it is one with an empty
/// `impl Store for … {}`.
pub trait Store:
    Briefings
    + Videos
    + Cancels<BriefingId>
    + Cancels<VideoId>
    + Tasks
    + SecurityLog
    + RevokeOutbox
    + CleanupOutbox
    + MailSlots
    + Statistics
{
}
