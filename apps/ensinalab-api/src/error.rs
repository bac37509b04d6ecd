//! The one error type of the HTTP layer. Every use-case error converts into it with an
//! exhaustive match, and it renders as the seed's `{"detail": "..."}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use ensinalab_app::{
    AdminError, BriefingError, CancelAllError, CancelBriefingError, CancelVideoError,
    CreateJobError, ListActiveError, SelectOptionError, TaskStatusError, VideoStatusError,
};
use ensinalab_ports::{BoxError, BrokerError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// 404 bodies of the seed, one per kind of resource.
pub const VIDEO_NOT_FOUND: &str = "Vídeo não encontrado";
pub const BRIEFING_NOT_FOUND: &str = "Briefing não encontrado";
pub const OPTION_NOT_FOUND: &str = "Opção não encontrada";
pub const TASK_NOT_FOUND: &str = "Task não encontrada";
/// Detail of the unknown-route 404 (also what non-admins get from admin routes).
pub const ROUTE_NOT_FOUND: &str = "Rota não encontrada";

/// Every error body: `{"detail": "..."}`, as the seed shows them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"detail": "Vídeo não encontrado"}))]
pub struct ErrorBody {
    /// What went wrong, in Portuguese, for the user.
    pub detail: String,
}

/// Detail of every 401 (the same for a missing, malformed, expired or forged token, so a
/// prober learns nothing about why).
pub const UNAUTHORIZED: &str = "Não foi possível validar as credenciais";
const DB_DOWN: &str = "Banco de dados indisponível. Tente novamente em instantes";
const BROKER_DOWN: &str = "Fila de tarefas indisponível. Tente novamente em instantes";
const BROKER_PROTOCOL: &str = "Resposta inválida da fila de tarefas";
const INTERNAL: &str = "Erro interno do servidor";

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or invalid credentials (401 with `WWW-Authenticate: Bearer`).
    #[error("unauthorized")]
    Unauthorized,
    /// Missing, someone else's, or an undecodable id: one body per kind of resource.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A request the rules refuse, e.g. cancelling a finished video (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Well-formed JSON whose fields are missing, of the wrong type or out of range (422).
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    /// Body over the JSON limit (413).
    #[error("payload too large")]
    PayloadTooLarge { limit: usize },
    /// A known route with another method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request did not arrive whole within `REQUEST_TIMEOUT_SECS` (408).
    #[error("request timeout")]
    RequestTimeout,
    /// Over a rate limit (429 with `Retry-After`); the request had no effect.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The caller holds `max` jobs already (429, no `Retry-After`: it depends on them); nothing
    /// was created.
    #[error("too many jobs")]
    TooManyJobs { max: u32 },
    /// The caller holds `max` live streams on this server already (429, no `Retry-After`: it
    /// depends on them).
    #[error("too many live streams")]
    TooManyStreams { max: usize },
    /// This server holds `MAX_STREAMS` live streams already (503 with `Retry-After`: another
    /// server, or this one a little later, takes the stream).
    #[error("live streams full")]
    StreamsFull { retry_after_secs: u64 },
    /// The server is shutting down and opens no live stream (503).
    #[error("shutting down")]
    ShuttingDown,
    /// The database cannot be reached (503).
    #[error("database unavailable")]
    StoreUnavailable(#[source] BoxError),
    /// The task broker cannot be reached (503).
    #[error("task broker unavailable")]
    BrokerUnavailable(#[source] BoxError),
    /// The task broker answered nonsense (502).
    #[error("task broker protocol error: {0}")]
    BrokerProtocol(String),
    /// A bug or corrupt data (500, generic body; the cause is logged).
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } | Self::TooManyJobs { .. } | Self::TooManyStreams { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::StoreUnavailable(_)
            | Self::BrokerUnavailable(_)
            | Self::StreamsFull { .. }
            | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::BrokerProtocol(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = match self {
            Self::Unauthorized => UNAUTHORIZED.to_owned(),
            Self::NotFound(detail) => (*detail).to_owned(),
            Self::BadRequest(detail) | Self::Unprocessable(detail) => detail.clone(),
            Self::PayloadTooLarge { limit } => {
                format!("Corpo da requisição grande demais (limite: {limit} bytes)")
            }
            Self::MethodNotAllowed => "Método não permitido".to_owned(),
            Self::RequestTimeout => "Tempo esgotado ao receber a requisição".to_owned(),
            Self::RateLimited { retry_after_secs } => {
                format!("Muitas requisições. Tente novamente em {retry_after_secs} segundos")
            }
            Self::TooManyJobs { max } => format!(
                "Limite de {max} tarefas em andamento atingido. Cancele uma ou aguarde uma terminar"
            ),
            Self::TooManyStreams { max } => format!(
                "Limite de {max} conexões ao vivo abertas atingido. Feche uma aba ou aguarde"
            ),
            Self::StreamsFull { retry_after_secs } => format!(
                "O servidor atingiu o limite de conexões ao vivo. Tente novamente em {retry_after_secs} segundos"
            ),
            Self::ShuttingDown => {
                "O servidor está reiniciando. Tente novamente em instantes".to_owned()
            }
            Self::StoreUnavailable(_) => DB_DOWN.to_owned(),
            Self::BrokerUnavailable(_) => BROKER_DOWN.to_owned(),
            Self::BrokerProtocol(_) => BROKER_PROTOCOL.to_owned(),
            Self::Internal(_) => INTERNAL.to_owned(),
        };
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, cause = %chain(self), "request failed");
        }
        let mut response = HttpResponse::build(status);
        // Also set by the app's default headers, which an error raised outside them misses.
        response.insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if matches!(self, Self::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Self::RateLimited { retry_after_secs } | Self::StreamsFull { retry_after_secs } =
            self
        {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
        }
        response.json(ErrorBody { detail })
    }
}

/// The error and its sources, `a: b: c`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(source) => Self::StoreUnavailable(source),
            err @ (StoreError::Corrupt(_) | StoreError::Other(_)) => Self::Internal(err.into()),
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(err: BrokerError) -> Self {
        match err {
            BrokerError::Unavailable(source) => Self::BrokerUnavailable(source),
            BrokerError::Protocol(message) => Self::BrokerProtocol(message),
        }
    }
}

