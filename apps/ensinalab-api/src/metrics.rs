//! The HTTP side of the metrics (`ensinalab-metrics`): the middleware that counts and times
//! every request by route template, and the separate listener that serves `GET /metrics`.
//!
//! The exposition has its own listener (`METRICS_ADDR`) so that the public port never serves
//! it, whatever a proxy forwards; it answers `/metrics` and a 404 to anything else.

use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{App, HttpResponse, HttpServer, web};
use ensinalab_metrics::{CONTENT_TYPE, Metrics, UNMATCHED_ROUTE};

/// Counts and times one request under its route template (`match_pattern`, set by routing),
/// [`UNMATCHED_ROUTE`] when no route matched: the label never holds the client's own path.
///
/// # Errors
/// Whatever the inner service returns (counted with the status it renders as).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(metrics) = req.app_data::<web::Data<Metrics>>().cloned() else {
        return next.call(req).await;
    };
    let started = Instant::now();
    let method = crate::client::method(req.method());
    // The request is read back from the response: a clone held across routing would keep the
    // router from writing the matched path.
    let res = next.call(req).await;
    let (route, status) = match &res {
        Ok(res) => (res.request().match_pattern(), res.status()),
        // An error no layer rendered carries no request: its route is unknown.
        Err(err) => (None, err.as_response_error().status_code()),
    };
    let route = route.unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    metrics.observe_request(route, method, status.as_u16(), started.elapsed());
    res
}

/// `GET /metrics`: every metric in the text exposition format.
async fn exposition(metrics: web::Data<Metrics>) -> HttpResponse {
    match metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
            .body(text),
        Err(err) => {
            tracing::error!(error = %err, "metrics could not be encoded");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The metrics listener, bound to `addr`, not yet running: its port and server. One worker:
/// a scrape every few seconds needs no more. It leaves signals to the API's server, which
/// stops it.
///
/// # Errors
/// When `addr` cannot be bound.
pub fn bind(addr: SocketAddr, metrics: Metrics) -> std::io::Result<(u16, Server)> {
    let listener = TcpListener::bind(addr)?;
    // Allowed (a Prometheus on another host needs it), never silent: the page has no login.
    if !addr.ip().is_loopback() {
        tracing::warn!(
            metrics_addr = %addr,
            "METRICS_ADDR is not a loopback address: anyone who reaches it reads /metrics \
             unauthenticated: jobs created, cancelled, finished and in flight, revokes, \
             requests and their durations per route and status, authentication failures and \
             rate-limit refusals, live streams, and the process's memory, CPU and open files"
        );
    }
    let port = listener.local_addr()?.port();
    let data = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(exposition))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((port, server))
}

/// Runs `count` on the app's metrics, if it has them (a refusal counted where it is decided).
pub fn count(req: &actix_web::HttpRequest, count: impl FnOnce(&Metrics)) {
    if let Some(metrics) = req.app_data::<web::Data<Metrics>>() {
        count(metrics);
    }
}
