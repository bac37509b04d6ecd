//! The lost-worker check (see `ensinalab_ports`' `orphaned_tasks`): every `interval`, the tasks
//! the backend shows running that no live worker executes are noted; one that stays so on every
//! check for twice the task time limit has lost its worker (a worker killed whole never reports
//! again), and its row is marked failed. A task seen running again, or gone from flight, is
//! forgotten. Brokers that cannot tell who runs what (the in-process one) skip the check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_domain::TaskId;
use ensinalab_ports::{Service, Store, TaskBroker};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::reconciler::SWEEP_LIMIT;

/// Starts the loop; it stops when the handle is aborted.
pub fn spawn<S, B>(service: Arc<Service<S, B>>, interval: Duration) -> JoinHandle<()>
where
    S: Store + 'static,
    B: TaskBroker + 'static,
{
    tokio::spawn(async move {
        // Twice the time limit: a task is first flagged `is_stuck` (past the limit since its
        // row was created) and stays cancellable for a while before the rule fails it.
        let grace = Duration::from_secs(service.config().task_time_limit_secs.max(1) * 2);
        let mut missing_since: HashMap<TaskId, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let orphans = match service.orphaned_tasks(SWEEP_LIMIT).await {
                Ok(Some(orphans)) => orphans,
                Ok(None) => return,
                Err(err) => {
                    // Cannot tell now: no evidence either way, keep what was noted.
                    tracing::debug!(error = %err, "lost-worker check skipped");
                    continue;
                }
            };
            let now = Instant::now();
            missing_since.retain(|id, _| orphans.iter().any(|o| &o.task_id == id));
            for row in orphans {
                let since = *missing_since.entry(row.task_id.clone()).or_insert(now);
                if now.duration_since(since) < grace {
                    continue;
                }
                match service.fail_lost(&row).await {
                    Ok(changed) => {
                        if changed {
                            tracing::warn!(task_id = %row.task_id, "worker lost: task marked failed");
                        }
                        missing_since.remove(&row.task_id);
                    }
                    Err(err) => tracing::warn!(error = %err, "could not mark a lost task"),
                }
            }
        }
    })
}
