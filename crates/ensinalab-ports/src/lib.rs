//! The ports of EnsinaLab task control, and the use cases that drive them.
//!
//! Ports are traits the adapters implement: [`Store`] (briefings, videos, cross-table task
//! queries, the security trail) and [`TaskBroker`] (dispatch, observe, revoke). Use cases are
//! methods of [`Service`], generic over both, each returning its own error enum. No
//! infrastructure type (database, Redis, HTTP) appears here; adapters classify their failures
//! into [`StoreError`] and [`BrokerError`] at the edge. In-memory fakes live in [`testing`]
//! behind the `testing` feature.

mod audit;
mod broker;
mod error;
mod model;
mod outbox;
mod ratelimit;
mod repo;
mod usecases;

#[cfg(feature = "testing")]
pub mod testing;

pub use audit::{
    MAX_SECURITY_EVENTS_PAGE, SecurityEventPage, SecurityEventQuery, StoredSecurityEvent,
};
pub use broker::TaskBroker;
pub use error::{BoxError, BrokerError, StoreError};
pub use model::*;
pub use outbox::{FIRST_ATTEMPT_GRACE, OwedRevoke, RevokeOutbox, settles};
pub use ratelimit::{RateDecision, RateLimitError, RateLimiter, RatePolicy};
pub use repo::{Briefings, CANCELLED_BY_USER, SecurityLog, Store, Tasks, Videos};
pub use usecases::*;
