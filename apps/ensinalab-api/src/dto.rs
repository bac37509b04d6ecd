//! The JSON wire shapes. Field names, nesting and order follow the seed contract; fields the
//! seed does not have are additions only. Each converts by hand from a use-case result, with
//! keys turned into hashids here and nowhere else.

use ensinalab_app::{ActiveList, ActiveTask};
use ensinalab_domain::{BriefingDraft, CeleryState, DraftError, UserId};
use ensinalab_ports::{
    ActivePage, Briefing, BriefingOption, DEFAULT_ACTIVE_PAGE, MAX_ACTIVE_PAGE, TaskSnapshot, Video,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::ids::Hashids;

mod cancel;
mod live;
#[cfg(test)]
mod tests;

pub use cancel::{
    CancelAllResponse, CancelBriefingResponse, CancelVideoResponse, CancelledLists, RevokeItem,
};
pub use live::{LiveChange, LiveEvent};

/// RFC 3339 in UTC to the second, like the seed (`2025-11-13T10:30:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// `GET /tasks/active`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveTasksResponse {
    /// Every job the caller has in flight, on every page.
    pub total: u64,
    pub tasks: Vec<ActiveTaskItem>,
    /// Every page's counts, by kind.
    pub summary: Summary,
    /// Added: pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Added: `true` when the task broker could not be asked; every `celery_status.state` is
    /// then `UNKNOWN` and the list is the database's alone.
    pub celery_unavailable: bool,
}

/// Counts by kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub briefings: u64,
    pub videos: u64,
}

/// `GET /tasks/active`'s query: which page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivePageParams {
    /// Jobs per page, 1 to 500 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ActivePageParams {
    /// The page `user` asks for.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] for a limit out of range, or a cursor that is not one of
    /// `user`'s.
    pub fn page(&self, user: UserId, ids: &Hashids) -> Result<ActivePage, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_ACTIVE_PAGE);
        if !(1..=MAX_ACTIVE_PAGE).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "Parâmetro inválido: limit (de 1 a {MAX_ACTIVE_PAGE})"
            )));
        }
        let after = self
            .cursor
            .as_deref()
            .map(|c| ids.position(user, c))
            .transpose()?;
        Ok(ActivePage { limit, after })
    }
}

/// One running briefing or video.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveTaskItem {
    /// `briefing` or `video`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Same as `type`.
    pub resource_type: &'static str,
    /// The resource's hash.
    pub resource_id: String,
    pub title: String,
    /// Status in the database.
    pub status: &'static str,
    /// `0.0..=1.0`, videos only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    pub created_at: String,
    pub elapsed_time: ElapsedTime,
    /// `null` for rows made before tasks were tracked.
    pub task_id: Option<String>,
    pub celery_status: CeleryStatus,
    /// Videos only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_type: Option<String>,
    pub can_cancel: bool,
}

/// Time since creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ElapsedTime {
    pub seconds: u64,
    /// `45s`, `2m 25s`, `1h 2m 5s`.
    pub formatted: String,
    /// Over `TASK_TIME_LIMIT_SECS` (flag only: nothing is killed).
    pub is_stuck: bool,
}

/// A task's state in Celery's terms.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeleryStatus {
    /// `PENDING`, `STARTED`, `PROGRESS`, `SUCCESS`, `FAILURE`, `RETRY`, `REVOKED`, or `UNKNOWN`
    /// (added: the broker could not be asked, or the row has no task).
    pub state: String,
    pub ready: bool,
    pub successful: Option<bool>,
    pub failed: Option<bool>,
}

/// The state reported when it cannot be known.
pub const UNKNOWN_STATE: &str = "UNKNOWN";

impl CeleryStatus {
    fn of(state: &CeleryState) -> Self {
        Self {
            state: state.as_str().to_owned(),
            ready: state.ready(),
            successful: state.successful(),
            failed: state.failed(),
        }
    }

    fn unknown() -> Self {
        Self {
            state: UNKNOWN_STATE.to_owned(),
            ready: false,
            successful: None,
            failed: None,
        }
    }
}

impl ActiveTasksResponse {
    /// From the use case's page of `user`'s list.
    pub fn new(list: ActiveList, user: UserId, ids: &Hashids) -> Self {
        Self {
            total: list.briefings + list.videos,
            next_cursor: list.next.map(|at| ids.cursor(user, &at)),
            tasks: list
                .tasks
                .into_iter()
                .map(|t| ActiveTaskItem::new(t, ids))
                .collect(),
            summary: Summary {
                briefings: list.briefings,
                videos: list.videos,
            },
            celery_unavailable: list.celery_unavailable,
        }
    }
}

impl ActiveTaskItem {
    fn new(task: ActiveTask, ids: &Hashids) -> Self {
        let r = task.resource;
        let kind = r.status.kind().as_str();
        Self {
            kind,
            resource_type: kind,
            resource_id: ids.encode(r.id),
            title: r.title,
            status: r.status.as_str(),
            progress: r.progress,
            created_at: rfc3339(r.created_at),
            elapsed_time: ElapsedTime {
                seconds: task.elapsed.seconds,
                formatted: task.elapsed.formatted(),
                is_stuck: task.is_stuck,
            },
            task_id: r.task_id.map(String::from),
            celery_status: task
                .celery
                .map_or_else(CeleryStatus::unknown, |state| CeleryStatus::of(&state)),
            generator_type: r.generator_type,
            can_cancel: task.can_cancel,
        }
    }
}

