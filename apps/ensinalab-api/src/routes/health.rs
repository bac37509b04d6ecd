//! Liveness and readiness (no authentication).

use std::time::Duration;

use actix_web::HttpResponse;
use ensinalab_ports::{Store, TaskBroker};

use super::Svc;
use crate::dto::{HealthResponse, ReadyResponse};
use crate::probe::Probe;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse { status: "ok" })
}

/// The database and the task broker both answer; 503 names which does not.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses((status = 200, body = ReadyResponse), (status = 503, body = ReadyResponse))
)]
pub async fn readyz<S: Store + Probe, B: TaskBroker>(svc: Svc<S, B>) -> HttpResponse {
    let (db, broker) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, svc.store().probe()),
        tokio::time::timeout(PROBE_TIMEOUT, svc.broker().ping()),
    );
    let db_ok = matches!(db, Ok(Ok(())));
    let broker_ok = matches!(broker, Ok(Ok(())));
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let detail = match (db_ok, broker_ok) {
        (true, true) => None,
        (false, true) => Some("Banco de dados indisponível"),
        (true, false) => Some("Fila de tarefas indisponível"),
        (false, false) => Some("Banco de dados e fila de tarefas indisponíveis"),
    };
    let body = ReadyResponse {
        status: word(detail.is_none()),
        database: word(db_ok),
        broker: word(broker_ok),
        detail: detail.map(str::to_owned),
    };
    if detail.is_none() {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(database = body.database, broker = body.broker, "not ready");
        HttpResponse::ServiceUnavailable().json(body)
    }
}
