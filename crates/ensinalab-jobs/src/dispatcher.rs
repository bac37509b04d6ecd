//! The revoke dispatcher: pays the revokes cancels owe (the revoke outbox).
//!
//! A cancel commits its status change and the revoke it owes together, then tries the revoke
//! once. This job does the rest, while the server runs:
//! - **marking**: a revoke the cancel delivered itself is marked in the outbox here, at the
//!   next pass, not before the cancel answers;
//! - **delivery**: revokes still pending (the broker was down at cancel time) are sent as soon
//!   as they are due, in batches of one broker call; a failure pushes each one back with
//!   exponential backoff (1 s .. 30 s), so a broker outage costs one cheap query per pass;
//! - **re-broadcast**: Celery workers remember revokes in memory only and a broadcast nobody
//!   heard is lost, so delivered revokes that are not settled (the broker does not yet show the
//!   task finished or out of the queue) are sent again every
//!   [`DispatcherSettings::rebroadcast_every`], for at most [`DispatcherSettings::bound`] after
//!   the cancel, and soon after a worker comes online (then again 1 s and 3 s later), since it
//!   knows none of them.

use std::fmt::Debug;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ensinalab_app::{Delivery, Drain, Service};
use ensinalab_ports::{Store, TaskBroker};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::{Handler, Job};

/// How the dispatcher paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatcherSettings {
    /// How often pending revokes are looked for.
    pub tick: Duration,
    /// How often open revokes are broadcast again.
    pub rebroadcast_every: Duration,
    /// How long after a cancel its revoke may still be broadcast again (a worker's own memory
    /// of revokes lasts 3 h by default; a queued task older than a day is not expected).
    pub bound: Duration,
    /// Revokes per broker call.
    pub batch: u32,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(500),
            rebroadcast_every: Duration::from_secs(10),
            bound: Duration::from_secs(24 * 3600),
            batch: 500,
        }
    }
}

/// After a worker comes online, when to broadcast again: it announces itself before its pidbox
/// subscription is surely live, so once at once and twice more shortly after.
const AFTER_ONLINE: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// When re-broadcasts are due besides the regular ones; shared by the dispatcher and the
/// worker-online handler.
#[derive(Debug, Clone, Default)]
pub struct Rebroadcasts(Arc<Mutex<Vec<Instant>>>);

impl Rebroadcasts {
    fn schedule(&self, at: impl IntoIterator<Item = Instant>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(at);
    }

    /// Whether one is due at `now`; the due ones are forgotten.
    fn take_due(&self, now: Instant) -> bool {
        let mut soon = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let due = soon.iter().any(|t| *t <= now);
        soon.retain(|t| *t > now);
        due
    }
}

/// The periodic pass: marking, delivery, re-broadcast when due.
pub struct Dispatcher<S, B> {
    service: Arc<Service<S, B>>,
    delivered: Drain<Delivery>,
    settings: DispatcherSettings,
    soon: Rebroadcasts,
    next_rebroadcast: Instant,
}

impl<S, B> Dispatcher<S, B> {
    pub fn new(
        service: Arc<Service<S, B>>,
        delivered: Drain<Delivery>,
        settings: DispatcherSettings,
        soon: Rebroadcasts,
    ) -> Self {
        Self {
            service,
            delivered,
            next_rebroadcast: Instant::now() + settings.rebroadcast_every,
            settings,
            soon,
        }
    }
}

impl<S: Store + 'static, B: TaskBroker + 'static> Job for Dispatcher<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        if let Err(err) = self.service.record_deliveries(&mut self.delivered).await {
            tracing::warn!(error = %err, "revokes delivered by cancels not marked; they will be delivered again");
        }
        self.deliver().await;
        let now = Instant::now();
        if self.soon.take_due(now) || now >= self.next_rebroadcast {
            self.next_rebroadcast = now + self.settings.rebroadcast_every;
            self.rebroadcast().await;
        }
        ControlFlow::Continue(())
    }
}

impl<S: Store, B: TaskBroker> Dispatcher<S, B> {
    async fn deliver(&self) {
        // A full batch means more may be due: go on, within reason, before the next pass.
        for _ in 0..10 {
            match self
                .service
                .deliver_revokes(OffsetDateTime::now_utc(), self.settings.batch)
                .await
            {
                Ok(report) if report.sent == self.settings.batch as usize => continue,
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "pending revokes not delivered; retrying with backoff");
                    return;
                }
            }
        }
    }

    async fn rebroadcast(&self) {
        let now = OffsetDateTime::now_utc();
        let since = now - self.settings.bound;
        match self
            .service
            .rebroadcast_revokes(now, since, self.settings.batch)
            .await
        {
            Ok(report) if report.sent > 0 => {
                tracing::debug!(revokes = report.sent, "open revokes broadcast again");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "re-broadcast of open revokes failed"),
        }
    }
}

/// Schedules the re-broadcasts that follow a worker coming online.
pub struct OnWorkerOnline(pub Rebroadcasts);

impl<T: Debug + Send + 'static> Handler<T> for OnWorkerOnline {
    async fn handle(&mut self, event: T) {
        tracing::info!(
            ?event,
            "worker online: open revokes will be broadcast again"
        );
        let now = Instant::now();
        self.0.schedule(AFTER_ONLINE.iter().map(|d| now + *d));
    }
}
