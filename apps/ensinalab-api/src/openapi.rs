//! The OpenAPI document, generated from the handlers' annotations; served at `/openapi.json`
//! and checked against `docs/api.md` by a test.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::error::ErrorBody;
use crate::routes;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "EnsinaLab task control",
        description = "Monitor and cancel briefing and video generation tasks. Ids are hashids; \
                       errors are `{\"detail\": \"...\"}`."
    ),
    paths(
        routes::list_active,
        routes::task_status,
        routes::cancel_all,
        routes::cancel_video,
        routes::video_status,
        routes::create_briefing,
        routes::briefing,
        routes::cancel_briefing,
        routes::select_option,
        routes::healthz,
        routes::readyz,
        routes::admin::security_events,
    ),
    components(schemas(
        ErrorBody,
        dto::ActiveTasksResponse,
        dto::ActiveTaskItem,
        dto::Summary,
        dto::ElapsedTime,
        dto::CeleryStatus,
        dto::TaskStatusResponse,
        dto::CancelVideoResponse,
        dto::CancelBriefingResponse,
        dto::CancelAllResponse,
        dto::CancelledLists,
        dto::RevokeItem,
        dto::CreateBriefingRequest,
        dto::BriefingResponse,
        dto::OptionItem,
        dto::VideoResponse,
        dto::HealthResponse,
        dto::ReadyResponse,
        routes::admin::SecurityEventsResponse,
        routes::admin::SecurityEventItem,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "tasks", description = "The seed's monitoring and cancel-all routes"),
        (name = "videos", description = "Video status and cancel"),
        (name = "briefings", description = "The generation flow: briefing, options, video"),
        (name = "health", description = "Liveness and readiness, without authentication"),
        (name = "admin", description = "Admin tokens only; a 404 to anyone else"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