/// `GET /tasks/{task_id}/status`. Which of `info`, `result`, `error`, `traceback` appear
/// depends on the state, as in the seed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskStatusResponse {
    pub task_id: String,
    pub state: String,
    pub ready: bool,
    pub successful: Option<bool>,
    pub failed: Option<bool>,
    /// Running states: the task's meta (e.g. `{"current": 50, "total": 100}`, or `null`);
    /// REVOKED: `"Task foi cancelada"` (a string: any JSON value, as the seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub info: Option<serde_json::Value>,
    /// SUCCESS: the task's return value (any JSON value a task may return).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub result: Option<serde_json::Value>,
    /// FAILURE and RETRY: `"ConnectionError: Failed to connect to OpenAI API"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// FAILURE and RETRY, tokens with `"role": "admin"` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// What the seed says of a revoked task.
pub const REVOKED_INFO: &str = "Task foi cancelada";

impl From<TaskSnapshot> for TaskStatusResponse {
    fn from(s: TaskSnapshot) -> Self {
        let status = CeleryStatus::of(&s.state);
        let (info, result, error, traceback) = match s.state {
            CeleryState::Success => (None, Some(s.info.unwrap_or_default()), None, None),
            CeleryState::Failure | CeleryState::Retry => (None, None, s.error, s.traceback),
            CeleryState::Revoked => (Some(REVOKED_INFO.into()), None, None, None),
            CeleryState::Pending
            | CeleryState::Received
            | CeleryState::Started
            | CeleryState::Rejected
            | CeleryState::Custom(_) => (Some(s.info.unwrap_or_default()), None, None, None),
        };
        Self {
            task_id: s.task_id.to_string(),
            state: status.state,
            ready: status.ready,
            successful: status.successful,
            failed: status.failed,
            info,
            result,
            error,
            traceback,
        }
    }
}

/// `POST /briefings`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateBriefingRequest {
    /// 1 to 200 characters (trimmed).
    pub title: String,
    /// Up to 5000 characters; missing or `null` is empty.
    #[serde(default)]
    pub description: Option<String>,
    /// 1 to 180.
    pub duration_minutes: i64,
}

impl CreateBriefingRequest {
    /// The validated draft.
    ///
    /// # Errors
    /// [`DraftError`] naming the field at fault.
    pub fn draft(&self) -> Result<BriefingDraft, DraftError> {
        let description = self.description.as_deref().unwrap_or_default();
        BriefingDraft::new(&self.title, description, self.duration_minutes)
    }
}

/// A briefing with its options (`POST /briefings`, `GET /briefings/{briefing_hash}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct BriefingResponse {
    pub briefing_id: String,
    pub title: String,
    pub description: String,
    pub duration_minutes: u32,
    /// `processing`, `generating_options`, `options_ready`, `completed`, `failed`, `cancelled`.
    pub status: &'static str,
    /// The option-generation task.
    pub task_id: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Empty until `options_ready`.
    pub options: Vec<OptionItem>,
}

/// A generated option.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptionItem {
    /// Hash to pass to `POST /options/{option_hash}/select`.
    pub option_id: String,
    pub title: String,
    pub description: String,
    pub generator_type: String,
    pub created_at: String,
}

impl BriefingResponse {
    /// From a briefing and its options.
    pub fn new(b: &Briefing, options: &[BriefingOption], ids: &Hashids) -> Self {
        Self {
            briefing_id: ids.encode(b.id.get()),
            title: b.title.clone(),
            description: b.description.clone(),
            duration_minutes: b.duration_minutes,
            status: b.status.as_str(),
            task_id: b.task_id.as_ref().map(ToString::to_string),
            error_message: b.error_message.clone(),
            created_at: rfc3339(b.created_at),
            updated_at: rfc3339(b.updated_at),
            options: options
                .iter()
                .map(|o| OptionItem {
                    option_id: ids.encode(o.id.get()),
                    title: o.title.clone(),
                    description: o.description.clone(),
                    generator_type: o.generator_type.clone(),
                    created_at: rfc3339(o.created_at),
                })
                .collect(),
        }
    }
}

/// A video (`POST /options/{option_hash}/select`, `GET /videos/{video_hash}/status`).
#[derive(Debug, Serialize, ToSchema)]
pub struct VideoResponse {
    pub video_id: String,
    pub briefing_id: String,
    pub option_id: String,
    pub title: String,
    pub generator_type: String,
    /// `queued`, `processing`, `pending_approval`, `completed`, `failed`, `cancelled`.
    pub status: &'static str,
    /// `0.0..=1.0`.
    pub progress: f64,
    /// `Cancelado pelo usuário` after a cancel.
    pub error_message: Option<String>,
    pub task_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl VideoResponse {
    /// From a video row.
    pub fn new(v: &Video, ids: &Hashids) -> Self {
        Self {
            video_id: ids.encode(v.id.get()),
            briefing_id: ids.encode(v.briefing_id.get()),
            option_id: ids.encode(v.option_id.get()),
            title: v.title.clone(),
            generator_type: v.generator_type.clone(),
            status: v.status.as_str(),
            progress: v.progress,
            error_message: v.error_message.clone(),
            task_id: v.task_id.as_ref().map(ToString::to_string),
            created_at: rfc3339(v.created_at),
            updated_at: rfc3339(v.updated_at),
        }
    }
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`.
    pub status: &'static str,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ok`, or `unavailable` (503).
    pub status: &'static str,
    /// `ok` or `unavailable`.
    pub database: &'static str,
    /// `ok` or `unavailable`.
    pub broker: &'static str,
    /// Present on 503: which dependency is down, in Portuguese.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
