//! Cancelling a video, a briefing's option generation, or everything a user has running.
//!
//! The domain decides the cancel ([`Cancel`]: from which statuses, what it writes); here it is
//! carried out. Order of a cancel: (a user's single cancel only) one read of the task's state,
//! whose final result, if the row lags it, is applied first; the store's guarded transition
//! together with the revoke it owes (one transaction: see [`RevokeOutbox`](crate::RevokeOutbox)),
//! the `cancelled` change, one attempt to deliver that revoke, the security event, the `revoke`
//! change. The database
//! moves first, in one guarded write, so the user's intent is recorded even when the broker is
//! down or slow, and a cancel racing a completion ends in exactly one terminal state. If the
//! revoke cannot be delivered now, the cancel still stands and the revoke is *pending*: the
//! response says `task_revoked: false`, `revoke: "pending"`, and the server's dispatcher
//! delivers it once the broker answers. The reconciler never moves the row out of `cancelled`
//! whatever the worker reports later.

use std::collections::HashMap;

use ensinalab_domain::{
    BriefingId, BriefingStatus, Cancel, CancelReason, Lifecycle, ResourceKind, TaskId, UserId,
    VideoId, VideoStatus,
};
use serde_json::json;
use time::OffsetDateTime;

use ensinalab_ports::{
    AnyStatus, Briefing, Caller, Cancels, ChangeKind, EventOutcome, Resource, ResourceId,
    ResourceRef, RevokeOutcome, RevokeStatus, SecurityEvent, SecurityEventKind, Status, Store,
    StoreError, TaskBroker, TaskChange, Transition, Video,
};

use crate::{Delivery, Service};

/// A successful cancel: the row after the change and what the revoke achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled<T> {
    pub resource: T,
    pub revoke: RevokeStatus,
}

/// Why a resource could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError<S: std::fmt::Display + std::fmt::Debug> {
    /// Missing, or someone else's (the same answer, so ids cannot be probed).
    #[error("not found")]
    NotFound,
    /// Its status does not allow cancelling.
    #[error("cannot be cancelled in status {status}")]
    NotCancellable { status: S },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a video could not be cancelled.
pub type CancelVideoError = CancelError<VideoStatus>;
/// Why a briefing's generation could not be cancelled.
pub type CancelBriefingError = CancelError<BriefingStatus>;

/// Why cancel-all failed (nothing was changed then).
#[derive(Debug, thiserror::Error)]
pub enum CancelAllError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What cancel-all did.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelledAllReport {
    pub briefings: Vec<BriefingId>,
    pub videos: Vec<VideoId>,
    /// One entry per task id of the cancelled rows: delivered, or pending when the broker could
    /// not be reached.
    pub revokes: Vec<(TaskId, RevokeStatus)>,
}

impl CancelledAllReport {
    /// How many resources were cancelled.
    pub fn total(&self) -> usize {
        self.briefings.len() + self.videos.len()
    }
}

/// A row a cancel of many moved, as the change stream shows it.
struct Moved {
    user_id: UserId,
    resource: (ResourceKind, i64),
    task_id: Option<TaskId>,
    status: AnyStatus,
    progress: Option<f64>,
}

impl Moved {
    /// The row of `kind` that a cancel for `reason` moved: its status and progress are what that
    /// cancel writes.
    fn new(
        kind: ResourceKind,
        user_id: UserId,
        id: i64,
        task_id: Option<TaskId>,
        reason: CancelReason,
    ) -> Self {
        let (status, progress) = match kind {
            ResourceKind::Briefing => {
                let cancel = Cancel::<BriefingStatus>::new(reason);
                (cancel.to.into(), cancel.progress)
            }
            ResourceKind::Video => {
                let cancel = Cancel::<VideoStatus>::new(reason);
                (cancel.to.into(), cancel.progress)
            }
        };
        Self {
            user_id,
            resource: (kind, id),
            task_id,
            status,
            progress,
        }
    }

    fn change(&self, kind: ChangeKind, at: OffsetDateTime) -> TaskChange {
        TaskChange {
            user_id: self.user_id,
            resource: self.resource,
            task_id: self.task_id.clone(),
            kind,
            status: self.status,
            progress: self.progress,
            at,
        }
    }
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Cancels a video of the caller.
    ///
    /// # Errors
    /// [`CancelVideoError`]; every refusal is also written to the security trail.
    pub async fn cancel_video(
        &self,
        caller: &Caller,
        id: VideoId,
    ) -> Result<Cancelled<Video>, CancelVideoError> {
        let row = self.store.video(id).await?;
        self.apply_if_finished(caller, row.as_ref()).await;
        self.cancel_one(caller, id).await
    }

