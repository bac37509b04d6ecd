//! The fake's cleanup outbox ([`CleanupOutbox`]).

use ensinalab_domain::TaskId;
use time::OffsetDateTime;

use super::*;
use ensinalab_ports::{CleanupOutbox, OwedCleanup, StoreError};

impl InMemoryStore {
    /// The cleanup outbox: every cleanup owed and not sent yet.
    pub fn owed_cleanups(&self) -> Vec<OwedCleanup> {
        self.with(|t| t.cleanups.iter().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default()
    }
}

impl CleanupOutbox for InMemoryStore {
    async fn owe_cleanups(&self, cleanups: &[OwedCleanup]) -> Result<(), StoreError> {
        self.with(|t| {
            for cleanup in cleanups {
                match t
                    .cleanups
                    .iter_mut()
                    .find(|(c, _)| c.task_id == cleanup.task_id)
                {
                    Some((kept, _)) if cleanup.reason.supersedes() => {
                        kept.reason = cleanup.reason;
                    }
                    Some(_) => {}
                    None => t.cleanups.push((cleanup.clone(), cleanup.created_at)),
                }
            }
        })
    }

    async fn due_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedCleanup>, StoreError> {
        self.with(|t| {
            let never_started = |task: &TaskId| {
                t.outbox.iter().any(|r| {
                    &r.owed.task_id == task && r.outcome.is_some_and(|o| !o.may_have_started())
                })
            };
            let outbox = &t.outbox;
            t.cleanups
                .retain(|(c, _)| !(c.reason.waits_for_revoke() && never_started(&c.task_id)));
            let killed = |task: &TaskId| {
                outbox
                    .iter()
                    .any(|r| &r.owed.task_id == task && r.owed.delivered_at.is_some())
            };
            t.cleanups
                .iter()
                .filter(|(c, next)| {
                    *next <= now && (!c.reason.waits_for_revoke() || killed(&c.task_id))
                })
                .take(limit as usize)
                .map(|(c, _)| c.clone())
                .collect()
        })
    }

    async fn cleanups_sent(&self, ids: &[TaskId]) -> Result<(), StoreError> {
        self.with(|t| t.cleanups.retain(|(c, _)| !ids.contains(&c.task_id)))
    }

    async fn cleanups_failed(
        &self,
        ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            for (c, next) in t
                .cleanups
                .iter_mut()
                .filter(|(c, _)| ids.contains(&c.task_id))
            {
                c.attempts += 1;
                *next = retry_at;
            }
        })
    }
}
