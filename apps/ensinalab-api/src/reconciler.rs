//! Keeps the database true to the broker while the server runs: every task id the broker
//! reports as changed is reconciled at once, and a periodic sweep catches whatever a lost
//! notification missed. Errors are logged; the loops never end the process.

use std::sync::Arc;
use std::time::Duration;

use ensinalab_domain::TaskId;
use ensinalab_ports::{Service, Store, TaskBroker};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

/// Rows read per sweep; the rest wait for the next tick.
pub const SWEEP_LIMIT: u32 = 500;

/// Starts both loops; they stop when the returned handles are aborted.
pub fn spawn<S, B>(
    service: Arc<Service<S, B>>,
    changes: Option<Receiver<TaskId>>,
    interval: Duration,
) -> Vec<JoinHandle<()>>
where
    S: Store + 'static,
    B: TaskBroker + 'static,
{
    let mut handles = Vec::with_capacity(2);
    if let Some(mut changes) = changes {
        let service = Arc::clone(&service);
        handles.push(tokio::spawn(async move {
            while let Some(task_id) = changes.recv().await {
                if let Err(err) = service.reconcile_task(&task_id).await {
                    tracing::warn!(error = %err, %task_id, "reconcile of a changed task failed");
                }
            }
            tracing::info!("broker change feed closed; the periodic sweep continues");
        }));
    }
    handles.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match service.reconcile_sweep(SWEEP_LIMIT).await {
                Ok(report) if report.updated > 0 => {
                    tracing::debug!(checked = report.checked, updated = report.updated, "sweep");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "reconcile sweep failed"),
            }
        }
    }));
    handles
}
