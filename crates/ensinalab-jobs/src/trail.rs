//! The security events of the HTTP layer (failed authentication, rate-limit refusals, refused
//! admin access): a structured log line at once, and a `security_events` row written by a
//! background handler through the `SecurityLog` port.
//!
//! The row is written off the request path on purpose: a flood of bad tokens must not hold a
//! database connection per request. The queue is bounded; when it is full the row is dropped
//! (the log line never is) and a warning says so.

use std::sync::Arc;

use ensinalab_app::Service;
use ensinalab_ports::{SecurityEvent, SecurityLog};
use tokio::sync::mpsc;

use crate::Handler;

/// Events waiting to be written; beyond this, rows are dropped (and counted in the log).
const QUEUE: usize = 1024;

/// Where handlers and middleware send security events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SecurityTrail {
    tx: mpsc::Sender<SecurityEvent>,
}

impl SecurityTrail {
    /// A trail and the queue its writer drains.
    pub fn channel() -> (Self, mpsc::Receiver<SecurityEvent>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, rx)
    }

    /// Logs the event and queues its row. Never blocks, never fails the request.
    pub fn record(&self, event: SecurityEvent) {
        event.log();
        if let Err(e) = self.tx.try_send(event) {
            tracing::warn!(target: "security", error = %e, "security trail queue full or closed; row dropped");
        }
    }
}

/// Writes each queued event through the store.
pub struct TrailWriter<S, B>(pub Arc<Service<S, B>>);

impl<S: SecurityLog + 'static, B: Send + Sync + 'static> Handler<SecurityEvent>
    for TrailWriter<S, B>
{
    async fn handle(&mut self, event: SecurityEvent) {
        if let Err(e) = self.0.store().record(&event).await {
            tracing::error!(target: "security", error = %e, event = event.event.as_str(), "security event not stored");
        }
    }
}
