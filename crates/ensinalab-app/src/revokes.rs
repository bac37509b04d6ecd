//! Paying the revokes cancels owe: delivery of pending ones (with backoff while the broker is
//! unreachable) and re-broadcast of delivered ones until the task is known to be finished.
//! The server's dispatcher calls these on a timer and when a worker comes online.

use ensinalab_domain::{BriefingId, ResourceKind, TaskId, VideoId};
use time::OffsetDateTime;

use ensinalab_ports::{
    BrokerError, ChangeKind, Overdue, OwedRevoke, RevokeOutcome, RevokeReport, RevokeStatus, Store,
    StoreError, TaskBroker, TaskChange, settles,
};

use crate::{Delivery, Drain, Service};

/// Longest wait between two delivery attempts of one revoke.
pub const MAX_RETRY_DELAY: time::Duration = time::Duration::seconds(30);

/// What one dispatcher pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DispatchReport {
    /// Revokes handed to the broker in this pass.
    pub sent: usize,
    /// Revokes whose delivery failed (the broker could not be reached); retried later.
    pub failed: usize,
}

/// Why a dispatcher pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s ... capped at [`MAX_RETRY_DELAY`].
pub fn retry_delay(attempts: u32) -> time::Duration {
    let secs = 1_i64 << attempts.min(5);
    time::Duration::seconds(secs).min(MAX_RETRY_DELAY)
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Marks in the outbox the revokes cancels delivered themselves since the last call (the
    /// dispatcher calls it every tick, before looking for due revokes, with the drain it was
    /// handed). Returns how many were marked. On a store failure the rest are dropped, not
    /// kept: the dispatcher delivers those again once their grace is over, which marks them.
    ///
    /// # Errors
    /// [`StoreError`] from the first write that failed.
    pub async fn record_deliveries(
        &self,
        delivered: &mut Drain<Delivery>,
    ) -> Result<usize, StoreError> {
        let mut marked = 0;
        for delivery in delivered.take() {
            self.store
                .revokes_delivered(&delivery.reports, delivery.at)
                .await?;
            marked += delivery.reports.len();
        }
        Ok(marked)
    }

    /// Delivers up to `limit` pending revokes due at `now`, in one broker call. When the broker
    /// cannot be reached, each is given its next attempt time (exponential backoff) and the
    /// error is returned.
    ///
    /// # Errors
    /// [`DispatchError`] when the store fails, or the broker does (the revokes stay pending).
    pub async fn deliver_revokes(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<DispatchReport, DispatchError> {
        let due = self.store.due_revokes(now, limit).await?;
        if due.is_empty() {
            return Ok(DispatchReport::default());
        }
        let ids: Vec<TaskId> = due.iter().map(|r| r.task_id.clone()).collect();
        match self.broker.revoke(&ids).await {
            Ok(reports) => {
                self.store.revokes_delivered(&reports, now).await?;
                tracing::info!(revokes = ids.len(), "pending revokes delivered");
                Ok(DispatchReport {
                    sent: ids.len(),
                    failed: 0,
                })
            }
            Err(err) => {
                // One backoff for the batch: the oldest attempt count drives it.
                let attempts = due.iter().map(|r| r.attempts).max().unwrap_or(0);
                self.store
                    .revokes_failed(&ids, now + retry_delay(attempts))
                    .await?;
                Err(err.into())
            }
        }
    }

    /// Broadcasts again up to `limit` delivered revokes that are not settled and were made at or
    /// after `since` (the re-broadcast bound), in one broker call. The broker reports which
    /// tasks are finished by now; those are settled (see [`Self::settle_open`]) and never sent
    /// again.
    ///
    /// # Errors
    /// [`DispatchError`] when the store or the broker fails.
    pub async fn rebroadcast_revokes(
        &self,
        now: OffsetDateTime,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<DispatchReport, DispatchError> {
        let open = self.store.open_revokes(since, limit).await?;
        if open.is_empty() {
            return Ok(DispatchReport::default());
        }
        let ids: Vec<TaskId> = open.iter().map(|r| r.task_id.clone()).collect();
        let reports = self.broker.revoke(&ids).await?;
        self.settle_open(&reports, now).await?;
        self.store.revokes_delivered(&reports, now).await?;
        Ok(DispatchReport {
            sent: ids.len(),
            failed: 0,
        })
    }
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Settles the open revokes whose task the broker now shows finished (`reports` whose outcome
    /// [settles](ensinalab_ports::settles) them: a kill a worker confirmed after the cancel
    /// answered, a task that finished before its kill) and emits each as a `revoke` change with
    /// that outcome, once, whichever server sees it first.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub(super) async fn settle_open(
        &self,
        reports: &[RevokeReport],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if !reports.iter().any(|r| settles(r.outcome)) {
            return Ok(());
        }
        let settled = self.store.settle_revokes(reports, now).await?;
        for report in reports.iter().filter(|r| settled.contains(&r.task_id)) {
            self.emit_revoke(&report.task_id, report.outcome, now)
                .await?;
        }
        Ok(())
    }

    /// Emits a `revoke` change with `outcome` for the resource whose task is `task_id`, as the
    /// row is now; `false` when there is no such row.
    ///
    /// # Errors
    /// [`StoreError`] when the row cannot be read.
    pub(super) async fn emit_revoke(
        &self,
        task_id: &TaskId,
        outcome: RevokeOutcome,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(resource) = self.store.resource_for_task(task_id).await? else {
            return Ok(false);
        };
        let kind = ChangeKind::Revoke(RevokeStatus::Done(outcome));
        let Some(change) = self
            .change_of((resource.kind, resource.id), kind, now)
            .await?
        else {
            return Ok(false);
        };
        self.emit(&change);
        Ok(true)
    }
}

/// What one look for overdue revokes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OverdueReport {
    /// Reported undelivered by this call.
    pub undelivered: usize,
    /// Reported still running by this call.
    pub still_running: usize,
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Reports, once each, the cancels that could not be carried out within `grace`: a revoke
    /// still pending `grace` after its cancel, or delivered over `grace` ago while a live worker
    /// still runs its task (checked only when the broker can tell who runs what). Each is a
    /// `revoke_overdue` change on its owner's stream (and so an alert for the operators) and a
    /// warning in the logs.
    ///
    /// # Errors
    /// [`DispatchError`] when the store fails, or the broker does while asked who runs what.
    pub async fn report_overdue_revokes(
        &self,
        now: OffsetDateTime,
        grace: time::Duration,
        limit: u32,
    ) -> Result<OverdueReport, DispatchError> {
        let candidates = self.store.overdue_candidates(now - grace, limit).await?;
        if candidates.is_empty() {
            return Ok(OverdueReport::default());
        }
        let (undelivered, delivered): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|r| r.delivered_at.is_none());
        let mut overdue: Vec<(OwedRevoke, Overdue)> = undelivered
            .into_iter()
            .map(|r| (r, Overdue::Undelivered))
            .collect();
        if !delivered.is_empty()
            && let Some(running) = self.broker.running().await?
        {
            overdue.extend(
                delivered
                    .into_iter()
                    .filter(|r| running.contains(&r.task_id))
                    .map(|r| (r, Overdue::StillRunning)),
            );
        }
        let ids: Vec<TaskId> = overdue.iter().map(|(r, _)| r.task_id.clone()).collect();
        let marked = self.store.mark_overdue(&ids, now).await?;
        let mut report = OverdueReport::default();
        for (revoke, problem) in overdue.iter().filter(|(r, _)| marked.contains(&r.task_id)) {
            tracing::warn!(
                task_id = %revoke.task_id,
                resource_type = revoke.resource.0.as_str(),
                resource_id = self.log.0.name(revoke.resource.1).as_deref(),
                problem = problem.as_str(),
                "a cancel's revoke is overdue"
            );
            match problem {
                Overdue::Undelivered => report.undelivered += 1,
                Overdue::StillRunning => report.still_running += 1,
            }
            if let Some(change) = self
                .change_of(revoke.resource, ChangeKind::RevokeOverdue(*problem), now)
                .await?
            {
                self.emit(&change);
            }
        }
        Ok(report)
    }

    /// The change `kind` of the row `resource`, as the row is now; `None` if it is gone.
    async fn change_of(
        &self,
        (kind, id): (ResourceKind, i64),
        change: ChangeKind,
        now: OffsetDateTime,
    ) -> Result<Option<TaskChange>, StoreError> {
        Ok(match kind {
            ResourceKind::Briefing => self
                .store
                .briefing(BriefingId(id))
                .await?
                .map(|(row, _)| TaskChange::of(&row, change, now)),
            ResourceKind::Video => self
                .store
                .video(VideoId(id))
                .await?
                .map(|row| TaskChange::of(&row, change, now)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let table = [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (40, 30)];
        for (attempts, secs) in table {
            assert_eq!(
                retry_delay(attempts),
                time::Duration::seconds(secs),
                "{attempts}"
            );
        }
    }
}
