//! The server's background work, in one room: every periodic or event-driven job runs here,
//! started, paced and stopped one way, never mixed into the routes.
//!
//! A [`Job`] is one pass of periodic work ([`Jobs::every`]); a [`Handler`] takes the items of a
//! feed one at a time ([`Jobs::on_each`]). [`Jobs::stop`] asks every job to end: a pass or an
//! item in progress is finished (up to a grace period), nothing new starts. Jobs log their
//! errors and go on; none ends the process.
//!
//! The jobs: the revoke [`dispatcher`], the [`unqueue`] of cancelled tasks' messages, the [`reconciler`] (a change feed and a periodic sweep),
//! the [`lost_workers`] rule, the automatic [`timeout`] sweep, the [`cleanup`] dispatcher and
//! orphan sweep, the [`alerts`] (overdue revokes, the operators' e-mail), the [`trail`] writer,
//! the trail's [`retention`] and the [`census`] of jobs in flight (the metrics' gauges). They
//! drive use cases of `ensinalab_app::Service`; the rules stay there and in the domain.

pub mod alerts;
pub mod census;
pub mod cleanup;
pub mod dispatcher;
pub mod lost_workers;
pub mod reconciler;
pub mod retention;
pub mod timeout;
pub mod trail;
pub mod unqueue;

use std::fmt::Debug;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::{Drains, Service};
use ensinalab_domain::TaskId;
use ensinalab_ports::{CensusSink, Mailer, Store, TaskBroker};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::alerts::{AlertMail, Mail, OverdueRevokes};
use crate::census::TakeCensus;
use crate::cleanup::{CleanupDispatch, OrphanSweep};
use crate::dispatcher::{Dispatcher, DispatcherSettings, OnWorkerOnline, Rebroadcasts};
use crate::lost_workers::LostWorkers;
use crate::reconciler::{OnTaskChanged, Sweep};
use crate::retention::TrailRetention;
use crate::timeout::TimeoutSweep;
use crate::trail::TrailWriter;
use crate::unqueue::Unqueue;

/// What feeds the event-driven jobs.
pub struct Feeds<W, M> {
    /// Task ids the broker reports as changed, when it can tell.
    pub task_changes: Option<mpsc::Receiver<TaskId>>,
    /// Workers coming online, when the broker can tell.
    pub workers_online: Option<mpsc::Receiver<W>>,
    /// What the service owes its jobs ([`ensinalab_app::Service::new`]).
    pub drains: Drains,
    /// The operators' e-mail, when the deployment has one: its queue must be one of the
    /// service's sinks.
    pub mail: Option<Mail<M>>,
    /// Where the census of jobs in flight goes (the metrics), when the server exports metrics.
    pub census: Option<Arc<dyn CensusSink>>,
}

/// How often the periodic jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// The reconciler's sweep and the lost-worker check.
    pub reconcile_every: Duration,
    pub dispatcher: DispatcherSettings,
    /// How much of the security trail is kept.
    pub trail_retention: Duration,
    /// How often the automatic timeout sweeps (when the service has one).
    pub timeout_sweep_every: Duration,
    /// How often the workers are asked to delete orphaned partial files; `None`: never.
    pub orphan_sweep_every: Option<Duration>,
    /// How long after its cancel (or its delivery) a revoke is overdue.
    pub revoke_grace: Duration,
    /// How often the census of jobs in flight is taken (when there is a census sink).
    pub census_every: Duration,
}

/// Starts every background job of the server over `service`. Must be called inside a tokio
/// runtime.
pub fn start<S, B, W, M>(service: Arc<Service<S, B>>, feeds: Feeds<W, M>, pacing: Pacing) -> Jobs
where
    S: Store + 'static,
    B: TaskBroker + 'static,
    W: Debug + Send + 'static,
    M: Mailer + 'static,
{
    let mut jobs = Jobs::new();
    if let Some(changes) = feeds.task_changes {
        jobs.on_each(
            "reconcile changed tasks",
            changes,
            OnTaskChanged(Arc::clone(&service)),
        );
    }
    jobs.every(
        "reconcile sweep",
        pacing.reconcile_every,
        Sweep(Arc::clone(&service)),
    );
    jobs.every(
        "lost workers",
        pacing.reconcile_every,
        LostWorkers::new(Arc::clone(&service)),
    );
    let soon = Rebroadcasts::default();
    if let Some(online) = feeds.workers_online {
        jobs.on_each("workers online", online, OnWorkerOnline(soon.clone()));
    }
    let Drains {
        deliveries,
        cleanups,
        trail,
    } = feeds.drains;
    jobs.on_each(
        "security trail",
        trail,
        TrailWriter::new(Arc::clone(&service)),
    );
    if service.settings().auto_cancel.is_some() {
        jobs.every(
            "timeout sweep",
            pacing.timeout_sweep_every,
            TimeoutSweep(Arc::clone(&service)),
        );
    }
    jobs.every(
        "cleanup dispatcher",
        pacing.dispatcher.tick,
        CleanupDispatch(Arc::clone(&service), cleanups),
    );
    if let Some(every) = pacing.orphan_sweep_every {
        jobs.every("orphan sweep", every, OrphanSweep(Arc::clone(&service)));
    }
    jobs.every(
        "overdue revokes",
        alerts::CHECK_EVERY,
        OverdueRevokes::new(Arc::clone(&service), pacing.revoke_grace),
    );
    if let Some(mail) = feeds.mail {
        jobs.every(
            "alert e-mail",
            alerts::CHECK_EVERY,
            AlertMail::new(Arc::clone(&service), mail),
        );
    }
    if let Some(sink) = feeds.census {
        jobs.every(
            "census",
            pacing.census_every,
            TakeCensus::new(Arc::clone(&service), sink),
        );
    }
    jobs.every(
        "security trail retention",
        retention::PRUNE_EVERY,
        TrailRetention::new(Arc::clone(&service), pacing.trail_retention),
    );
    jobs.every(
        "unqueue",
        unqueue::IDLE_CHECK_EVERY,
        Unqueue(Arc::clone(&service)),
    );
    jobs.every(
        "revoke dispatcher",
        pacing.dispatcher.tick,
        Dispatcher::new(service, deliveries, pacing.dispatcher, soon),
    );
    jobs
}

