//! The ports of EnsinaLab task control, and the use cases that drive them.
//!
//! Ports are traits the adapters implement: [`Store`] (briefings, videos, cross-table task
//! queries, the security trail, the revoke and cleanup outboxes, the operators' statistics) and [`TaskBroker`] (dispatch, observe,
//! revoke), plus [`ChangeSink`], where the stream of task changes goes. Use cases are methods of
//! [`Service`], generic over the store and the broker, each returning its own error enum; they
//! carry out the domain's rules (the cancel: `ensinalab_domain::Cancel::new`), write every
//! security event of what they did or refused, and emit every change a user could see, once,
//! after it committed. No
//! infrastructure type (database, Redis, HTTP) appears here; adapters classify their failures
//! into [`StoreError`] and [`BrokerError`] at the edge. In-memory fakes live in [`testing`]
//! behind the `testing` feature.

mod alerts;
mod audit;
mod backlog;
mod broker;
mod changes;
mod cleanup;
mod error;
mod model;
mod outbox;
mod ratelimit;
mod repo;
mod stats;
mod usecases;

#[cfg(feature = "testing")]
pub mod testing;

pub use alerts::{AlertQueue, MAX_QUEUED_ALERTS, MailSlots, Mailer, is_alert};
pub use audit::{
    MAX_SECURITY_EVENTS_PAGE, ResourceNames, SecurityEvent, SecurityEventKind, SecurityEventPage,
    SecurityEventQuery, StoredSecurityEvent, UnknownEventKind,
};
pub use backlog::Backlog;
pub use broker::{TakenOut, TaskBroker};
pub use changes::{ChangeKind, ChangeSink, LogChanges, Overdue, TaskChange};
pub use cleanup::{CleanupOutbox, CleanupQueue, CleanupReason, MAX_QUEUED_CLEANUPS, OwedCleanup};
pub use error::{BoxError, BrokerError, MailError, StoreError};
pub use model::*;
pub use outbox::{FIRST_ATTEMPT_GRACE, OwedRevoke, RevokeOutbox, settles};
pub use ratelimit::{RateDecision, RateLimitError, RateLimiter, RatePolicy};
pub use repo::{Briefings, Cancels, SecurityLog, Status, Store, Tasks, Videos};
pub use stats::{Census, CensusSink, DEFAULT_STATS_DAYS, DayCounts, MAX_STATS_DAYS, Statistics};
pub use usecases::*;
