//! The HTTP layer's own security events (failed authentication, rate-limit refusals, refused
//! admin access): a structured log line at once, and a `security_events` row written by a
//! background task through the `SecurityLog` port.
//!
//! The row is written off the request path on purpose: a flood of bad tokens must not hold a
//! database connection per request. The queue is bounded; when it is full the row is dropped
//! (the log line never is) and a warning says so.

use std::sync::Arc;

use ensinalab_ports::{SecurityEvent, SecurityLog, Service};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Events waiting to be written; beyond this, rows are dropped (and counted in the log).
const QUEUE: usize = 1024;

/// Where handlers and middleware send security events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SecurityTrail {
    tx: mpsc::Sender<SecurityEvent>,
}

impl SecurityTrail {
    /// A trail and the receiving end its writer drains.
    pub fn channel() -> (Self, mpsc::Receiver<SecurityEvent>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, rx)
    }

    /// Logs the event and queues its row. Never blocks, never fails the request.
    pub fn record(&self, event: SecurityEvent) {
        tracing::warn!(
            target: "security",
            event = %event.event,
            outcome = %event.outcome,
            user_id = event.user_id.map(|u| u.get()),
            client_ip = event.client_ip.as_deref().unwrap_or("-"),
            details = %event.details,
            "security event"
        );
        if let Err(e) = self.tx.try_send(event) {
            tracing::warn!(target: "security", error = %e, "security trail queue full or closed; row dropped");
        }
    }
}

/// Writes queued events through the store until the channel closes.
pub fn spawn_writer<S, B>(
    service: Arc<Service<S, B>>,
    mut rx: mpsc::Receiver<SecurityEvent>,
) -> JoinHandle<()>
where
    S: SecurityLog + 'static,
    B: Send + Sync + 'static,
{
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let Err(e) = service.store().record(&event).await {
                tracing::error!(target: "security", error = %e, event = %event.event, "security event not stored");
            }
        }
    })
}