impl From<CancelVideoError> for ApiError {
    fn from(err: CancelVideoError) -> Self {
        match err {
            CancelVideoError::NotFound => Self::NotFound(VIDEO_NOT_FOUND),
            CancelVideoError::NotCancellable { status } => Self::BadRequest(format!(
                "Vídeo não pode ser cancelado. Status atual: {status}"
            )),
            CancelVideoError::Store(e) => e.into(),
        }
    }
}

impl From<CancelBriefingError> for ApiError {
    fn from(err: CancelBriefingError) -> Self {
        match err {
            CancelBriefingError::NotFound => Self::NotFound(BRIEFING_NOT_FOUND),
            CancelBriefingError::NotCancellable { status } => Self::BadRequest(format!(
                "Briefing não está sendo processado. Status atual: {status}"
            )),
            CancelBriefingError::Store(e) => e.into(),
        }
    }
}

impl From<CancelAllError> for ApiError {
    fn from(err: CancelAllError) -> Self {
        match err {
            CancelAllError::Store(e) => e.into(),
        }
    }
}

impl From<ListActiveError> for ApiError {
    fn from(err: ListActiveError) -> Self {
        match err {
            ListActiveError::Store(e) => e.into(),
        }
    }
}

impl From<TaskStatusError> for ApiError {
    fn from(err: TaskStatusError) -> Self {
        match err {
            TaskStatusError::NotFound => Self::NotFound(TASK_NOT_FOUND),
            TaskStatusError::Store(e) => e.into(),
            TaskStatusError::Broker(e) => e.into(),
        }
    }
}

