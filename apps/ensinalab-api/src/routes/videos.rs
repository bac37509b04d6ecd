//! Video routes: status and cancel.

use actix_web::{HttpResponse, web};
use ensinalab_ports::{Store, TaskBroker};

use super::Svc;
use crate::auth::Auth;
use crate::dto::{CancelVideoResponse, VideoResponse};
use crate::error::{ApiError, ErrorBody};
use crate::ids::Hashids;

/// A video of the caller.
#[utoipa::path(
    get, path = "/videos/{video_hash}/status", tag = "videos", security(("bearer" = [])),
    params(("video_hash" = String, Path, description = "Hash of the video")),
    responses(
        (status = 200, body = VideoResponse),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Vídeo não encontrado", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn video_status<S: Store, B: TaskBroker>(
    auth: Auth,
    path: web::Path<String>,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let video = svc.video_status(&auth.0, ids.video(&path)?).await?;
    Ok(HttpResponse::Ok().json(VideoResponse::new(&video, &ids)))
}

/// Cancels a video of the caller (queued, processing or pending_approval).
#[utoipa::path(
    post, path = "/videos/{video_hash}/cancel", tag = "videos", security(("bearer" = [])),
    params(("video_hash" = String, Path, description = "Hash of the video")),
    responses(
        (status = 200, body = CancelVideoResponse),
        (status = 400, description = "Vídeo não pode ser cancelado. Status atual: completed", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Vídeo não encontrado", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %auth.0.user_id))]
pub async fn cancel_video<S: Store, B: TaskBroker>(
    auth: Auth,
    path: web::Path<String>,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let cancelled = svc.cancel_video(&auth.0, ids.video(&path)?).await?;
    Ok(HttpResponse::Ok().json(CancelVideoResponse::new(&cancelled, &ids)))
}
