//! The in-process consumers of the change stream: the log, and the queues that background jobs
//! drain (owed cleanups, operator alerts).

use ensinalab_domain::TaskId;
use ensinalab_ports::{
    ChangeKind, ChangeSink, CleanupReason, OwedCleanup, ResourceNames, TaskChange, is_alert,
};

use crate::backlog::{Backlog, Drain, backlog};

/// The consumer every service has: one log line per change (debug level, so that a cancel-all
/// of many jobs costs no formatting unless asked for), the resource named as the service's log
/// lines name it.
#[derive(Debug, Clone, Default)]
pub struct LogChanges(pub ResourceNames);

impl ChangeSink for LogChanges {
    fn publish(&self, change: &TaskChange) {
        let reason = match change.kind {
            ChangeKind::Cancelled(reason) => Some(reason.as_str()),
            _ => None,
        };
        let revoke = match change.kind {
            ChangeKind::Revoke(status) => Some(status.as_str()),
            ChangeKind::RevokeOverdue(problem) => Some(problem.as_str()),
            _ => None,
        };
        tracing::debug!(
            target: "changes",
            change = change.kind.as_str(),
            user_id = change.user_id.get(),
            resource_type = change.resource.0.as_str(),
            resource_id = self.0.name(change.resource.1).as_deref(),
            task_id = change.task_id.as_ref().map(TaskId::as_str),
            status = change.status.as_str(),
            progress = change.progress,
            reason,
            revoke,
            "task change"
        );
    }
}

/// Owed cleanups kept in memory at most, while the database cannot take them; beyond it some
/// are dropped and the orphan sweep removes their files.
pub const MAX_QUEUED_CLEANUPS: usize = 100_000;

/// The change-stream consumer that collects owed cleanups until the cleanup job records them
/// (every service has one; the cleanup job holds its drain).
#[derive(Debug, Clone)]
pub struct CleanupQueue(pub Backlog<OwedCleanup>);

impl ChangeSink for CleanupQueue {
    fn publish(&self, change: &TaskChange) {
        let (Some(reason), Some(task_id)) = (CleanupReason::of(change.kind), &change.task_id)
        else {
            return;
        };
        self.0.push(OwedCleanup {
            task_id: task_id.clone(),
            resource: change.resource,
            reason,
            created_at: change.at,
            attempts: 0,
        });
    }
}

/// Alerts kept in memory at most until the next e-mail; beyond it some are dropped (the
/// security trail and the logs still have every one).
pub const MAX_QUEUED_ALERTS: usize = 10_000;

/// The change-stream consumer that collects alerts until the mail job sends them.
#[derive(Debug, Clone)]
pub struct AlertQueue(pub Backlog<TaskChange>);

impl AlertQueue {
    /// A queue, and the drain the mail job takes the alerts from.
    pub fn new() -> (Self, Drain<TaskChange>) {
        let (queue, drain) = backlog(MAX_QUEUED_ALERTS, "operator alerts");
        (Self(queue), drain)
    }
}

impl ChangeSink for AlertQueue {
    fn publish(&self, change: &TaskChange) {
        if is_alert(change.kind) {
            self.0.push(change.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ensinalab_domain::{CancelReason, ResourceKind, UserId, VideoStatus};
    use ensinalab_ports::AnyStatus;
    use time::OffsetDateTime;

    fn change(kind: ChangeKind, task: Option<&str>) -> TaskChange {
        TaskChange {
            user_id: UserId(1),
            resource: (ResourceKind::Video, 7),
            task_id: task.map(|t| TaskId::parse(t).unwrap()),
            kind,
            status: AnyStatus::Video(VideoStatus::Cancelled),
            progress: None,
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    const TASK: &str = "7f1c6a5e-2a53-4f6e-9d55-2a8d0a3b9c11";

    #[test]
    fn the_queue_takes_cancels_and_failures_with_a_task_and_nothing_else() {
        let (queue, mut drain) = backlog(10, "owed cleanups");
        let queue = CleanupQueue(queue);
        queue.publish(&change(
            ChangeKind::Cancelled(CancelReason::Timeout),
            Some(TASK),
        ));
        queue.publish(&change(ChangeKind::Failed, Some(TASK)));
        queue.publish(&change(ChangeKind::Failed, None));
        queue.publish(&change(ChangeKind::Completed, Some(TASK)));
        queue.publish(&change(ChangeKind::Started, Some(TASK)));

        let owed = drain.take();
        let reasons: Vec<_> = owed.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(reasons, ["timeout", "failed"]);
        assert_eq!(owed[0].resource, (ResourceKind::Video, 7));
        assert!(drain.take().is_empty(), "take empties the queue");
    }
}
