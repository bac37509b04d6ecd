//! The use cases of EnsinaLab task control, as methods of [`Service`], and the in-process
//! consumers of their change stream.
//!
//! [`Service`] is generic over the store and the broker (the traits of `ensinalab-ports`); each
//! use case returns its own error enum. The use cases carry out the domain's rules, write every
//! security event of what they did or refused, and emit every change a user could see, once,
//! after it committed. In-memory fakes of the ports live in [`testing`] behind the `testing`
//! feature.

mod admin;
mod alerts;
mod backlog;
mod cancel;
mod cleanup;
mod flow;
mod list;
mod reconcile;
mod revokes;
mod sinks;
mod trail;
mod unqueue;
mod worker_lost;

#[cfg(feature = "testing")]
pub mod testing;

pub use admin::{Admin, AdminError};
pub use alerts::AlertError;
pub use backlog::{Backlog, Drain};
pub use cancel::{
    CancelAllError, CancelBriefingError, CancelError, CancelVideoError, Cancelled,
    CancelledAllReport,
};
pub use cleanup::MAX_SWEEP_IN_FLIGHT;
pub use flow::{BriefingError, CreateJobError, SelectOptionError, VideoStatusError};
pub use list::{ActiveList, ActiveTask, ListActiveError, TaskStatusError};
pub use reconcile::{ReconcileError, ReconcileReport};
pub use revokes::{DispatchError, DispatchReport, MAX_RETRY_DELAY, OverdueReport, retry_delay};
pub use sinks::{AlertQueue, CleanupQueue, LogChanges, MAX_QUEUED_ALERTS, MAX_QUEUED_CLEANUPS};
pub use trail::{REFUSAL_WINDOW, RefusalGate, SecurityTrail, TrailQueue};
pub use unqueue::{UnqueueError, UnqueueReport};
pub use worker_lost::WORKER_LOST;

use std::sync::Arc;

use ensinalab_domain::{AutoCancel, DEFAULT_TASK_TIME_LIMIT_SECS, TaskId};
use time::OffsetDateTime;

use ensinalab_ports::{ChangeSink, OwedCleanup, ResourceNames, RevokeReport, TaskChange};

use crate::backlog::backlog;

/// Settings of the use cases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// A job running longer than this is flagged `is_stuck` (Celery's `task_time_limit`).
    pub task_time_limit_secs: u64,
    /// When running jobs are cancelled for running too long; `None`: never.
    pub auto_cancel: Option<AutoCancel>,
    /// Jobs a user may hold at once ([`Lifecycle::ACTIVE`](ensinalab_domain::Lifecycle::ACTIVE));
    /// creating one more is refused.
    pub max_active_jobs_per_user: u32,
}

/// The default of [`Settings::max_active_jobs_per_user`].
pub const DEFAULT_MAX_ACTIVE_JOBS_PER_USER: u32 = 100;

impl Default for Settings {
    fn default() -> Self {
        Self {
            task_time_limit_secs: DEFAULT_TASK_TIME_LIMIT_SECS,
            auto_cancel: None,
            max_active_jobs_per_user: DEFAULT_MAX_ACTIVE_JOBS_PER_USER,
        }
    }
}

/// The application service: every use case, over one store and one broker, emitting its
/// changes to its sinks. It keeps no state of its own: what its use cases owe background jobs
/// leaves through the sending halves it holds, and the receiving halves ([`Drains`]) are handed
/// out when it is built.
pub struct Service<S, B> {
    store: S,
    broker: B,
    settings: Settings,
    sinks: Vec<Arc<dyn ChangeSink>>,
    /// The first consumer of every change, and the namer of the resources in every log line.
    log: LogChanges,
    /// Revokes a cancel delivered itself, not yet marked in the outbox:
    /// [`Service::record_deliveries`] marks them after the response.
    deliveries: Backlog<Delivery>,
    /// Security events whose row is written off the request path.
    trail: SecurityTrail,
}

/// The receiving halves of what a [`Service`] owes background jobs, one job each.
#[derive(Debug)]
pub struct Drains {
    /// For the revoke dispatcher ([`Service::record_deliveries`]).
    pub deliveries: Drain<Delivery>,
    /// For the cleanup dispatcher ([`Service::record_cleanups`]).
    pub cleanups: Drain<OwedCleanup>,
    /// For the trail writer ([`Service::write_security_event`]).
    pub trail: TrailQueue,
}

/// Revokes a cancel delivered itself, with the time the broker took them.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub at: OffsetDateTime,
    pub reports: Vec<RevokeReport>,
}

impl<S, B> std::fmt::Debug for Service<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("settings", &self.settings)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

/// Revoke deliveries kept in memory at most until the dispatcher marks them; beyond it some are
/// dropped, and the dispatcher delivers those again once their grace is over, which marks them.
const MAX_QUEUED_DELIVERIES: usize = 10_000;

impl<S, B> Service<S, B> {
    /// Wires a store and a broker; changes go to the logs ([`LogChanges`], naming resources by
    /// kind only until [`Service::with_resource_names`]) and to the cleanup queue
    /// ([`CleanupQueue`]) until more sinks are added. Returns the service and the receiving
    /// halves its jobs drain.
    pub fn new(store: S, broker: B, settings: Settings) -> (Self, Drains) {
        let (deliveries, delivered) = backlog(MAX_QUEUED_DELIVERIES, "revoke deliveries");
        let (cleanups, owed_cleanups) = backlog(MAX_QUEUED_CLEANUPS, "owed cleanups");
        let (trail, trail_queue) = SecurityTrail::channel();
        let service = Self {
            store,
            broker,
            settings,
            sinks: vec![Arc::new(CleanupQueue(cleanups))],
            log: LogChanges::default(),
            deliveries,
            trail,
        };
        let drains = Drains {
            deliveries: delivered,
            cleanups: owed_cleanups,
            trail: trail_queue,
        };
        (service, drains)
    }

    /// Names the resources of the service's log lines (changes, security events, overdue
    /// revokes) with `names`.
    #[must_use]
    pub fn with_resource_names(mut self, names: ResourceNames) -> Self {
        self.log = LogChanges(names);
        self
    }

    /// Adds a consumer of the change stream.
    #[must_use]
    pub fn with_sink(mut self, sink: Arc<dyn ChangeSink>) -> Self {
        self.sinks.push(sink);
        self
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
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Where the HTTP layer records its security events (failed authentication, rate limits).
    pub fn trail(&self) -> &SecurityTrail {
        &self.trail
    }

    /// Hands a committed change to every sink.
    fn emit(&self, change: &TaskChange) {
        self.log.publish(change);
        for sink in &self.sinks {
            sink.publish(change);
        }
    }
}

/// A fresh Celery-style task id (uuid4), chosen before the row is written.
pub fn new_task_id() -> TaskId {
    TaskId::parse(&uuid::Uuid::new_v4().to_string()).expect("a hyphenated uuid is a valid task id")
}
