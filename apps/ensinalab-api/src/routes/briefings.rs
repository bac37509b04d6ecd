//! Briefing and option routes: create, read, cancel the option generation, select an option.

use actix_web::{HttpResponse, web};
use ensinalab_ports::{Store, TaskBroker};

use super::Svc;
use crate::auth::Auth;
use crate::dto::{BriefingResponse, CancelBriefingResponse, CreateBriefingRequest, VideoResponse};
use crate::error::{ApiError, ErrorBody};
use crate::ids::Hashids;

/// Stores a briefing and starts generating its options.
#[utoipa::path(
    post, path = "/briefings", tag = "briefings", security(("bearer" = [])),
    request_body = CreateBriefingRequest,
    responses(
        (status = 201, body = BriefingResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Missing field, wrong type or value out of range", body = ErrorBody),
        (status = 503, description = "Database or task broker unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn create_briefing<S: Store, B: TaskBroker>(
    auth: Auth,
    body: web::Json<CreateBriefingRequest>,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let briefing = svc.create_briefing(&auth.0, &body.draft()?).await?;
    Ok(HttpResponse::Created().json(BriefingResponse::new(&briefing, &[], &ids)))
}

/// A briefing of the caller with its options.
#[utoipa::path(
    get, path = "/briefings/{briefing_hash}", tag = "briefings", security(("bearer" = [])),
    params(("briefing_hash" = String, Path, description = "Hash of the briefing")),
    responses(
        (status = 200, body = BriefingResponse),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Briefing não encontrado", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn briefing<S: Store, B: TaskBroker>(
    auth: Auth,
    path: web::Path<String>,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let (briefing, options) = svc.briefing(&auth.0, ids.briefing(&path)?).await?;
    Ok(HttpResponse::Ok().json(BriefingResponse::new(&briefing, &options, &ids)))
}

/// Cancels the option generation of a briefing of the caller.
#[utoipa::path(
    post, path = "/briefings/{briefing_hash}/cancel-generation", tag = "briefings",
    security(("bearer" = [])),
    params(("briefing_hash" = String, Path, description = "Hash of the briefing")),
    responses(
        (status = 200, body = CancelBriefingResponse),
        (status = 400, description = "Briefing não está sendo processado. Status atual: options_ready", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Briefing não encontrado", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn cancel_briefing<S: Store, B: TaskBroker>(
    auth: Auth,
    path: web::Path<String>,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let cancelled = svc.cancel_briefing(&auth.0, ids.briefing(&path)?).await?;
    Ok(HttpResponse::Ok().json(CancelBriefingResponse::new(&cancelled, &ids)))
}

/// Creates a queued video from an option and starts generating it (also the way to retry
/// after a cancel).
#[utoipa::path(
    post, path = "/options/{option_hash}/select", tag = "briefings", security(("bearer" = [])),
    params(("option_hash" = String, Path, description = "Hash of the option")),
    responses(
        (status = 202, body = VideoResponse),
        (status = 400, description = "Briefing não está pronto para gerar vídeo. Status atual: processing", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Opção não encontrada", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn select_option<S: Store, B: TaskBroker>(
    auth: Auth,
    path: web::Path<String>,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let video = svc.select_option(&auth.0, ids.option(&path)?).await?;
    Ok(HttpResponse::Accepted().json(VideoResponse::new(&video, &ids)))
}
