//! The OpenAPI document, generated from the handlers' annotations, built once, served at
//! `/openapi.json` and checked against `docs/api.md` by a test. The admin routes are not in
//! it: to anyone but an admin they do not exist (docs/api.md documents them).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
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
        routes::events,
        routes::events_ws,
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
    ),
    components(schemas(
        ErrorBody,
        dto::ActiveTasksResponse,
        dto::ActiveTaskItem,
        dto::Summary,
        dto::ElapsedTime,
        dto::CeleryStatus,
        dto::LiveEvent,
        dto::LiveChange,
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
    )),
    modifiers(&BearerAuth, &RateLimited),
    tags(
        (name = "tasks", description = "The seed's monitoring and cancel-all routes"),
        (name = "videos", description = "Video status and cancel"),
        (name = "briefings", description = "The generation flow: briefing, options, video"),
        (name = "health", description = "Liveness and readiness, without authentication"),
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

/// A 429 on every limited operation (every one but the probes and this document), with the
/// headers it carries.
struct RateLimited;

impl Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let integer = || ObjectBuilder::new().schema_type(Type::Integer).build();
        let string = || ObjectBuilder::new().schema_type(Type::String).build();
        let response: RefOr<Response> = ResponseBuilder::new()
            .description(
                "Over a rate limit (`RATE_LIMIT_PER_MIN`, `CANCEL_RATE_LIMIT_PER_MIN`); the request \
                 had no effect",
            )
            .header("Retry-After", Header::new(integer()))
            .header(
                "RateLimit",
                HeaderBuilder::new()
                    .schema(string())
                    .description(Some("The refusing policy, e.g. `\"cancel\";r=0;t=42`"))
                    .build(),
            )
            .header(
                "RateLimit-Policy",
                HeaderBuilder::new()
                    .schema(string())
                    .description(Some("`\"general\";q=100;w=60, \"cancel\";q=10;w=60`"))
                    .build(),
            )
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .build()
            .into();
        for (path, item) in &mut openapi.paths.paths {
            if crate::ratelimit::EXEMPT.contains(&path.as_str()) {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .insert("429".to_owned(), response.clone());
            }
        }
    }
}

/// The document as served, built on first use.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"OpenAPI document not built: {e}\"}}"))
    })
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_built_once() {
        assert!(std::ptr::eq(document(), document()));
        assert!(document().starts_with('{'));
    }
}
