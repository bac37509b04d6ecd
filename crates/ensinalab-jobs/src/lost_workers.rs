//! The lost-worker check (the rule: `ensinalab_ports`' `orphaned_tasks` and `fail_lost`): on
//! every pass, the tasks the backend shows running that no live worker executes are noted; one
//! that stays so on every pass for the domain's `lost_worker_grace` has lost its worker (a
//! worker killed whole never reports again), and its row is marked failed. A task seen running again,
//! or gone from flight, is forgotten. A broker that cannot tell who runs what (the in-process
//! one) ends the job.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::Service;
use ensinalab_domain::{TaskId, lost_worker_grace};
use ensinalab_ports::{Store, TaskBroker};
use tokio::time::Instant;

use crate::Job;
use crate::reconciler::SWEEP_LIMIT;

/// The periodic check, with its memory of when each task was first seen without a worker.
pub struct LostWorkers<S, B> {
    service: Arc<Service<S, B>>,
    grace: Duration,
    missing_since: HashMap<TaskId, Instant>,
}

impl<S, B> LostWorkers<S, B> {
    pub fn new(service: Arc<Service<S, B>>) -> Self {
        let grace = lost_worker_grace(service.settings().task_time_limit_secs);
        Self {
            service,
            grace,
            missing_since: HashMap::new(),
        }
    }
}

impl<S: Store + 'static, B: TaskBroker + 'static> Job for LostWorkers<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        let orphans = match self.service.orphaned_tasks(SWEEP_LIMIT).await {
            Ok(Some(orphans)) => orphans,
            Ok(None) => return ControlFlow::Break(()),
            Err(err) => {
                // Cannot tell now: no evidence either way, keep what was noted.
                tracing::debug!(error = %err, "lost-worker check skipped");
                return ControlFlow::Continue(());
            }
        };
        let now = Instant::now();
        self.missing_since
            .retain(|id, _| orphans.iter().any(|o| &o.task_id == id));
        for row in orphans {
            let since = *self.missing_since.entry(row.task_id.clone()).or_insert(now);
            if now.duration_since(since) < self.grace {
                continue;
            }
            match self.service.fail_lost(&row).await {
                Ok(changed) => {
                    if changed {
                        tracing::warn!(task_id = %row.task_id, "worker lost: task marked failed");
                    }
                    self.missing_since.remove(&row.task_id);
                }
                Err(err) => tracing::warn!(error = %err, "could not mark a lost task"),
            }
        }
        ControlFlow::Continue(())
    }
}
