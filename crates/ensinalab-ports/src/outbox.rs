//! The revoke outbox port: the revokes a cancel owes the task broker.
//!
//! A cancel writes its row's new status and an [`OwedRevoke`] in ONE transaction (the contract of
//! the cancel methods in [`crate::Briefings`], [`crate::Videos`] and [`crate::Tasks`]), so a
//! cancel the database accepted can never lose its revoke to a broker that was down at that
//! moment. The cancel use case tries to deliver it at once; whatever it could not deliver, the
//! server's dispatcher delivers later, with backoff. Because Celery workers keep revoked ids in
//! memory only (a restarted worker forgets them, a broadcast nobody heard is lost), a delivered
//! revoke stays *open* and is broadcast again until the broker shows the task as finished or the
//! revoke is older than the re-broadcast bound; then it is *settled*.

use std::future::Future;

use ensinalab_domain::{ResourceKind, TaskId};
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::RevokeReport;

/// How long after the cancel the dispatcher leaves a fresh revoke to the cancel itself (which
/// tries at once), so the two do not both deliver it in the common case.
pub const FIRST_ATTEMPT_GRACE: time::Duration = time::Duration::seconds(5);

/// A revoke owed for one cancelled task.
#[derive(Debug, Clone, PartialEq)]
pub struct OwedRevoke {
    pub task_id: TaskId,
    /// The cancelled row (for logs and the reliability tests).
    pub resource: (ResourceKind, i64),
    /// When the cancel committed; the re-broadcast bound counts from here.
    pub created_at: OffsetDateTime,
    /// Failed delivery attempts so far (drives the backoff).
    pub attempts: u32,
    /// When the broker first took it; `None` while pending.
    pub delivered_at: Option<OffsetDateTime>,
}

/// Where the revokes owed by cancels are kept until delivered and settled: one record per task,
/// written by the cancel in its own transaction (a task owed again keeps its record). Every
/// method sees every revoke a committed cancel owes, from the moment it committed.
pub trait RevokeOutbox: Send + Sync {
    /// Up to `limit` revokes not yet delivered whose next attempt is due at `now`, oldest first.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn due_revokes(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OwedRevoke>, StoreError>> + Send;

    /// Records that the broker took these revokes at `now`: the first call MUST set the
    /// delivery time and outcome (a later one keeps them and only notes the broadcast time).
    /// A report whose outcome [settles](settles) the revoke also settles it. Unknown ids are
    /// ignored.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn revokes_delivered(
        &self,
        reports: &[RevokeReport],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Settles the delivered, still open revokes of `reports` (each report's outcome must
    /// [settle](settles)), recording that outcome at `now`, and returns the ids this call
    /// settled: each open revoke is settled once, by one caller, however many servers see its
    /// task finish. Revokes not yet delivered are left to their delivery.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn settle_revokes(
        &self,
        reports: &[RevokeReport],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<TaskId>, StoreError>> + Send;

    /// Records a failed delivery attempt of `ids`: one more attempt, next one at `retry_at`.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn revokes_failed(
        &self,
        ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` delivered revokes, not settled, created at or after `since`, least recently
    /// broadcast first: what a re-broadcast sends again.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn open_revokes(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OwedRevoke>, StoreError>> + Send;

    /// Up to `limit` revokes, not settled and never reported overdue, that are still pending
    /// though owed before `before`, or were delivered before `before`: the ones that may be
    /// overdue. Oldest first.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn overdue_candidates(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OwedRevoke>, StoreError>> + Send;

    /// Records that the revokes of `ids` were reported overdue at `now`, and returns those
    /// this call marked: each is reported once, by one caller, however many servers look.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn mark_overdue(
        &self,
        ids: &[TaskId],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<TaskId>, StoreError>> + Send;
}

/// Whether a delivery with this outcome settles the revoke for good.
pub fn settles(outcome: crate::model::RevokeOutcome) -> bool {
    use crate::model::RevokeOutcome;
    match outcome {
        // Finished, killed, or claimed before any worker: nothing left to stop.
        RevokeOutcome::AlreadyFinished
        | RevokeOutcome::FinishedFirst
        | RevokeOutcome::Killed
        | RevokeOutcome::Claimed
        | RevokeOutcome::RemovedFromQueue => true,
        // A worker may still run it, or none heard: say it again later.
        RevokeOutcome::Signalled | RevokeOutcome::NoWorkerListening => false,
    }
}
