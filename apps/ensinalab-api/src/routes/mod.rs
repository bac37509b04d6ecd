//! Routes. Each handler parses, calls one use case and maps the result; errors become
//! [`ApiError`] through `?`.

pub mod admin;
mod briefings;
mod dashboard;
mod health;
mod tasks;
mod videos;

pub use briefings::*;
pub use dashboard::*;
pub use health::*;
pub use tasks::*;
pub use videos::*;

use actix_web::error::JsonPayloadError;
use actix_web::{HttpRequest, web};
use ensinalab_app::Service;
use ensinalab_domain::DraftError;
use ensinalab_ports::{Store, TaskBroker};

use crate::error::{ApiError, ROUTE_NOT_FOUND};
use crate::probe::Probe;

/// The service as handlers receive it.
pub type Svc<S, B> = web::Data<Service<S, B>>;

/// Registers every route. Each resource answers other methods with a JSON 405.
pub fn configure<S, B>(cfg: &mut web::ServiceConfig)
where
    S: Store + Probe + 'static,
    B: TaskBroker + 'static,
{
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    // The cancel quota is the cancel resources' own: every request routed to one counts.
    let cancel = |path: &str| {
        resource(path).wrap(actix_web::middleware::from_fn(
            crate::ratelimit::enforce_cancel,
        ))
    };
    // HEAD too on the probes: some load balancers check with it.
    cfg.service(
        resource("/healthz")
            .route(web::get().to(healthz))
            .route(web::head().to(healthz)),
    )
    .service(
        resource("/readyz")
            .route(web::get().to(readyz::<S, B>))
            .route(web::head().to(readyz::<S, B>)),
    )
    .service(resource("/openapi.json").route(web::get().to(crate::openapi::openapi_json)))
    .service(resource("/").route(web::get().to(dashboard)))
    .service(resource("/dashboard.js").route(web::get().to(dashboard_js)))
    .service(resource("/dashboard.css").route(web::get().to(dashboard_css)))
    .service(resource("/favicon.ico").route(web::get().to(favicon)))
    .service(resource("/tasks/active").route(web::get().to(list_active::<S, B>)))
    .service(resource("/tasks/events").route(web::get().to(events::<S, B>)))
    .service(resource("/tasks/ws").route(web::get().to(events_ws::<S, B>)))
    .service(cancel("/tasks/cancel-all").route(web::post().to(cancel_all::<S, B>)))
    .service(resource("/tasks/{task_id}/status").route(web::get().to(task_status::<S, B>)))
    .service(resource("/briefings").route(web::post().to(create_briefing::<S, B>)))
    .service(resource("/briefings/{briefing_hash}").route(web::get().to(briefing::<S, B>)))
    .service(
        cancel("/briefings/{briefing_hash}/cancel-generation")
            .route(web::post().to(cancel_briefing::<S, B>)),
    )
    .service(resource("/options/{option_hash}/select").route(web::post().to(select_option::<S, B>)))
    .service(resource("/videos/{video_hash}/status").route(web::get().to(video_status::<S, B>)))
    .service(cancel("/videos/{video_hash}/cancel").route(web::post().to(cancel_video::<S, B>)))
    // Unknown-route 404 for every other method too: the route must not reveal itself.
    .service(
        web::resource("/admin/security-events")
            .route(web::get().to(admin::security_events::<S, B>))
            .default_service(web::to(not_found)),
    )
    .service(
        web::resource("/admin/stats")
            .route(web::get().to(admin::stats::<S, B>))
            .default_service(web::to(not_found)),
    );
}

/// Any route that does not exist.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(ROUTE_NOT_FOUND))
}

/// A route that exists, with another method.
pub async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Query strings: every failure as a JSON 400 naming the parameter.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req: &HttpRequest| {
        ApiError::BadRequest(format!("Parâmetro inválido: {err}")).into()
    })
}

/// JSON bodies: any content type (the seed's own `curl -d` example sends none), a size limit,
/// and every failure as a JSON 4xx.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(|err, _req: &HttpRequest| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::Unprocessable(format!("Corpo da requisição inválido: {e}"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("JSON malformado: {e}")),
        JsonPayloadError::ContentType => ApiError::BadRequest("Content-Type inválido".to_owned()),
        // `JsonPayloadError` is non-exhaustive: a payload read error or anything newer.
        other => ApiError::BadRequest(format!("Corpo da requisição inválido: {other}")),
    }
}

impl From<DraftError> for ApiError {
    fn from(err: DraftError) -> Self {
        Self::Unprocessable(match err {
            DraftError::EmptyTitle => "O título não pode ser vazio".to_owned(),
            DraftError::TitleTooLong { max } => {
                format!("O título deve ter no máximo {max} caracteres")
            }
            DraftError::DescriptionTooLong { max } => {
                format!("A descrição deve ter no máximo {max} caracteres")
            }
            DraftError::DurationOutOfRange { max } => {
                format!("duration_minutes deve estar entre 1 e {max}")
            }
            DraftError::ControlInTitle => {
                "O título não pode conter caracteres de controle".to_owned()
            }
            DraftError::ControlInDescription => {
                "A descrição não pode conter caracteres de controle (exceto quebra de linha e \
                 tabulação)"
                    .to_owned()
            }
        })
    }
}
