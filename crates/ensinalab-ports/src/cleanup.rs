//! The cleanup port: the partial files a cancelled or failed job leaves on a worker's disk.
//!
//! Every `cancelled` or `failed` change of a job with a task id owes the workers one
//! `ensinalab.cleanup_partial_files` task. [`CleanupQueue`] takes those owed cleanups off the
//! change stream (every [`Service`](crate::Service) has one); the server's cleanup job writes
//! them to the [`CleanupOutbox`] and dispatches them from there, so a broker outage delays a cleanup and never loses it. A cleanup that
//! follows a cancel the service revoked waits until that revoke was delivered: the files go
//! only after the kill was sent, so no still-running process writes behind the cleanup, and
//! is dropped when that revoke says the task never started
//! ([`RevokeOutcome::may_have_started`]): a claimed task has no files. A task that finished
//! before its kill (`finished_first`) is owed a cleanup of its finished output too, so a cancel
//! leaves nothing behind.
//!
//! The queue is in memory between the commit and the outbox write (at most one dispatcher tick,
//! longer while the database is down): a process that dies in that window loses those
//! cleanups, and the periodic orphan sweep removes their directories instead.

use ensinalab_domain::{CancelReason, ResourceKind, TaskId};
use std::future::Future;
use time::OffsetDateTime;

use crate::changes::ChangeKind;
use crate::error::StoreError;
use crate::model::{RevokeOutcome, RevokeStatus};

/// Why a job's partial files are cleaned up: the `reason` kwarg of the cleanup task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupReason {
    /// The job was cancelled, for this reason.
    Cancelled(CancelReason),
    /// The job failed (its task raised, could not be dispatched, or lost its worker).
    Failed,
    /// The job was cancelled, but its task finished before the kill reached it: its finished
    /// output goes too.
    FinishedFirst,
}

impl CleanupReason {
    /// Every reason.
    pub const ALL: [Self; 6] = [
        Self::Cancelled(CancelReason::User),
        Self::Cancelled(CancelReason::UserAll),
        Self::Cancelled(CancelReason::Timeout),
        Self::Cancelled(CancelReason::Revoked),
        Self::Failed,
        Self::FinishedFirst,
    ];

    /// The cleanup a change owes, if it owes one.
    pub fn of(kind: ChangeKind) -> Option<Self> {
        match kind {
            ChangeKind::Cancelled(reason) => Some(Self::Cancelled(reason)),
            ChangeKind::Failed => Some(Self::Failed),
            ChangeKind::Revoke(RevokeStatus::Done(RevokeOutcome::FinishedFirst)) => {
                Some(Self::FinishedFirst)
            }
            _ => None,
        }
    }

    /// The wire string: the cancel reason's, or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancelled(reason) => reason.as_str(),
            Self::Failed => "failed",
            Self::FinishedFirst => "finished_first",
        }
    }

    /// The reason whose wire string is `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a cleanup owed for this reason replaces one already owed for the same task (the
    /// cleanup of a finished output removes more than any other); otherwise the first is kept.
    pub fn supersedes(self) -> bool {
        self == Self::FinishedFirst
    }

    /// Whether the cleanup waits for the delivery of the revoke the cancel owes. A task that
    /// failed, or that Celery reports revoked by someone else, has no process of ours to kill.
    pub fn waits_for_revoke(self) -> bool {
        match self {
            Self::Cancelled(reason) => reason != CancelReason::Revoked,
            Self::Failed | Self::FinishedFirst => false,
        }
    }
}

/// The cleanup one job's task is owed.
#[derive(Debug, Clone, PartialEq)]
pub struct OwedCleanup {
    pub task_id: TaskId,
    pub resource: (ResourceKind, i64),
    pub reason: CleanupReason,
    /// When the change that owes it happened.
    pub created_at: OffsetDateTime,
    /// Failed dispatch attempts so far (drives the backoff).
    pub attempts: u32,
}

/// Where owed cleanups are kept until a worker was sent them.
pub trait CleanupOutbox: Send + Sync {
    /// Records `cleanups`; a task already owed one keeps its first.
    ///
    /// # Errors
    /// `StoreError` on database failure; none is recorded then.
    fn owe_cleanups(
        &self,
        cleanups: &[OwedCleanup],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` cleanups whose next attempt is due at `now` and, when their reason
    /// [waits for the revoke](CleanupReason::waits_for_revoke), whose task's revoke was
    /// delivered; oldest first.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn due_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OwedCleanup>, StoreError>> + Send;

    /// Forgets the cleanups of `ids`: a worker was sent them.
    ///
    /// # Errors
    /// `StoreError` on database failure only (they are sent again then: the task is idempotent).
    fn cleanups_sent(&self, ids: &[TaskId]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a failed dispatch of `ids`: one more attempt, the next one at `retry_at`.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn cleanups_failed(
        &self,
        ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
