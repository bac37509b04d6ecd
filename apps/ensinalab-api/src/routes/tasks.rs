//! The seed's task routes (the active list, one task's status, cancel-all) and the live
//! stream of their changes.

use actix_web::{HttpRequest, HttpResponse, web};
use ensinalab_domain::TaskId;
use ensinalab_ports::{Store, TaskBroker};

use super::Svc;
use crate::auth::{Auth, Authenticator, Session};
use crate::dto::{
    ActivePageParams, ActiveTasksResponse, CancelAllResponse, LiveEvent, TaskStatusResponse,
};
use crate::error::TASK_NOT_FOUND;
use crate::error::{ApiError, ErrorBody};
use crate::ids::Hashids;
use crate::live::{LastEventId, LiveStreams};

/// A page of the caller's running briefings and videos with their Celery states, newest
/// first; `total` and `summary` count every page.
#[utoipa::path(
    get, path = "/tasks/active", tag = "tasks", security(("bearer" = [])),
    params(ActivePageParams),
    responses(
        (status = 200, body = ActiveTasksResponse),
        (status = 400, description = "Parâmetro inválido: limit, or a cursor that is not the caller's", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn list_active<S: Store, B: TaskBroker>(
    auth: Auth,
    query: web::Query<ActivePageParams>,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let (caller, page) = (&auth.0, query.page(auth.0.user_id, &ids)?);
    let list = svc
        .list_active(caller, &page, time::OffsetDateTime::now_utc())
        .await?;
    Ok(HttpResponse::Ok().json(ActiveTasksResponse::new(list, caller.user_id, &ids)))
}

/// One task's Celery state; only for a task of one of the caller's briefings or videos.
#[utoipa::path(
    get, path = "/tasks/{task_id}/status", tag = "tasks", security(("bearer" = [])),
    params(("task_id" = String, Path, description = "Celery task id (UUID)")),
    responses(
        (status = 200, body = TaskStatusResponse),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Task não encontrada (also someone else's task)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn task_status<S: Store, B: TaskBroker>(
    auth: Auth,
    path: web::Path<String>,
    svc: Svc<S, B>,
) -> Result<HttpResponse, ApiError> {
    let task_id = TaskId::parse(&path).map_err(|_| ApiError::NotFound(TASK_NOT_FOUND))?;
    let snapshot = svc.task_status(&auth.0, &task_id).await?;
    Ok(HttpResponse::Ok().json(TaskStatusResponse::from(snapshot)))
}

/// Cancels every running briefing and video of the caller.
#[utoipa::path(
    post, path = "/tasks/cancel-all", tag = "tasks", security(("bearer" = [])),
    responses(
        (status = 200, body = CancelAllResponse),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn cancel_all<S: Store, B: TaskBroker>(
    auth: Auth,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let report = svc.cancel_all(&auth.0).await?;
    Ok(HttpResponse::Ok().json(CancelAllResponse::new(&report, &ids)))
}

/// The caller's live stream of task changes (Server-Sent Events): first a `snapshot` (the body
/// of `GET /tasks/active`), then a `change` per change of one of the caller's jobs.
#[utoipa::path(
    get, path = "/tasks/events", tag = "tasks", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "The last event's id: resume after it")),
    responses(
        (status = 200, description = "`text/event-stream`: `snapshot`, then `change` events (data: LiveChange)", content_type = "text/event-stream", body = LiveEvent),
        (status = 401, body = ErrorBody),
        (status = 429, description = "MAX_STREAMS_PER_USER streams open already, or a rate limit", body = ErrorBody),
        (status = 503, description = "MAX_STREAMS streams open on this server (with `Retry-After`), shutting down, or the database unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %session.caller.user_id))]
pub async fn events<S: Store + 'static, B: TaskBroker + 'static>(
    session: Session,
    last: LastEventId,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
    live: web::Data<LiveStreams>,
) -> Result<HttpResponse, ApiError> {
    live.sse(session, last, svc, ids).await
}

/// The WebSocket twin of `GET /tasks/events`. The client's first message, within 10 s, is
/// `{"token": "<JWT>"}` (optionally with `"last_event_id"`); then each server message is one JSON
/// object, `{"event": "snapshot" | "change", "id": …, "data": …}` with the same data as the SSE
/// events, and a ping frame every `LIVE_HEARTBEAT_SECS`. Close codes: 4401 missing, bad or
/// expired token; 4408 no token within 10 s; 4429 over `MAX_STREAMS_PER_USER`; 1013 over
/// `MAX_STREAMS` or a client that did not read; 1001 at shutdown.
#[utoipa::path(
    get, path = "/tasks/ws", tag = "tasks",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody),
        (status = 429, description = "A rate limit (the upgrade carries no token: the per-address quota)", body = ErrorBody),
    )
)]
pub async fn events_ws<S: Store + 'static, B: TaskBroker + 'static>(
    req: HttpRequest,
    body: web::Payload,
    (svc, ids, auth): (Svc<S, B>, web::Data<Hashids>, web::Data<Authenticator>),
    live: web::Data<LiveStreams>,
) -> Result<HttpResponse, ApiError> {
    live.ws(req, body, svc, ids, auth)
}
