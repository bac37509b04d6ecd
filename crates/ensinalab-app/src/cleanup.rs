//! Cleaning up after jobs: dispatching the cleanups cancels and failures owe (see
//! [`crate::cleanup`]) and the periodic sweep of orphaned partial directories. The server's
//! cleanup jobs call these.

use ensinalab_domain::TaskId;
use time::OffsetDateTime;

use ensinalab_ports::{OwedCleanup, Store, StoreError, TaskBroker, TaskKind, TaskRequest};

use crate::revokes::{DispatchError, DispatchReport, retry_delay};
use crate::{Drain, Service, new_task_id};

/// The most in-flight tasks an orphan sweep names; with more in flight the sweep is skipped,
/// since a partial list would make the workers delete live jobs' files.
pub const MAX_SWEEP_IN_FLIGHT: u32 = 50_000;

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Records in the cleanup outbox the cleanups the change stream owes since the last call
    /// (the cleanup job calls it every tick, with the drain it was handed). Returns how many.
    /// On a store failure they are kept for the next call.
    ///
    /// # Errors
    /// [`StoreError`] when they could not be written.
    pub async fn record_cleanups(
        &self,
        owed_cleanups: &mut Drain<OwedCleanup>,
    ) -> Result<usize, StoreError> {
        let owed = owed_cleanups.take();
        if owed.is_empty() {
            return Ok(0);
        }
        match self.store.owe_cleanups(&owed).await {
            Ok(()) => Ok(owed.len()),
            Err(err) => {
                owed_cleanups.put_back(owed);
                Err(err)
            }
        }
    }

    /// Sends up to `limit` cleanups due at `now` to the workers, one task each, and forgets the
    /// ones sent. When the broker cannot be reached, the rest get their next attempt time
    /// (exponential backoff) and the error is returned.
    ///
    /// # Errors
    /// [`DispatchError`] when the store fails, or the broker does.
    pub async fn dispatch_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<DispatchReport, DispatchError> {
        let due = self.store.due_cleanups(now, limit).await?;
        let mut sent: Vec<TaskId> = Vec::with_capacity(due.len());
        for cleanup in &due {
            let task = TaskRequest {
                id: new_task_id(),
                kind: TaskKind::CleanupPartialFiles {
                    resource: cleanup.resource,
                    task_id: cleanup.task_id.clone(),
                    reason: cleanup.reason,
                },
            };
            if let Err(err) = self.broker.publish(&task).await {
                self.store.cleanups_sent(&sent).await?;
                let rest = &due[sent.len()..];
                let attempts = rest.iter().map(|c| c.attempts).max().unwrap_or(0);
                let ids: Vec<TaskId> = rest.iter().map(|c| c.task_id.clone()).collect();
                self.store
                    .cleanups_failed(&ids, now + retry_delay(attempts))
                    .await?;
                return Err(err.into());
            }
            sent.push(cleanup.task_id.clone());
        }
        if !sent.is_empty() {
            self.store.cleanups_sent(&sent).await?;
            tracing::info!(cleanups = sent.len(), "partial-file cleanups dispatched");
        }
        Ok(DispatchReport {
            sent: sent.len(),
            failed: 0,
        })
    }

    /// Asks the workers to delete the partial directories of every task not in flight now and
    /// not touched for `grace` (a job dispatched after the list was read, or a worker clock a
    /// little behind ours, keeps its files). Returns how many tasks the sweep spares, or `None`
    /// when more than [`MAX_SWEEP_IN_FLIGHT`] are in flight and the sweep was skipped.
    ///
    /// # Errors
    /// [`DispatchError`] when the store or the broker fails.
    pub async fn sweep_orphans(
        &self,
        now: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<Option<usize>, DispatchError> {
        let in_flight = self.store.in_flight(MAX_SWEEP_IN_FLIGHT + 1).await?;
        if in_flight.len() > MAX_SWEEP_IN_FLIGHT as usize {
            tracing::warn!(
                limit = MAX_SWEEP_IN_FLIGHT,
                "orphan sweep skipped: more tasks in flight than it can name"
            );
            return Ok(None);
        }
        let spared = in_flight.len();
        let task = TaskRequest {
            id: new_task_id(),
            kind: TaskKind::SweepOrphans {
                in_flight: in_flight.into_iter().map(|t| t.task_id).collect(),
                modified_before: now - grace,
            },
        };
        self.broker.publish(&task).await?;
        Ok(Some(spared))
    }
}
