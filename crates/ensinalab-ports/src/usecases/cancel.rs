//! Cancelling a video, a briefing's option generation, or everything a user has running.
//!
//! Order of a cancel: ownership, status, then the database transition together with the revoke
//! it owes (one transaction: see [`RevokeOutbox`](crate::RevokeOutbox)), then one attempt to
//! deliver that revoke, then the security event. The database moves first, in one guarded
//! update, so the user's intent is recorded even when the broker is down or slow, and a cancel
//! racing a completion ends in exactly one terminal state. If the revoke cannot be delivered
//! now, the cancel still stands and the revoke is *pending*: the response says
//! `task_revoked: false`, `revoke: "pending"`, and the server's dispatcher delivers it once the
//! broker answers. The reconciler never moves the row out of `cancelled` whatever the worker
//! reports later.

use std::collections::HashMap;
use std::sync::PoisonError;

use ensinalab_domain::{BriefingId, BriefingStatus, ResourceKind, TaskId, VideoId, VideoStatus};
use serde_json::json;

use super::Service;
use crate::broker::TaskBroker;
use crate::error::StoreError;
use crate::model::{Briefing, Caller, RevokeOutcome, SecurityEvent, Transition, Video};
use crate::repo::Store;

/// What became of the revoke that follows a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeStatus {
    /// The broker did this.
    Done(RevokeOutcome),
    /// The resource had no task id: nothing to revoke.
    NoTask,
    /// The broker could not be reached; the database says `cancelled` and holds the revoke,
    /// which the dispatcher delivers when the broker is back.
    Pending,
}

impl RevokeStatus {
    /// The seed's `task_revoked`.
    pub fn revoked(self) -> bool {
        matches!(self, Self::Done(o) if o.revoked())
    }

    /// The wire string of the added `revoke` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done(o) => o.as_str(),
            Self::NoTask => "no_task",
            Self::Pending => "pending",
        }
    }
}

/// A successful cancel: the row after the change and what the revoke achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled<T> {
    pub resource: T,
    pub revoke: RevokeStatus,
}

/// Why a video could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelVideoError {
    /// Missing, or someone else's (the same answer, so ids cannot be probed).
    #[error("video not found")]
    NotFound,
    /// Its status does not allow cancelling.
    #[error("video cannot be cancelled in status {status}")]
    NotCancellable { status: VideoStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a briefing's generation could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelBriefingError {
    /// Missing, or someone else's.
    #[error("briefing not found")]
    NotFound,
    /// Its status does not allow cancelling.
    #[error("briefing cannot be cancelled in status {status}")]
    NotCancellable { status: BriefingStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
        let resource = (ResourceKind::Video, id.get());
        match self.store.cancel_video(caller.user_id, id).await? {
            Transition::Done(video) => {
                let revoke = self.revoke_one(video.task_id.as_ref()).await;
                self.audit(
                    caller,
                    "video_cancelled",
                    resource,
                    video.task_id.clone(),
                    revoke,
                )
                .await?;
                Ok(Cancelled {
                    resource: video,
                    revoke,
                })
            }
            Transition::Refused(status) => {
                self.audit_refusal(caller, resource, "not_cancellable", Some(status.as_str()))
                    .await?;
                Err(CancelVideoError::NotCancellable { status })
            }
            refusal => {
                self.audit_refusal(caller, resource, missing(&refusal), None)
                    .await?;
                Err(CancelVideoError::NotFound)
            }
        }
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
        let resource = (ResourceKind::Briefing, id.get());
        match self.store.cancel_briefing(caller.user_id, id).await? {
            Transition::Done(briefing) => {
                let revoke = self.revoke_one(briefing.task_id.as_ref()).await;
                self.audit(
                    caller,
                    "briefing_cancelled",
                    resource,
                    briefing.task_id.clone(),
                    revoke,
                )
                .await?;
                Ok(Cancelled {
                    resource: briefing,
                    revoke,
                })
            }
            Transition::Refused(status) => {
                self.audit_refusal(caller, resource, "not_cancellable", Some(status.as_str()))
                    .await?;
                Err(CancelBriefingError::NotCancellable { status })
            }
            refusal => {
                self.audit_refusal(caller, resource, missing(&refusal), None)
                    .await?;
                Err(CancelBriefingError::NotFound)
            }
        }
    }

    /// Cancels every active briefing and video of the caller: one transaction (which also
    /// writes the security event), then one revoke call for all their tasks.
    ///
    /// # Errors
    /// [`CancelAllError`] when the transaction fails; nothing changed then.
    pub async fn cancel_all(&self, caller: &Caller) -> Result<CancelledAllReport, CancelAllError> {
        let cancelled = self.store.cancel_all(caller).await?;
        let task_ids: Vec<TaskId> = cancelled
            .briefings
            .iter()
            .filter_map(|(_, t)| t.clone())
            .chain(cancelled.videos.iter().filter_map(|(_, t)| t.clone()))
            .collect();
        let revokes = self.deliver_now(&task_ids).await;
        Ok(CancelledAllReport {
            briefings: cancelled.briefings.into_iter().map(|(id, _)| id).collect(),
            videos: cancelled.videos.into_iter().map(|(id, _)| id).collect(),
            revokes,
        })
    }

    async fn revoke_one(&self, task_id: Option<&TaskId>) -> RevokeStatus {
        let Some(task_id) = task_id else {
            return RevokeStatus::NoTask;
        };
        self.deliver_now(std::slice::from_ref(task_id))
            .await
            .pop()
            .map_or(RevokeStatus::Pending, |(_, status)| status)
    }

    /// One attempt to deliver the revokes a cancel just committed. On success the delivery is
    /// queued for [`Service::record_deliveries`], which marks the outbox after the response (an
    /// update of one row per task, longer than the cancel's own write; should it never happen,
    /// the dispatcher merely delivers them again once their grace is over: a revoke is
    /// idempotent).
    /// On failure they stay pending for the dispatcher.
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
                self.delivered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((time::OffsetDateTime::now_utc(), reports));
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

    async fn audit(
        &self,
        caller: &Caller,
        event: &str,
        resource: (ResourceKind, i64),
        task_id: Option<TaskId>,
        revoke: RevokeStatus,
    ) -> Result<(), StoreError> {
        self.store
            .record(&SecurityEvent {
                event: event.to_owned(),
                user_id: Some(caller.user_id),
                resource: Some(resource),
                task_id,
                outcome: "cancelled".to_owned(),
                client_ip: caller.client_ip.clone(),
                details: json!({ "revoked": revoke.revoked(), "revoke": revoke.as_str() }),
            })
            .await
    }

    async fn audit_refusal(
        &self,
        caller: &Caller,
        resource: (ResourceKind, i64),
        outcome: &str,
        status: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store
            .record(&SecurityEvent {
                event: "cancel_refused".to_owned(),
                user_id: Some(caller.user_id),
                resource: Some(resource),
                task_id: None,
                outcome: outcome.to_owned(),
                client_ip: caller.client_ip.clone(),
                details: status.map_or_else(|| json!({}), |s| json!({ "status": s })),
            })
            .await
    }
}

/// `not_owner` for someone else's resource (an attempt worth flagging), `not_found` otherwise.
fn missing<T, S>(refusal: &Transition<T, S>) -> &'static str {
    match refusal {
        Transition::NotOwned => "not_owner",
        _ => "not_found",
    }
}