    /// Cancels the option generation of a briefing of the caller.
    ///
    /// # Errors
    /// [`CancelBriefingError`]; every refusal is also written to the security trail.
    pub async fn cancel_briefing(
        &self,
        caller: &Caller,
        id: BriefingId,
    ) -> Result<Cancelled<Briefing>, CancelBriefingError> {
        let row = self.store.briefing(id).await?.map(|(row, _)| row);
        self.apply_if_finished(caller, row.as_ref()).await;
        self.cancel_one(caller, id).await
    }

    /// Before a user's cancel: when the caller's row lags a task whose result already says it
    /// finished (the reconciler applies results within moments, not at once), the result is
    /// applied first, so the cancel's guard refuses the finished job the way it refuses any
    /// finished job, and the row keeps the worker's outcome. A broker that cannot be read
    /// changes nothing: the cancel goes on, and its revoke reports what it finds.
    async fn apply_if_finished<R: Resource>(&self, caller: &Caller, row: Option<&R>) {
        let Some(row) = row.filter(|r| r.owner() == caller.user_id) else {
            return;
        };
        let Some(task) = row.task_id() else {
            return;
        };
        let snapshot = match self.broker.states(std::slice::from_ref(task)).await {
            Ok(mut states) => states.pop(),
            Err(err) => {
                tracing::debug!(error = %err, "the task's state could not be read before its cancel");
                None
            }
        };
        let Some(snapshot) = snapshot.filter(|s| s.state.is_final()) else {
            return;
        };
        let (kind, id) = row.key();
        let resource = ResourceRef {
            kind,
            id,
            user_id: row.owner(),
        };
        if let Err(err) = self.apply_snapshot(resource, &snapshot).await {
            tracing::warn!(error = %err, "a finished task's result could not be applied before its cancel");
        }
    }

    /// A user's cancel of one of their resources.
    async fn cancel_one<I: ResourceId>(
        &self,
        caller: &Caller,
        id: I,
    ) -> Result<Cancelled<I::Row>, CancelError<Status<I>>>
    where
        S: Cancels<I>,
    {
        let cancel = Cancel::new(CancelReason::User);
        let key = (<Status<I> as Lifecycle>::KIND, id.key());
        let row = match self.store.cancel(caller.user_id, id, &cancel).await? {
            Transition::Done(row) => row,
            Transition::Refused(status) => {
                self.refuse_cancel(
                    caller,
                    key,
                    EventOutcome::NotCancellable,
                    Some(status.as_str()),
                )
                .await;
                return Err(CancelError::NotCancellable { status });
            }
            Transition::NotOwned => {
                self.refuse_cancel(caller, key, EventOutcome::NotOwner, None)
                    .await;
                return Err(CancelError::NotFound);
            }
            Transition::NotFound => {
                self.refuse_cancel(caller, key, EventOutcome::NotFound, None)
                    .await;
                return Err(CancelError::NotFound);
            }
        };
        let now = OffsetDateTime::now_utc();
        self.emit(&TaskChange::of(
            &row,
            ChangeKind::Cancelled(cancel.reason),
            now,
        ));
        let revoke = match row.task_id() {
            Some(task) => self
                .deliver_now(std::slice::from_ref(task))
                .await
                .first()
                .map_or(RevokeStatus::Pending, |(_, status)| *status),
            None => RevokeStatus::NoTask,
        };
        self.audit(SecurityEvent {
            event: SecurityEventKind::cancelled(key.0),
            user_id: Some(caller.user_id),
            resource: Some(key),
            task_id: row.task_id().cloned(),
            outcome: EventOutcome::Cancelled,
            client_ip: caller.client_ip.clone(),
            details: json!({ "revoked": revoke.revoked(), "revoke": revoke.as_str() }),
        })
        .await;
        self.emit(&TaskChange::of(
            &row,
            ChangeKind::Revoke(revoke),
            OffsetDateTime::now_utc(),
        ));
        Ok(Cancelled {
            resource: row,
            revoke,
        })
    }

    /// Cancels every active briefing and video of the caller: one transaction, then one revoke
    /// call for all their tasks.
    ///
    /// # Errors
    /// [`CancelAllError`] when the transaction fails; nothing changed then.
    pub async fn cancel_all(&self, caller: &Caller) -> Result<CancelledAllReport, CancelAllError> {
        let reason = CancelReason::UserAll;
        let (briefings, videos) = (Cancel::new(reason), Cancel::new(reason));
        let moved = self
            .store
            .cancel_all(caller.user_id, &briefings, &videos)
            .await?;
        let moved_rows: Vec<Moved> = moved
            .briefings
            .iter()
            .map(|(id, task)| (ResourceKind::Briefing, id.get(), task))
            .chain(
                moved
                    .videos
                    .iter()
                    .map(|(id, task)| (ResourceKind::Video, id.get(), task)),
            )
            .map(|(kind, id, task)| Moved::new(kind, caller.user_id, id, task.clone(), reason))
            .collect();
        let revokes = self.cancelled_many(&moved_rows, reason).await;
        self.audit(SecurityEvent {
            event: SecurityEventKind::TasksCancelledAll,
            user_id: Some(caller.user_id),
            resource: None,
            task_id: None,
            outcome: EventOutcome::Cancelled,
            client_ip: caller.client_ip.clone(),
            details: json!({ "briefings": moved.briefings.len(), "videos": moved.videos.len() }),
        })
        .await;
        Ok(CancelledAllReport {
            briefings: moved.briefings.into_iter().map(|(id, _)| id).collect(),
            videos: moved.videos.into_iter().map(|(id, _)| id).collect(),
            revokes,
        })
    }

