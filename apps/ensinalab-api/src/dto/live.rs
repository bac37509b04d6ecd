//! The live stream's items: what `GET /tasks/events` and `GET /tasks/ws` carry for one change.

use ensinalab_ports::{ChangeKind, TaskChange};
use serde::Serialize;
use utoipa::ToSchema;

use super::rfc3339;
use crate::ids::Hashids;

/// One event of `GET /tasks/events` as an SSE client reads it: the schema of the stream's items.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveEvent {
    /// `snapshot` or `change`.
    pub event: String,
    /// Send it back as `Last-Event-ID` to resume after this event.
    pub id: String,
    /// JSON on one line: the body of `GET /tasks/active` for a `snapshot`, a [`LiveChange`] for
    /// a `change`.
    pub data: String,
}

/// The `data` of a `change` event of `GET /tasks/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveChange {
    /// `created`, `started`, `progress`, `options_ready`, `completed`, `failed`,
    /// `pending_approval`, `cancelled`, `revoke` or `revoke_overdue`.
    pub change: &'static str,
    /// `briefing` or `video`.
    pub resource_type: &'static str,
    /// The resource's hash.
    pub resource_id: String,
    pub task_id: Option<String>,
    /// The resource's status after the change.
    pub status: &'static str,
    /// `0.0..=1.0`, videos only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Whether the job is still in its owner's `GET /tasks/active` after the change: a client
    /// keeps it while `true` and drops it on the first `false`.
    pub listed: bool,
    /// `cancelled` only: `user`, `user_all`, `timeout` or `revoked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// `revoke` only: what became of the kill, in the cancel responses' `revoke` words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke: Option<&'static str>,
    /// `revoke_overdue` only: `undelivered` or `still_running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<&'static str>,
    /// When the change was made (RFC 3339, UTC).
    pub at: String,
}

impl LiveChange {
    pub fn new(change: &TaskChange, ids: &Hashids) -> Self {
        let (mut reason, mut revoke, mut problem) = (None, None, None);
        match change.kind {
            ChangeKind::Cancelled(r) => reason = Some(r.as_str()),
            ChangeKind::Revoke(status) => revoke = Some(status.as_str()),
            ChangeKind::RevokeOverdue(p) => problem = Some(p.as_str()),
            ChangeKind::Created
            | ChangeKind::Started
            | ChangeKind::Progress
            | ChangeKind::OptionsReady
            | ChangeKind::Completed
            | ChangeKind::Failed
            | ChangeKind::PendingApproval => {}
        }
        Self {
            change: change.kind.as_str(),
            resource_type: change.resource.0.as_str(),
            resource_id: ids.encode(change.resource.1),
            task_id: change.task_id.as_ref().map(|t| t.as_str().to_owned()),
            status: change.status.as_str(),
            progress: change.progress,
            listed: change.status.is_listed(),
            reason,
            revoke,
            problem,
            at: rfc3339(change.at),
        }
    }
}
