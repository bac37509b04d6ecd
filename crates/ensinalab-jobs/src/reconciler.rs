//! Keeps the database true to the broker while the server runs: every task id the broker
//! reports as changed is reconciled at once, and a periodic sweep catches whatever a lost
//! notification missed.

use std::ops::ControlFlow;
use std::sync::Arc;

use ensinalab_app::Service;
use ensinalab_domain::TaskId;
use ensinalab_ports::{Store, TaskBroker};

use crate::{Handler, Job};

/// Rows read per sweep; the rest wait for the next one.
pub const SWEEP_LIMIT: u32 = 500;

/// Reconciles each task the broker reports as changed.
pub struct OnTaskChanged<S, B>(pub Arc<Service<S, B>>);

impl<S: Store + 'static, B: TaskBroker + 'static> Handler<TaskId> for OnTaskChanged<S, B> {
    async fn handle(&mut self, task_id: TaskId) {
        if let Err(err) = self.0.reconcile_task(&task_id).await {
            tracing::warn!(error = %err, %task_id, "reconcile of a changed task failed");
        }
    }
}

/// The safety-net sweep over every task in flight.
pub struct Sweep<S, B>(pub Arc<Service<S, B>>);

impl<S: Store + 'static, B: TaskBroker + 'static> Job for Sweep<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        match self.0.reconcile_sweep(SWEEP_LIMIT).await {
            Ok(report) if report.updated > 0 => {
                tracing::debug!(checked = report.checked, updated = report.updated, "sweep");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "reconcile sweep failed"),
        }
        ControlFlow::Continue(())
    }
}
