//! The use cases' side of the security trail: every event a use case writes is also one log
//! line, and a row written after the work it records (a failure to write the row is logged,
//! never turned into a failure of work already committed).
//!
//! Refused reads, and refused admin access, are bounded: one row per caller and outcome per
//! [`REFUSAL_WINDOW`] (every refusal is still a log line), so a scan of ids or a loop on an
//! admin route cannot flood the table. Refused cancels keep
//! a row each: the cancel quota already bounds them, and each names the resource attempted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ensinalab_domain::{ResourceKind, TaskId, UserId};
use ensinalab_ports::{Caller, EventOutcome, SecurityEvent, SecurityEventKind, SecurityLog};
use serde_json::json;
use tokio::sync::mpsc;

use crate::Service;

/// How long one refused-read (or refused admin) row stands for the caller's later refusals with
/// the same outcome.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// Past this many remembered callers, expired entries are dropped before a new one is added.
const GATE_SWEEP_AT: usize = 10_000;
/// Events waiting to be written; beyond this, rows are dropped (the log line never is).
const TRAIL_QUEUE: usize = 1024;

/// Where the HTTP layer and the use cases send the security events whose row is written off
/// the request path: a flood of bad tokens or of refused reads must not hold a database
/// connection per request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SecurityTrail {
    tx: mpsc::Sender<SecurityEvent>,
}

/// The events a [`SecurityTrail`] queued, for the trail writer.
pub type TrailQueue = mpsc::Receiver<SecurityEvent>;

impl SecurityTrail {
    /// A trail and the queue its writer drains.
    pub fn channel() -> (Self, TrailQueue) {
        let (tx, rx) = mpsc::channel(TRAIL_QUEUE);
        (Self { tx }, rx)
    }

    /// Logs the event and queues its row. Never blocks, never fails the request.
    pub fn record(&self, event: SecurityEvent) {
        event.log();
        self.queue(event);
    }

    /// Queues the row of an event already logged.
    fn queue(&self, event: SecurityEvent) {
        if let Err(e) = self.tx.try_send(event) {
            tracing::warn!(target: "security", error = %e, "security trail queue full or closed; row dropped");
        }
    }
}

/// Which refused reads and refused admin accesses already have their row in the current
/// window. The trail writer owns one.
#[derive(Debug, Default)]
pub struct RefusalGate {
    seen: HashMap<(UserId, SecurityEventKind, EventOutcome), Instant>,
}

impl RefusalGate {
    /// Whether `event`, at `now`, gets a row: always, unless it is a refused read or refused
    /// admin access whose caller already has a row with this outcome in the window.
    pub fn admit(&mut self, event: &SecurityEvent, now: Instant) -> bool {
        let gated = matches!(
            event.event,
            SecurityEventKind::ReadRefused | SecurityEventKind::AdminRefused
        );
        let Some(user) = event.user_id.filter(|_| gated) else {
            return true;
        };
        let key = (user, event.event, event.outcome);
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < REFUSAL_WINDOW;
        if self.seen.get(&key).is_some_and(fresh) {
            return false;
        }
        if self.seen.len() >= GATE_SWEEP_AT {
            self.seen.retain(|_, at| fresh(at));
        }
        self.seen.insert(key, now);
        true
    }
}

/// Events deleted per statement by [`Service::prune_security_events`].
const PRUNE_BATCH: u32 = 10_000;

impl<S: SecurityLog, B> Service<S, B> {
    /// Deletes the security events created before `before`, in batches; returns how many.
    ///
    /// # Errors
    /// [`StoreError`](ensinalab_ports::StoreError) from the first batch that failed.
    pub async fn prune_security_events(
        &self,
        before: time::OffsetDateTime,
    ) -> Result<u64, ensinalab_ports::StoreError> {
        let mut pruned = 0;
        loop {
            let batch = self
                .store
                .prune_security_events(before, PRUNE_BATCH)
                .await?;
            pruned += batch;
            if batch < u64::from(PRUNE_BATCH) {
                return Ok(pruned);
            }
        }
    }

    /// Writes the row of an event the trail queued, unless `gate` says the caller's refusal
    /// already has one in the window (the trail writer calls it for each, in order).
    pub async fn write_security_event(&self, gate: &mut RefusalGate, event: SecurityEvent) {
        if gate.admit(&event, Instant::now()) {
            self.write_row(&event).await;
        }
    }

    /// Logs `event` and writes its row.
    pub(crate) async fn audit(&self, event: SecurityEvent) {
        event.log_named(&self.log.0);
        self.write_row(&event).await;
    }

