//! The ports of EnsinaLab task control: the traits adapters implement, the records that cross
//! them, and their errors.
//!
//! [`Store`] (briefings, videos, cross-table task queries, the security trail, the revoke and
//! cleanup outboxes, the operators' statistics), [`TaskBroker`] (dispatch, observe, revoke),
//! [`ChangeSink`] (where the stream of task changes goes), [`Mailer`], [`RateLimiter`] and
//! [`CensusSink`]. No infrastructure type (database, Redis, HTTP) appears here; adapters classify
//! their failures into [`StoreError`] and [`BrokerError`] at the edge. The use cases that drive
//! these ports live in `ensinalab-app`.

mod alerts;
mod audit;
mod broker;
mod changes;
mod cleanup;
mod error;
mod model;
mod outbox;
mod ratelimit;
mod repo;
mod stats;

pub use alerts::{MailSlots, Mailer, is_alert};
pub use audit::{
    EventOutcome, MAX_SECURITY_EVENTS_PAGE, ResourceNames, SecurityEvent, SecurityEventKind,
    SecurityEventPage, SecurityEventQuery, StoredSecurityEvent, UnknownEventKind, UnknownOutcome,
};
pub use broker::{TakenOut, TaskBroker, TaskKind, TaskRequest};
pub use changes::{ChangeKind, ChangeSink, Overdue, TaskChange};
pub use cleanup::{CleanupOutbox, CleanupReason, OwedCleanup};
pub use error::{BoxError, BrokerError, MailError, StoreError};
pub use model::*;
pub use outbox::{FIRST_ATTEMPT_GRACE, OwedRevoke, RevokeOutbox, settles};
pub use ratelimit::{RateDecision, RateLimitError, RateLimiter, RatePolicy};
pub use repo::{Briefings, Cancels, SecurityLog, Status, Store, Tasks, Videos};
pub use stats::{Census, CensusSink, DEFAULT_STATS_DAYS, DayCounts, MAX_STATS_DAYS, Statistics};
