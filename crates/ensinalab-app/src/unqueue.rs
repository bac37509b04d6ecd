//! Reporting the messages the broker took out of its queue after a cancel: one `revoke` change
//! per message removed, on its owner's stream (and so in the metrics), by the one pass that
//! removed it. The server's unqueue job calls this continuously.

use time::OffsetDateTime;

use ensinalab_ports::{BrokerError, RevokeOutcome, Store, StoreError, TaskBroker};

use crate::Service;

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnqueueReport {
    /// Messages the broker removed in this pass.
    pub removed: usize,
    /// Removals reported as a change (a removed task whose row is gone has nobody to tell).
    pub reported: usize,
    /// Removals are still owed that this server may carry out now: pass again at once.
    pub more: bool,
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum UnqueueError {
    /// The broker failed; what it owes stays owed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The store failed while the removals were reported: the messages are out of the queue,
    /// and those whose row could not be read have no change.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Asks the broker for one pass taking cancelled tasks' messages out of its queue, and
    /// emits a `revoke` change with [`RevokeOutcome::RemovedFromQueue`] for the resource of
    /// each task whose message it removed. `Ok(None)` when the broker keeps no queue to take
    /// messages out of.
    ///
    /// # Errors
    /// [`UnqueueError::Broker`] when the pass failed. [`UnqueueError::Store`] when a removed
    /// task's row could not be read: the first such failure, once every removal was tried.
    pub async fn take_out_cancelled(
        &self,
        now: OffsetDateTime,
    ) -> Result<Option<UnqueueReport>, UnqueueError> {
        let Some(taken) = self.broker.take_out_cancelled().await? else {
            return Ok(None);
        };
        let mut report = UnqueueReport {
            removed: taken.removed.len(),
            reported: 0,
            more: taken.more,
        };
        let mut first_error = None;
        for task_id in &taken.removed {
            match self
                .emit_revoke(task_id, RevokeOutcome::RemovedFromQueue, now)
                .await
            {
                Ok(true) => report.reported += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(%task_id, error = %err, "a message taken out of the queue was not reported");
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => Err(err.into()),
            None => Ok(Some(report)),
        }
    }
}
