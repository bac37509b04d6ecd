//! The request deadline: from its head to the response's head, a request has
//! `REQUEST_TIMEOUT_SECS`, its body's upload included. A client that trickles its body (or
//! never finishes it) is answered 408 and let go, instead of holding a worker's slot.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::error::ApiError;

/// `REQUEST_TIMEOUT_SECS`, as app data.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline(pub Duration);

/// The middleware, outermost: everything inside it counts against the deadline.
///
/// # Errors
/// [`ApiError::RequestTimeout`] past the deadline (the server renders it as the 408; the
/// request itself cannot be kept for a response of our own, since routing needs it unshared);
/// otherwise whatever the inner service returns.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let deadline = req
        .app_data::<web::Data<RequestDeadline>>()
        .map_or(Duration::MAX, |d| d.0);
    match tokio::time::timeout(deadline, next.call(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!("request timed out");
            Err(ApiError::RequestTimeout.into())
        }
    }
}