impl From<CreateJobError> for ApiError {
    fn from(err: CreateJobError) -> Self {
        match err {
            CreateJobError::TooManyJobs { max } => Self::TooManyJobs { max },
            CreateJobError::Store(e) => e.into(),
            CreateJobError::Broker(e) => e.into(),
        }
    }
}

impl From<BriefingError> for ApiError {
    fn from(err: BriefingError) -> Self {
        match err {
            BriefingError::NotFound => Self::NotFound(BRIEFING_NOT_FOUND),
            BriefingError::Store(e) => e.into(),
        }
    }
}

impl From<SelectOptionError> for ApiError {
    fn from(err: SelectOptionError) -> Self {
        match err {
            SelectOptionError::NotFound => Self::NotFound(OPTION_NOT_FOUND),
            SelectOptionError::BriefingNotReady { status } => Self::BadRequest(format!(
                "Briefing não está pronto para gerar vídeo. Status atual: {status}"
            )),
            SelectOptionError::Create(e) => e.into(),
        }
    }
}

impl From<VideoStatusError> for ApiError {
    fn from(err: VideoStatusError) -> Self {
        match err {
            VideoStatusError::NotFound => Self::NotFound(VIDEO_NOT_FOUND),
            VideoStatusError::Store(e) => e.into(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            // To anyone but an admin the admin routes do not exist.
            AdminError::NotAdmin => Self::NotFound(ROUTE_NOT_FOUND),
            AdminError::DaysOutOfRange { max } => Self::BadRequest(format!(
                "Parâmetro inválido: days deve estar entre 1 e {max}"
            )),
            AdminError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ensinalab_domain::{BriefingStatus, VideoStatus};

    fn rendered(err: ApiError) -> (u16, serde_json::Value, Option<String>) {
        let res = err.error_response();
        let www = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = res.status().as_u16();
        let body = actix_web::body::to_bytes(res.into_body());
        let bytes = block_on(body).unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), www)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn use_case_errors_map_to_the_seeds_statuses_and_bodies() {
        let table: Vec<(ApiError, u16, &str)> = vec![
            (
                CancelVideoError::NotFound.into(),
                404,
                "Vídeo não encontrado",
            ),
            (
                CancelVideoError::NotCancellable {
                    status: VideoStatus::Completed,
                }
                .into(),
                400,
                "Vídeo não pode ser cancelado. Status atual: completed",
            ),
            (
                CancelBriefingError::NotFound.into(),
                404,
                "Briefing não encontrado",
            ),
            (
                CancelBriefingError::NotCancellable {
                    status: BriefingStatus::OptionsReady,
                }
                .into(),
                400,
                "Briefing não está sendo processado. Status atual: options_ready",
            ),
            (TaskStatusError::NotFound.into(), 404, "Task não encontrada"),
            (
                SelectOptionError::NotFound.into(),
                404,
                "Opção não encontrada",
            ),
            (
                StoreError::Unavailable("connection refused".into()).into(),
                503,
                DB_DOWN,
            ),
            (
                StoreError::Corrupt("bad status".into()).into(),
                500,
                INTERNAL,
            ),
            (
                BrokerError::Unavailable("connection refused".into()).into(),
                503,
                BROKER_DOWN,
            ),
            (
                BrokerError::Protocol("garbage".into()).into(),
                502,
                BROKER_PROTOCOL,
            ),
            (ApiError::MethodNotAllowed, 405, "Método não permitido"),
        ];
        for (err, status, detail) in table {
            let (got, body, _) = rendered(err);
            assert_eq!(got, status, "{detail}");
            assert_eq!(body, serde_json::json!({ "detail": detail }));
        }
    }

    #[test]
    fn a_401_carries_the_bearer_challenge() {
        let (status, body, www) = rendered(ApiError::Unauthorized);
        assert_eq!(status, 401);
        assert_eq!(body, serde_json::json!({ "detail": UNAUTHORIZED }));
        assert_eq!(www.as_deref(), Some("Bearer"));
    }
}
