//! Cleaning up after jobs: the cleanup dispatcher records the cleanups the change stream owes
//! and sends the due ones to the workers (`Service::record_cleanups`,
//! `Service::dispatch_cleanups`); the orphan sweep asks the workers, now and then, to delete
//! the partial directories of every task no longer in flight (`Service::sweep_orphans`).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::{Drain, Service};
use ensinalab_ports::{OwedCleanup, Store, TaskBroker};
use time::OffsetDateTime;

use crate::Job;

/// Cleanups per pass before the dispatcher yields to the next tick.
const BATCH: u32 = 500;

/// How long a partial directory no job in flight claims is left alone: a job dispatched after
/// the sweep read the jobs in flight, or a worker clock somewhat behind ours, keeps its files.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// The periodic pass of the cleanup dispatcher, with the drain of the cleanups the change
/// stream owes.
pub struct CleanupDispatch<S, B>(pub Arc<Service<S, B>>, pub Drain<OwedCleanup>);

impl<S: Store + 'static, B: TaskBroker + 'static> Job for CleanupDispatch<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        if let Err(err) = self.0.record_cleanups(&mut self.1).await {
            tracing::warn!(error = %err, "owed cleanups not recorded; kept for the next pass");
        }
        // A full batch means more may be due: go on, within reason, before the next pass.
        for _ in 0..10 {
            match self
                .0
                .dispatch_cleanups(OffsetDateTime::now_utc(), BATCH)
                .await
            {
                Ok(report) if report.sent == BATCH as usize => continue,
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "cleanups not dispatched; retrying with backoff");
                    break;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The periodic orphan sweep.
pub struct OrphanSweep<S, B>(pub Arc<Service<S, B>>);

impl<S: Store + 'static, B: TaskBroker + 'static> Job for OrphanSweep<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        let grace = time::Duration::try_from(ORPHAN_GRACE).unwrap_or(time::Duration::MINUTE);
        match self.0.sweep_orphans(OffsetDateTime::now_utc(), grace).await {
            Ok(Some(spared)) => tracing::info!(spared, "orphan sweep dispatched"),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "orphan sweep not dispatched; the next pass retries")
            }
        }
        ControlFlow::Continue(())
    }
}
