//! Figures about the jobs, for operators: the count per UTC day of what was created and how it
//! ended (`GET /admin/stats`), and the census of what is in flight now (the metrics' gauges,
//! refreshed by a background job, never a query per scrape).
//!
//! Both are read from the database, so they survive restarts and agree on every server.

use std::future::Future;

use time::Date;

use crate::error::StoreError;
use crate::model::AnyStatus;

/// The most days `GET /admin/stats` covers.
pub const MAX_STATS_DAYS: u32 = 90;
/// The days it covers when not told.
pub const DEFAULT_STATS_DAYS: u32 = 7;

/// What happened to the jobs (briefings and videos together) on one UTC day: created counts by
/// `created_at`, the rest by when the job reached its final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCounts {
    pub date: Date,
    pub created: u64,
    /// Cancelled by their owner, one at a time (`CancelReason::User`).
    pub cancelled_user: u64,
    /// Cancelled by their owner's cancel-all (`CancelReason::UserAll`).
    pub cancelled_user_all: u64,
    /// Cancelled by the automatic timeout (`CancelReason::Timeout`).
    pub cancelled_timeout: u64,
    /// Jobs that reached `completed`. A briefing whose options arrived, or a video waiting for
    /// approval, waits for a human: not finished, not counted.
    pub completed: u64,
    pub failed: u64,
}

impl DayCounts {
    /// A day with nothing.
    pub fn empty(date: Date) -> Self {
        Self {
            date,
            created: 0,
            cancelled_user: 0,
            cancelled_user_all: 0,
            cancelled_timeout: 0,
            completed: 0,
            failed: 0,
        }
    }

    /// Every cancellation the day counts (user, user_all, timeout).
    pub fn cancelled(&self) -> u64 {
        self.cancelled_user + self.cancelled_user_all + self.cancelled_timeout
    }

    /// Cancellations ÷ jobs created that day (the alert's ratio, per day); 0 on a day with no
    /// job created.
    pub fn cancel_rate(&self) -> f64 {
        if self.created == 0 {
            return 0.0;
        }
        // Counts of one day are far below 2^52: exact as f64.
        #[allow(clippy::cast_precision_loss)]
        let rate = self.cancelled() as f64 / self.created as f64;
        rate
    }
}

/// The jobs in flight now, and the revokes not yet delivered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Census {
    /// Jobs per in-flight status (`Lifecycle::IN_FLIGHT`); a status with none may be missing.
    pub in_flight: Vec<(AnyStatus, u64)>,
    /// Revokes owed and not yet taken by the broker, as the revoke outbox holds them.
    pub revokes_pending: u64,
}

/// Where a fresh [`Census`] goes (the metrics' gauges).
pub trait CensusSink: Send + Sync {
    /// Takes the newest census. MUST NOT block.
    fn record(&self, census: &Census);
}

/// The figures, read from storage.
pub trait Statistics: Send + Sync {
    /// The counts of every UTC day from `first` to `last`, both included, in date order. A day
    /// with nothing MAY be missing. MUST be one statement, whatever the number of days.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn daily_counts(
        &self,
        first: Date,
        last: Date,
    ) -> impl Future<Output = Result<Vec<DayCounts>, StoreError>> + Send;

    /// The jobs in flight now, by kind and status, and the revokes pending.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn census(&self) -> impl Future<Output = Result<Census, StoreError>> + Send;
}
