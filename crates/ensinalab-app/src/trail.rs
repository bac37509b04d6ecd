//! The use cases' side of the security trail: every event a use case writes is also one log
//! line, and a row written after the work it records (a failure to write the row is logged,
//! never turned into a failure of work already committed).
//!
//! Refused reads, and refused admin access, are bounded: one row per caller and outcome per
//! [`REFUSAL_WINDOW`] (every refusal is still a log line), so a scan of ids or a loop on an
//! admin route cannot flood the table. Refused cancels keep
//! a row each: the cancel quota already bounds them, and each names the resource attempted.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ensinalab_domain::{ResourceKind, TaskId, UserId};
use serde_json::json;

use crate::Service;
use ensinalab_ports::Caller;
use ensinalab_ports::SecurityLog;
use ensinalab_ports::{SecurityEvent, SecurityEventKind};

/// How long one refused-read (or refused admin) row stands for the caller's later refusals with
/// the same outcome.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// Past this many remembered callers, expired entries are dropped before a new one is added.
const GATE_SWEEP_AT: usize = 10_000;

/// Why a request on a resource was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// No such resource.
    Missing,
    /// Someone else's: an attempt worth flagging, answered like [`Refusal::Missing`].
    Foreign,
    /// The resource's status does not allow it.
    Status,
    /// An admin route, and the caller is no admin.
    NotAdmin,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "not_found",
            Self::Foreign => "not_owner",
            Self::Status => "not_cancellable",
            Self::NotAdmin => "not_admin",
        }
    }
}

/// Which refused reads already have their row in the current window.
#[derive(Debug, Default)]
pub(crate) struct RefusalGate {
    seen: Mutex<HashMap<(UserId, Refusal), Instant>>,
}

impl RefusalGate {
    /// Whether a refusal of `user` with `refusal` at `now` gets a row.
    fn admit(&self, user: UserId, refusal: Refusal, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < REFUSAL_WINDOW;
        if seen.get(&(user, refusal)).is_some_and(fresh) {
            return false;
        }
        if seen.len() >= GATE_SWEEP_AT {
            seen.retain(|_, at| fresh(at));
        }
        seen.insert((user, refusal), now);
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

    /// Logs `event` and writes its row.
    pub(crate) async fn audit(&self, event: SecurityEvent) {
        event.log_named(&self.log.0);
        if let Err(err) = self.store.record(&event).await {
            tracing::error!(target: "security", error = %err, event = event.event.as_str(), "security event not stored");
        }
    }

    /// A refused cancel of `resource`, with the status that refused it when there is one.
    pub(crate) async fn refuse_cancel(
        &self,
        caller: &Caller,
        resource: (ResourceKind, i64),
        refusal: Refusal,
        status: Option<&str>,
    ) {
        let details = status.map_or_else(|| json!({}), |s| json!({ "status": s }));
        self.audit(refused(
            SecurityEventKind::CancelRefused,
            caller,
            Some(resource),
            None,
            refusal,
            details,
        ))
        .await;
    }

    /// A refused read (`details` names it: `{"action": "read_briefing"}`, ...): always a log
    /// line, a row when the caller has none with this outcome in the window.
    pub(crate) async fn refuse_read(
        &self,
        caller: &Caller,
        details: serde_json::Value,
        resource: Option<(ResourceKind, i64)>,
        task_id: Option<&TaskId>,
        refusal: Refusal,
    ) {
        let event = refused(
            SecurityEventKind::ReadRefused,
            caller,
            resource,
            task_id.cloned(),
            refusal,
            details,
        );
        if self.refusals.admit(caller.user_id, refusal, Instant::now()) {
            self.audit(event).await;
        } else {
            event.log_named(&self.log.0);
        }
    }
}

impl<S, B> Service<S, B> {
    /// Whether `user`'s refused admin access gets its `admin_refused` row: the first in the
    /// window does, by the gate of refused reads. The HTTP layer writes the row (off the request
    /// path) or, when this says no, only its log line.
    pub fn admits_admin_refusal(&self, user: UserId) -> bool {
        self.refusals.admit(user, Refusal::NotAdmin, Instant::now())
    }
}

fn refused(
    event: SecurityEventKind,
    caller: &Caller,
    resource: Option<(ResourceKind, i64)>,
    task_id: Option<TaskId>,
    refusal: Refusal,
    details: serde_json::Value,
) -> SecurityEvent {
    SecurityEvent {
        event,
        user_id: Some(caller.user_id),
        resource,
        task_id,
        outcome: refusal.as_str().to_owned(),
        client_ip: caller.client_ip.clone(),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refused_read_row_per_caller_and_outcome_per_window() {
        let gate = RefusalGate::default();
        let t0 = Instant::now();
        let (alice, bob) = (UserId(1), UserId(2));
        assert!(gate.admit(alice, Refusal::Missing, t0));
        assert!(!gate.admit(alice, Refusal::Missing, t0 + Duration::from_secs(59)));
        assert!(gate.admit(alice, Refusal::Foreign, t0));
        assert!(gate.admit(bob, Refusal::Missing, t0));
        assert!(gate.admit(alice, Refusal::Missing, t0 + REFUSAL_WINDOW));
        // A refused admin access is gated apart from refused reads.
        assert!(gate.admit(alice, Refusal::NotAdmin, t0));
        assert!(!gate.admit(alice, Refusal::NotAdmin, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn the_gate_forgets_expired_callers_instead_of_growing_without_end() {
        let gate = RefusalGate::default();
        let t0 = Instant::now();
        for user in 0..GATE_SWEEP_AT as i64 {
            assert!(gate.admit(UserId(user), Refusal::Missing, t0));
        }
        let later = t0 + REFUSAL_WINDOW;
        assert!(gate.admit(UserId(-1), Refusal::Missing, later));
        let seen = gate.seen.lock().unwrap().len();
        assert_eq!(seen, 1, "the expired entries were swept");
    }
}
