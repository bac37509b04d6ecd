//! The fake's revoke outbox ([`RevokeOutbox`]).

use ensinalab_domain::{ResourceKind, TaskId};
use time::OffsetDateTime;

use super::*;
use ensinalab_ports::{
    FIRST_ATTEMPT_GRACE, OwedRevoke, RevokeOutbox, RevokeOutcome, RevokeReport, StoreError, settles,
};

/// One row of the fake's revoke outbox.
#[derive(Debug, Clone)]
pub(super) struct OutboxRow {
    pub(super) owed: OwedRevoke,
    pub(super) next_attempt_at: OffsetDateTime,
    pub(super) last_broadcast_at: Option<OffsetDateTime>,
    /// The first delivery's outcome, or the one that settled it later.
    pub(super) outcome: Option<RevokeOutcome>,
    pub(super) settled: bool,
    pub(super) overdue_at: Option<OffsetDateTime>,
}

/// The outbox half of a cancel's transaction (the fake's mutex makes it atomic).
pub(super) fn owe_revoke(t: &mut Tables, task_id: Option<&TaskId>, resource: (ResourceKind, i64)) {
    let Some(task_id) = task_id else { return };
    if t.outbox.iter().any(|r| &r.owed.task_id == task_id) {
        return;
    }
    let now = OffsetDateTime::now_utc();
    t.outbox.push(OutboxRow {
        owed: OwedRevoke {
            task_id: task_id.clone(),
            resource,
            created_at: now,
            attempts: 0,
            delivered_at: None,
        },
        next_attempt_at: now + FIRST_ATTEMPT_GRACE,
        last_broadcast_at: None,
        outcome: None,
        settled: false,
        overdue_at: None,
    });
}

impl InMemoryStore {
    /// The revoke outbox: every owed revoke with whether it is settled.
    pub fn owed_revokes(&self) -> Vec<(OwedRevoke, bool)> {
        self.with(|t| {
            t.outbox
                .iter()
                .map(|r| (r.owed.clone(), r.settled))
                .collect()
        })
        .unwrap_or_default()
    }
}

impl RevokeOutbox for InMemoryStore {
    async fn due_revokes(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        self.with(|t| {
            t.outbox
                .iter()
                .filter(|r| r.owed.delivered_at.is_none() && r.next_attempt_at <= now)
                .take(limit as usize)
                .map(|r| r.owed.clone())
                .collect()
        })
    }

    async fn revokes_delivered(
        &self,
        reports: &[RevokeReport],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            for report in reports {
                if let Some(r) = t
                    .outbox
                    .iter_mut()
                    .find(|r| r.owed.task_id == report.task_id)
                {
                    if r.owed.delivered_at.is_none() {
                        r.outcome = Some(report.outcome);
                    }
                    r.owed.delivered_at.get_or_insert(now);
                    r.last_broadcast_at = Some(now);
                    r.settled |= settles(report.outcome);
                }
            }
        })
    }

    async fn settle_revokes(
        &self,
        reports: &[RevokeReport],
        _now: OffsetDateTime,
    ) -> Result<Vec<TaskId>, StoreError> {
        self.with(|t| {
            let mut settled = Vec::new();
            for report in reports.iter().filter(|r| settles(r.outcome)) {
                if let Some(r) = t.outbox.iter_mut().find(|r| {
                    r.owed.task_id == report.task_id && !r.settled && r.owed.delivered_at.is_some()
                }) {
                    r.settled = true;
                    r.outcome = Some(report.outcome);
                    settled.push(report.task_id.clone());
                }
            }
            settled
        })
    }

    async fn revokes_failed(
        &self,
        ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            for r in t
                .outbox
                .iter_mut()
                .filter(|r| ids.contains(&r.owed.task_id))
            {
                r.owed.attempts += 1;
                r.next_attempt_at = retry_at;
            }
        })
    }

    async fn open_revokes(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        self.with(|t| {
            let mut open: Vec<&OutboxRow> = t
                .outbox
                .iter()
                .filter(|r| r.owed.delivered_at.is_some() && !r.settled)
                .filter(|r| r.owed.created_at >= since)
                .collect();
            open.sort_by_key(|r| r.last_broadcast_at);
            open.into_iter()
                .take(limit as usize)
                .map(|r| r.owed.clone())
                .collect()
        })
    }

    async fn overdue_candidates(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        self.with(|t| {
            t.outbox
                .iter()
                .filter(|r| !r.settled && r.overdue_at.is_none())
                .filter(|r| match r.owed.delivered_at {
                    None => r.owed.created_at < before,
                    Some(at) => at < before,
                })
                .take(limit as usize)
                .map(|r| r.owed.clone())
                .collect()
        })
    }

    async fn mark_overdue(
        &self,
        ids: &[TaskId],
        now: OffsetDateTime,
    ) -> Result<Vec<TaskId>, StoreError> {
        self.with(|t| {
            let mut marked = Vec::new();
            for r in t.outbox.iter_mut() {
                if ids.contains(&r.owed.task_id) && r.overdue_at.is_none() {
                    r.overdue_at = Some(now);
                    marked.push(r.owed.task_id.clone());
                }
            }
            marked
        })
    }
}
