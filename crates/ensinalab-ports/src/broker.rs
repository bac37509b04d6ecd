//! The task broker port: Celery over Redis in production, an in-process runner by default.

use std::future::Future;

use ensinalab_domain::{BriefingId, CeleryState, OptionId, ResourceKind, TaskId, VideoId};
use time::OffsetDateTime;

use crate::cleanup::CleanupReason;
use crate::error::BrokerError;
use crate::model::{RevokeReport, TaskSnapshot};

/// Dispatches, observes and stops generation tasks. Batch-shaped on purpose: listing N tasks
/// and cancelling N tasks each cost one round trip, not N.
pub trait TaskBroker: Send + Sync {
    /// Enqueues the task under `task.id`. MUST validate the message before sending it (a
    /// malformed Celery message can crash every worker that pops it).
    ///
    /// # Errors
    /// `Unavailable` when the broker cannot be reached; `Protocol` when the message is refused.
    fn publish(&self, task: &TaskRequest) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// The states of `ids`, in the same order and of the same length, in one round trip.
    /// An id the backend does not know is `PENDING`.
    ///
    /// # Errors
    /// `Unavailable` when the broker cannot be reached. An undecodable entry is NOT an error
    /// for the batch: it is reported as that task's state with an `error`.
    fn states(
        &self,
        ids: &[TaskId],
    ) -> impl Future<Output = Result<Vec<TaskSnapshot>, BrokerError>> + Send;

    /// Only the Celery states of `ids`, as [`Self::states`] would give them, asked with the ids
    /// borrowed from the rows that hold them. The active list needs nothing more; a broker that
    /// can read a state without decoding the whole value overrides this (Celery's result values
    /// carry the task's meta, which cost the 50-row list several allocations per row to build
    /// and throw away).
    ///
    /// # Errors
    /// As [`Self::states`].
    fn states_only(
        &self,
        ids: &[&TaskId],
    ) -> impl Future<Output = Result<Vec<CeleryState>, BrokerError>> + Send {
        async move {
            let owned: Vec<TaskId> = ids.iter().map(|id| (*id).clone()).collect();
            let snapshots = self.states(&owned).await?;
            Ok(snapshots.into_iter().map(|s| s.state).collect())
        }
    }

    /// Stops `ids` for good: a task no worker has started yet MUST never run (the Celery adapter
    /// claims its result key before any worker does), and ONE terminate-with-SIGKILL broadcast
    /// goes out for the rest. Returns one report per id, in order, saying what really happened.
    /// Idempotent: revoking again changes nothing a first revoke did.
    ///
    /// # Errors
    /// `Unavailable` when the broker cannot be reached; part of the revoke may have been done
    /// then (a claim written), and revoking again is safe.
    fn revoke(
        &self,
        ids: &[TaskId],
    ) -> impl Future<Output = Result<Vec<RevokeReport>, BrokerError>> + Send;

    /// Whether the broker answers (for `/readyz`).
    ///
    /// # Errors
    /// `Unavailable` when it does not.
    fn ping(&self) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// The ids of every task some live worker is executing right now, if the broker can tell
    /// (Celery: `inspect active`); `None` when it cannot. Slow (it waits for replies): for
    /// background checks only, never inside a user request. Drives the lost-worker rule: a task
    /// the backend shows running that no live worker runs has lost its worker.
    ///
    /// # Errors
    /// `Unavailable` when the broker cannot be reached.
    fn running(&self) -> impl Future<Output = Result<Option<Vec<TaskId>>, BrokerError>> + Send {
        async { Ok(None) }
    }

    /// One bounded pass that takes out of the queue the messages of tasks a revoke claimed
    /// ([`RevokeOutcome::RemovedFromQueue`](crate::RevokeOutcome::RemovedFromQueue)), so that no
    /// worker, one that ignores the claim included, is ever handed them. `None` when this broker
    /// keeps no queue of its own to take messages out of (nothing will ever be owed).
    ///
    /// The removals owed MUST be durable and shared by every server on the broker: a pass cut
    /// short (a crash, a restart, an error) leaves them owed for the next pass, on any server.
    /// A message MUST be reported removed by exactly one pass, the one that removed it, however
    /// many passes run at once; a message no longer queued (a worker took it) is not reported.
    /// Every command a pass sends MUST be short whatever the queue's length: a pass never holds
    /// the broker for other clients. Never called on a user's request.
    ///
    /// # Errors
    /// `Unavailable` when the broker cannot be reached (the removals stay owed); messages this
    /// pass removed before the failure are then reported by no one.
    fn take_out_cancelled(
        &self,
    ) -> impl Future<Output = Result<Option<TakenOut>, BrokerError>> + Send {
        async { Ok(None) }
    }
}

/// What one [`TaskBroker::take_out_cancelled`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakenOut {
    /// The tasks whose message this pass removed from the queue, each once.
    pub removed: Vec<TaskId>,
    /// Removals are still owed that this caller may carry out now: the next pass should follow
    /// at once rather than after an idle wait.
    pub more: bool,
}

/// A generation task to dispatch (see `docs/celery-contract.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    /// Chosen by the service before the row is written, so the row and the message agree.
    pub id: TaskId,
    pub kind: TaskKind,
}

/// The tasks of the contract, with their kwargs.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskKind {
    /// `ensinalab.generate_options`.
    GenerateOptions {
        briefing_id: BriefingId,
        title: String,
        description: String,
        duration_minutes: u32,
    },
    /// `ensinalab.generate_video`.
    GenerateVideo {
        video_id: VideoId,
        briefing_id: BriefingId,
        option_id: OptionId,
        title: String,
        generator_type: String,
        duration_minutes: u32,
    },
    /// `ensinalab.cleanup_partial_files`: deletes what the job's task left in the work dir.
    CleanupPartialFiles {
        resource: (ResourceKind, i64),
        task_id: TaskId,
        reason: CleanupReason,
    },
    /// `ensinalab.sweep_orphans`: deletes the work dir's partial directories of tasks not in
    /// `in_flight` and last modified before `modified_before` (so a job dispatched after the
    /// list was read keeps its directory).
    SweepOrphans {
        in_flight: Vec<TaskId>,
        modified_before: OffsetDateTime,
    },
}

impl TaskKind {
    /// The Celery task name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::GenerateOptions { .. } => "ensinalab.generate_options",
            Self::GenerateVideo { .. } => "ensinalab.generate_video",
            Self::CleanupPartialFiles { .. } => "ensinalab.cleanup_partial_files",
            Self::SweepOrphans { .. } => "ensinalab.sweep_orphans",
        }
    }

    /// Whether the task generates something for a job (its result is the job's outcome and a
    /// cancel may revoke it), rather than tidying up after jobs (no result is kept).
    pub fn generates(&self) -> bool {
        matches!(
            self,
            Self::GenerateOptions { .. } | Self::GenerateVideo { .. }
        )
    }
}