    async fn write_row(&self, event: &SecurityEvent) {
        if let Err(err) = self.store.record(event).await {
            tracing::error!(target: "security", error = %err, event = event.event.as_str(), "security event not stored");
        }
    }

    /// A refused cancel of `resource`, with the status that refused it when there is one.
    pub(crate) async fn refuse_cancel(
        &self,
        caller: &Caller,
        resource: (ResourceKind, i64),
        outcome: EventOutcome,
        status: Option<&str>,
    ) {
        let details = status.map_or_else(|| json!({}), |s| json!({ "status": s }));
        self.audit(refused(
            SecurityEventKind::CancelRefused,
            caller,
            Some(resource),
            None,
            outcome,
            details,
        ))
        .await;
    }
}

impl<S, B> Service<S, B> {
    /// A refused read (`details` names it: `{"action": "read_briefing"}`, ...): a log line
    /// now, and a row through the trail when the caller has none with this outcome in the
    /// window.
    pub(crate) fn refuse_read(
        &self,
        caller: &Caller,
        details: serde_json::Value,
        resource: Option<(ResourceKind, i64)>,
        task_id: Option<&TaskId>,
        outcome: EventOutcome,
    ) {
        self.refuse(refused(
            SecurityEventKind::ReadRefused,
            caller,
            resource,
            task_id.cloned(),
            outcome,
            details,
        ));
    }

    /// A refused admin access on `route`, recorded as a refused read is.
    pub(crate) fn refuse_admin(&self, caller: &Caller, route: &str) {
        self.refuse(refused(
            SecurityEventKind::AdminRefused,
            caller,
            None,
            None,
            EventOutcome::NotAdmin,
            json!({ "route": route }),
        ));
    }

    fn refuse(&self, event: SecurityEvent) {
        event.log_named(&self.log.0);
        self.trail.queue(event);
    }
}

fn refused(
    event: SecurityEventKind,
    caller: &Caller,
    resource: Option<(ResourceKind, i64)>,
    task_id: Option<TaskId>,
    outcome: EventOutcome,
    details: serde_json::Value,
) -> SecurityEvent {
    SecurityEvent {
        event,
        user_id: Some(caller.user_id),
        resource,
        task_id,
        outcome,
        client_ip: caller.client_ip.clone(),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(user: i64, event: SecurityEventKind, outcome: EventOutcome) -> SecurityEvent {
        SecurityEvent {
            event,
            user_id: Some(UserId(user)),
            resource: None,
            task_id: None,
            outcome,
            client_ip: None,
            details: json!({}),
        }
    }

    fn read(user: i64, outcome: EventOutcome) -> SecurityEvent {
        refusal(user, SecurityEventKind::ReadRefused, outcome)
    }

    #[test]
    fn one_refused_read_row_per_caller_and_outcome_per_window() {
        let mut gate = RefusalGate::default();
        let t0 = Instant::now();
        let (missing, foreign) = (EventOutcome::NotFound, EventOutcome::NotOwner);
        assert!(gate.admit(&read(1, missing), t0));
        assert!(!gate.admit(&read(1, missing), t0 + Duration::from_secs(59)));
        assert!(gate.admit(&read(1, foreign), t0));
        assert!(gate.admit(&read(2, missing), t0));
        assert!(gate.admit(&read(1, missing), t0 + REFUSAL_WINDOW));
        // A refused admin access is gated apart from refused reads.
        let admin = refusal(1, SecurityEventKind::AdminRefused, EventOutcome::NotAdmin);
        assert!(gate.admit(&admin, t0));
        assert!(!gate.admit(&admin, t0 + Duration::from_secs(1)));
        // Everything else gets its row.
        let cancel = refusal(1, SecurityEventKind::CancelRefused, missing);
        assert!(gate.admit(&cancel, t0));
        assert!(gate.admit(&cancel, t0));
    }

    #[test]
    fn the_gate_forgets_expired_callers_instead_of_growing_without_end() {
        let mut gate = RefusalGate::default();
        let t0 = Instant::now();
        for user in 0..GATE_SWEEP_AT as i64 {
            assert!(gate.admit(&read(user, EventOutcome::NotFound), t0));
        }
        let later = t0 + REFUSAL_WINDOW;
        assert!(gate.admit(&read(-1, EventOutcome::NotFound), later));
        assert_eq!(gate.seen.len(), 1, "the expired entries were swept");
    }
}
