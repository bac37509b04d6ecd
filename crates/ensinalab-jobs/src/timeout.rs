//! The automatic timeout's sweep: every pass cancels the running jobs past their limit
//! (`Service::cancel_expired`; the rule is the domain's `AutoCancel::cutoff`).

use std::ops::ControlFlow;
use std::sync::Arc;

use ensinalab_app::Service;
use ensinalab_ports::{Store, TaskBroker};
use time::OffsetDateTime;

use crate::Job;

/// The periodic sweep.
pub struct TimeoutSweep<S, B>(pub Arc<Service<S, B>>);

impl<S: Store + 'static, B: TaskBroker + 'static> Job for TimeoutSweep<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        match self.0.cancel_expired(OffsetDateTime::now_utc()).await {
            Ok(0) => {}
            Ok(cancelled) => tracing::info!(cancelled, "jobs past their time limit cancelled"),
            Err(err) => tracing::warn!(error = %err, "timeout sweep failed; the next pass retries"),
        }
        ControlFlow::Continue(())
    }
}
