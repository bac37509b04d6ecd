//! The revoke dispatcher: pays the revokes cancels owe (the `revoke_outbox`).
//!
//! A cancel commits its status change and the revoke it owes together, then tries the revoke
//! once. This loop does the rest, while the server runs:
//! - **marking**: a revoke the cancel delivered itself is marked in the outbox here, at the
//!   next tick, not before the cancel answers (for a cancel-all of 1,000 tasks that write took
//!   about a third of the response time);
//! - **delivery**: revokes still pending (the broker was down at cancel time) are sent as soon
//!   as they are due, in batches of one broker call; a failure pushes each one back with
//!   exponential backoff (1 s .. 30 s), so a Redis outage costs one cheap query per tick;
//! - **re-broadcast**: Celery workers remember revokes in memory only and a broadcast nobody
//!   heard is lost, so delivered revokes that are not settled (the broker does not yet show the
//!   task finished or out of the queue) are sent again every [`DispatcherSettings::rebroadcast_every`],
//!   for at most [`DispatcherSettings::bound`] after the cancel, and at once (then again 1 s and
//!   3 s later) when a worker comes online, since it knows none of them.
//!
//! Errors are logged; the loop never ends the process.

use std::sync::Arc;
use std::time::Duration;

use ensinalab_celery::WorkerOnline;
use ensinalab_ports::{Service, Store, TaskBroker};
use time::OffsetDateTime;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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

/// Starts the loop; it stops when the handle is aborted.
pub fn spawn<S, B>(
    service: Arc<Service<S, B>>,
    mut online: Option<Receiver<WorkerOnline>>,
    settings: DispatcherSettings,
) -> JoinHandle<()>
where
    S: Store + 'static,
    B: TaskBroker + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_rebroadcast = Instant::now() + settings.rebroadcast_every;
        let mut soon: Vec<Instant> = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                event = next(&mut online) => match event {
                    Some(event) => {
                        tracing::info!(?event, "worker online: open revokes will be broadcast again");
                        let now = Instant::now();
                        soon.extend(AFTER_ONLINE.iter().map(|d| now + *d));
                    }
                    None => online = None,
                }
            }
            if let Err(err) = service.record_deliveries().await {
                tracing::warn!(error = %err, "revokes delivered by cancels not marked; they will be delivered again");
            }
            deliver(&service, settings).await;
            let now = Instant::now();
            let due_soon = soon.iter().any(|t| *t <= now);
            if due_soon || now >= next_rebroadcast {
                soon.retain(|t| *t > now);
                next_rebroadcast = now + settings.rebroadcast_every;
                rebroadcast(&service, settings).await;
            }
        }
    })
}

/// The next event of an optional feed; never resolves without one.
async fn next<T>(feed: &mut Option<Receiver<T>>) -> Option<T> {
    match feed {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn deliver<S: Store, B: TaskBroker>(service: &Service<S, B>, settings: DispatcherSettings) {
    // A full batch means more may be due: go on, within reason, before the next tick.
    for _ in 0..10 {
        match service
            .deliver_revokes(OffsetDateTime::now_utc(), settings.batch)
            .await
        {
            Ok(report) if report.sent == settings.batch as usize => continue,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(error = %err, "pending revokes not delivered; retrying with backoff");
                return;
            }
        }
    }
}

async fn rebroadcast<S: Store, B: TaskBroker>(
    service: &Service<S, B>,
    settings: DispatcherSettings,
) {
    let now = OffsetDateTime::now_utc();
    let since = now - settings.bound;
    match service
        .rebroadcast_revokes(now, since, settings.batch)
        .await
    {
        Ok(report) if report.sent > 0 => {
            tracing::debug!(revokes = report.sent, "open revokes broadcast again");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "re-broadcast of open revokes failed"),
    }
}