/// Periodic work: one pass per call.
pub trait Job: Send + 'static {
    /// One pass. `Break` ends the job for good (e.g. a check the broker cannot support).
    fn run(&mut self) -> impl Future<Output = ControlFlow<()>> + Send;
}

/// Event-driven work: one item of a feed per call.
pub trait Handler<T>: Send + 'static {
    fn handle(&mut self, item: T) -> impl Future<Output = ()> + Send;
}

/// The running jobs.
#[derive(Debug)]
pub struct Jobs {
    stop: watch::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

impl Jobs {
    /// No jobs yet. Must be used inside a tokio runtime.
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            running: Vec::new(),
        }
    }

    /// Runs `job` every `period` (the first pass at once; a late pass delays the next, never
    /// doubles it) until it breaks or the jobs stop.
    pub fn every<J: Job>(&mut self, name: &'static str, period: Duration, mut job: J) {
        let mut stop = self.stop.subscribe();
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => break,
                    _ = tick.tick() => {
                        if job.run().await.is_break() {
                            tracing::info!(job = name, "job ended");
                            break;
                        }
                    }
                }
            }
        });
        self.running.push((name, handle));
    }

    /// Runs `handler` on each item of `feed` until the feed closes or the jobs stop.
    pub fn on_each<T, H>(&mut self, name: &'static str, mut feed: mpsc::Receiver<T>, mut handler: H)
    where
        T: Send + 'static,
        H: Handler<T>,
    {
        let mut stop = self.stop.subscribe();
        let handle = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => break,
                    item = feed.recv() => match item {
                        Some(item) => handler.handle(item).await,
                        None => {
                            tracing::info!(job = name, "feed closed");
                            break;
                        }
                    }
                }
            }
        });
        self.running.push((name, handle));
    }

    /// The names of the jobs started, in order (for logs and tests).
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every job: each finishes what it is doing, for up to `grace` in all; what is still
    /// running then is aborted.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut handle) in self.running {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(job = name, "job still busy after the grace period; aborted");
                handle.abort();
            }
        }
    }
}

/// Resolves once the jobs are asked to stop (or the runner is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its passes (or adds up its items); breaks at pass `.1`, saying so on `.2`.
    struct Count(Arc<AtomicUsize>, usize, Option<mpsc::Sender<()>>);

    impl Job for Count {
        async fn run(&mut self) -> ControlFlow<()> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            if n < self.1 {
                return ControlFlow::Continue(());
            }
            if let Some(done) = &self.2 {
                let _ = done.send(()).await;
            }
            ControlFlow::Break(())
        }
    }

    impl Handler<usize> for Count {
        async fn handle(&mut self, item: usize) {
            self.0.fetch_add(item, Ordering::SeqCst);
            if let Some(done) = &self.2 {
                let _ = done.send(()).await;
            }
        }
    }

    #[tokio::test]
    async fn a_periodic_job_runs_until_it_breaks_and_never_after() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (done, mut broke) = mpsc::channel(1);
        let mut jobs = Jobs::new();
        jobs.every(
            "count",
            Duration::from_millis(1),
            Count(runs.clone(), 3, Some(done)),
        );
        broke.recv().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        jobs.stop(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn after_stop_no_pass_runs_and_no_item_is_taken() {
        let runs = Arc::new(AtomicUsize::new(0));
        let items = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel(4);
        let (handled, mut seen) = mpsc::channel(1);
        let mut jobs = Jobs::new();
        jobs.every(
            "count",
            Duration::from_millis(1),
            Count(runs.clone(), usize::MAX, None),
        );
        jobs.on_each("items", rx, Count(items.clone(), 0, Some(handled)));
        tx.send(5).await.unwrap();
        seen.recv().await.unwrap();
        assert_eq!(items.load(Ordering::SeqCst), 5);
        assert_eq!(jobs.names(), ["count", "items"]);
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        jobs.stop(Duration::from_secs(1)).await;
        let after_stop = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(runs.load(Ordering::SeqCst), after_stop);
        assert!(tx.send(1).await.is_err(), "the feed's handler is gone");
    }
}
