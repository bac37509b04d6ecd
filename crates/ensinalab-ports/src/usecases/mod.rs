//! The use cases, as methods of [`Service`].

mod cancel;
mod flow;
mod list;
mod lost;
mod reconcile;
mod revokes;

pub use cancel::{
    CancelAllError, CancelBriefingError, CancelVideoError, Cancelled, CancelledAllReport,
    RevokeStatus,
};
pub use flow::{BriefingError, CreateBriefingError, SelectOptionError, VideoStatusError};
pub use list::{ActiveList, ActiveTask, ListActiveError, TaskStatusError};
pub use lost::WORKER_LOST;
pub use reconcile::{ReconcileError, ReconcileReport};
pub use revokes::{DispatchError, DispatchReport, MAX_RETRY_DELAY, retry_delay};

use std::sync::Mutex;

use ensinalab_domain::{DEFAULT_TASK_TIME_LIMIT_SECS, TaskId};
use time::OffsetDateTime;

use crate::model::RevokeReport;

/// Settings of the use cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceConfig {
    /// A job running longer than this is flagged `is_stuck` (Celery's `task_time_limit`).
    pub task_time_limit_secs: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            task_time_limit_secs: DEFAULT_TASK_TIME_LIMIT_SECS,
        }
    }
}

/// The application service: every use case, over one store and one broker.
#[derive(Debug)]
pub struct Service<S, B> {
    store: S,
    broker: B,
    config: ServiceConfig,
    /// Revokes a cancel delivered itself, each batch with its delivery time, not yet marked in
    /// the outbox: [`Service::record_deliveries`] marks them after the response.
    delivered: Mutex<Vec<(OffsetDateTime, Vec<RevokeReport>)>>,
}

impl<S, B> Service<S, B> {
    /// Wires a store and a broker.
    pub fn new(store: S, broker: B, config: ServiceConfig) -> Self {
        Self {
            store,
            broker,
            config,
            delivered: Mutex::default(),
        }
    }

    /// The store (for readiness checks and background jobs).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The broker (for readiness checks and background jobs).
    pub fn broker(&self) -> &B {
        &self.broker
    }

    /// The settings.
    pub fn config(&self) -> ServiceConfig {
        self.config
    }
}

/// A fresh Celery-style task id (uuid4), chosen before the row is written.
pub fn new_task_id() -> TaskId {
    TaskId::parse(&uuid::Uuid::new_v4().to_string()).expect("a hyphenated uuid is a valid task id")
}
