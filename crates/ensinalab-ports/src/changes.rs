//! The stream of task changes: every change a user could see, emitted once, by the use case that
//! made it, after its transaction committed.
//!
//! A [`TaskChange`] says whose job changed, which resource and task, what happened
//! ([`ChangeKind`]), the status and progress it now has, and when. Use cases hand each one to the
//! [`ChangeSink`]s the [`Service`](crate::Service) was built with; consumers (the logs, the
//! cleanup dispatch, the operators' alerts, the metrics, the live stream of `ensinalab-live`)
//! plug in there, never into the routes or the rules.

use std::fmt;

use ensinalab_domain::{CancelReason, ResourceKind, TaskId, UserId};
use time::OffsetDateTime;

use crate::model::{AnyStatus, Resource, RevokeStatus};

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChangeKind {
    /// Its row was written and its task dispatched.
    Created,
    /// A worker reported the task started.
    Started,
    /// A worker reported progress (videos).
    Progress,
    /// A briefing's options arrived.
    OptionsReady,
    /// A video finished.
    Completed,
    /// The task failed (or could not be dispatched, or its worker was lost).
    Failed,
    /// A video finished and waits for a human.
    PendingApproval,
    /// The row was cancelled, for this reason.
    Cancelled(CancelReason),
    /// What became of the revoke that follows a cancel.
    Revoke(RevokeStatus),
    /// The cancel could not be carried out in time: its revoke is overdue.
    RevokeOverdue(Overdue),
}

/// Why a cancel's revoke is overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// The broker still has not taken it, past its grace.
    Undelivered,
    /// It was delivered, yet past its grace a live worker still reports the task running.
    StillRunning,
}

impl Overdue {
    /// The wire string (`problem` of a `revoke_overdue` change).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undelivered => "undelivered",
            Self::StillRunning => "still_running",
        }
    }
}

impl ChangeKind {
    /// The wire name (`change` of a live event).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Started => "started",
            Self::Progress => "progress",
            Self::OptionsReady => "options_ready",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::PendingApproval => "pending_approval",
            Self::Cancelled(_) => "cancelled",
            Self::Revoke(_) => "revoke",
            Self::RevokeOverdue(_) => "revoke_overdue",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskChange {
    /// The job's owner: a consumer MUST show a change to this user only.
    pub user_id: UserId,
    pub resource: (ResourceKind, i64),
    pub task_id: Option<TaskId>,
    pub kind: ChangeKind,
    /// The status the row has after the change.
    pub status: AnyStatus,
    /// Videos only: the progress the row has after the change.
    pub progress: Option<f64>,
    pub at: OffsetDateTime,
}

impl TaskChange {
    /// The change `kind` of `row`, as the row is after it.
    pub fn of<R: Resource>(row: &R, kind: ChangeKind, at: OffsetDateTime) -> Self {
        Self {
            user_id: row.owner(),
            resource: row.key(),
            task_id: row.task_id().cloned(),
            kind,
            status: row.status().into(),
            progress: row.progress(),
            at,
        }
    }
}

/// A consumer of the change stream.
pub trait ChangeSink: Send + Sync {
    /// Takes one committed change. MUST NOT block or fail the use case that emitted it: a
    /// consumer that needs IO queues the change and does the IO elsewhere.
    fn publish(&self, change: &TaskChange);
}
