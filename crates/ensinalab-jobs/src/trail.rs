//! The trail writer: the rows of the security events recorded off the request path (failed
//! authentication, rate-limit refusals, refused reads and admin access), written one at a
//! time from the queue `ensinalab_app::SecurityTrail` fills.

use std::sync::Arc;

use ensinalab_app::{RefusalGate, Service};
use ensinalab_ports::{SecurityEvent, SecurityLog};

use crate::Handler;

/// Writes each queued event through the service, which owns the rule of which get a row.
pub struct TrailWriter<S, B> {
    service: Arc<Service<S, B>>,
    gate: RefusalGate,
}

impl<S, B> TrailWriter<S, B> {
    pub fn new(service: Arc<Service<S, B>>) -> Self {
        Self {
            service,
            gate: RefusalGate::default(),
        }
    }
}

impl<S: SecurityLog + 'static, B: Send + Sync + 'static> Handler<SecurityEvent>
    for TrailWriter<S, B>
{
    async fn handle(&mut self, event: SecurityEvent) {
        self.service
            .write_security_event(&mut self.gate, event)
            .await;
    }
}