    /// The automatic timeout's pass: cancels every running job past its limit
    /// ([`Settings::auto_cancel`](crate::Settings)), through the same guarded transition, revoke
    /// and outbox as a user's cancel; each is an `auto_cancelled` security event naming its
    /// owner, the job and the limit, and a `cancelled` change (reason `timeout`). Returns how
    /// many were cancelled.
    ///
    /// # Errors
    /// [`StoreError`] when the transaction fails; nothing changed then.
    pub async fn cancel_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let Some(policy) = self.settings.auto_cancel else {
            return Ok(0);
        };
        let reason = CancelReason::Timeout;
        let expired = self
            .store
            .cancel_expired(
                &Cancel::new(reason),
                policy.cutoff(ResourceKind::Briefing, now),
                &Cancel::new(reason),
                policy.cutoff(ResourceKind::Video, now),
            )
            .await?;
        let moved: Vec<Moved> = expired
            .iter()
            .map(|job| {
                let r = job.resource;
                Moved::new(r.kind, r.user_id, r.id, job.task_id.clone(), reason)
            })
            .collect();
        self.cancelled_many(&moved, reason).await;
        for job in &expired {
            let limit = policy.limit(job.resource.kind);
            self.audit(SecurityEvent {
                event: SecurityEventKind::AutoCancelled,
                user_id: Some(job.resource.user_id),
                resource: Some((job.resource.kind, job.resource.id)),
                task_id: job.task_id.clone(),
                outcome: EventOutcome::Cancelled,
                client_ip: None,
                details: json!({
                    "limit_secs": limit.as_secs(),
                    "running_secs": (now - job.started_at).whole_seconds(),
                }),
            })
            .await;
        }
        Ok(expired.len())
    }

    /// After a cancel of many rows committed: their `cancelled` changes, one revoke call for all
    /// their tasks, and their `revoke` changes. Returns each task's revoke status, in order.
    async fn cancelled_many(
        &self,
        moved: &[Moved],
        reason: CancelReason,
    ) -> Vec<(TaskId, RevokeStatus)> {
        let now = OffsetDateTime::now_utc();
        let cancelled: Vec<TaskChange> = moved
            .iter()
            .map(|m| m.change(ChangeKind::Cancelled(reason), now))
            .collect();
        for change in &cancelled {
            self.emit(change);
        }
        let task_ids: Vec<TaskId> = moved.iter().filter_map(|m| m.task_id.clone()).collect();
        let revokes = self.deliver_now(&task_ids).await;
        let at = OffsetDateTime::now_utc();
        let mut statuses = revokes.iter().map(|(_, status)| *status);
        for change in cancelled {
            let revoke = match change.task_id {
                Some(_) => statuses.next().unwrap_or(RevokeStatus::Pending),
                None => RevokeStatus::NoTask,
            };
            self.emit(&TaskChange {
                kind: ChangeKind::Revoke(revoke),
                at,
                ..change
            });
        }
        revokes
    }

    /// One attempt to deliver the revokes a cancel just committed: one status per id, in
    /// order. On success the delivery is queued for [`Service::record_deliveries`], which marks
    /// the outbox after the response (should that never happen, the dispatcher merely delivers
    /// them again once their grace is over: a revoke is idempotent). On failure they stay
    /// pending for the dispatcher.
    async fn deliver_now(&self, task_ids: &[TaskId]) -> Vec<(TaskId, RevokeStatus)> {
        if task_ids.is_empty() {
            return Vec::new();
        }
        match self.broker.revoke(task_ids).await {
            Ok(reports) => {
                let outcomes: HashMap<&TaskId, RevokeOutcome> =
                    reports.iter().map(|r| (&r.task_id, r.outcome)).collect();
                let statuses = task_ids
                    .iter()
                    .map(|id| {
                        let status = outcomes
                            .get(id)
                            .map_or(RevokeStatus::Pending, |o| RevokeStatus::Done(*o));
                        (id.clone(), status)
                    })
                    .collect();
                self.deliveries.push(Delivery {
                    at: OffsetDateTime::now_utc(),
                    reports,
                });
                statuses
            }
            Err(err) => {
                tracing::warn!(error = %err, tasks = task_ids.len(), "revoke pending; the dispatcher will deliver it");
                task_ids
                    .iter()
                    .map(|id| (id.clone(), RevokeStatus::Pending))
                    .collect()
            }
        }
    }
}
