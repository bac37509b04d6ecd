//! The bodies of the three cancels.

use ensinalab_app::{Cancelled, CancelledAllReport};
use ensinalab_ports::{Briefing, Video};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::Hashids;

/// `POST /videos/{video_hash}/cancel`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelVideoResponse {
    pub video_id: String,
    /// `Vídeo cancelado com sucesso`.
    pub message: &'static str,
    /// Whether the task is known to be stopped or stopping.
    pub task_revoked: bool,
    /// `cancelled`.
    pub status: &'static str,
    /// Added: what the revoke achieved: `claimed`, `removed_from_queue`, `signalled`, `killed`,
    /// `no_worker_listening`, `already_finished`, `finished_first`, `no_task` or `pending` (the
    /// broker could not be reached; the cancel stands and the server delivers the revoke when
    /// it is back).
    pub revoke: &'static str,
}

impl CancelVideoResponse {
    /// From the use case's result.
    pub fn new(c: &Cancelled<Video>, ids: &Hashids) -> Self {
        Self {
            video_id: ids.encode(c.resource.id.get()),
            message: "Vídeo cancelado com sucesso",
            task_revoked: c.revoke.revoked(),
            status: c.resource.status.as_str(),
            revoke: c.revoke.as_str(),
        }
    }
}

/// `POST /briefings/{briefing_hash}/cancel-generation`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelBriefingResponse {
    pub briefing_id: String,
    /// `Geração de opções cancelada com sucesso`.
    pub message: &'static str,
    pub task_revoked: bool,
    pub status: &'static str,
    /// Added: as in [`CancelVideoResponse::revoke`].
    pub revoke: &'static str,
}

impl CancelBriefingResponse {
    /// From the use case's result.
    pub fn new(c: &Cancelled<Briefing>, ids: &Hashids) -> Self {
        Self {
            briefing_id: ids.encode(c.resource.id.get()),
            message: "Geração de opções cancelada com sucesso",
            task_revoked: c.revoke.revoked(),
            status: c.resource.status.as_str(),
            revoke: c.revoke.as_str(),
        }
    }
}

/// `POST /tasks/cancel-all`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelAllResponse {
    /// `5 tasks canceladas com sucesso`.
    pub message: String,
    pub cancelled: CancelledLists,
    /// Added: one entry per task id of the cancelled rows; `revoke` is `pending` for those the
    /// broker could not take yet (the cancels stand; the server delivers them later).
    pub revokes: Vec<RevokeItem>,
}

/// What cancel-all moved to `cancelled`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledLists {
    pub briefings: Vec<String>,
    pub videos: Vec<String>,
    pub total: usize,
}

/// The outcome of revoking one task.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeItem {
    pub task_id: String,
    pub revoke: &'static str,
    pub task_revoked: bool,
}

impl CancelAllResponse {
    /// From the use case's report.
    pub fn new(r: &CancelledAllReport, ids: &Hashids) -> Self {
        let total = r.total();
        Self {
            message: format!("{total} tasks canceladas com sucesso"),
            cancelled: CancelledLists {
                briefings: r.briefings.iter().map(|b| ids.encode(b.get())).collect(),
                videos: r.videos.iter().map(|v| ids.encode(v.get())).collect(),
                total,
            },
            revokes: r
                .revokes
                .iter()
                .map(|(task_id, status)| RevokeItem {
                    task_id: task_id.to_string(),
                    revoke: status.as_str(),
                    task_revoked: status.revoked(),
                })
                .collect(),
        }
    }
}
