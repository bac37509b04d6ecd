//! Rate limits on every route but the probes and the OpenAPI document: `RATE_LIMIT_PER_MIN` per
//! user (the token's `sub`), or per client IP for a request without a valid token (a bound on
//! token guessing), and `CANCEL_RATE_LIMIT_PER_MIN` on the three cancel routes on top of it,
//! counted by a middleware on those routes themselves (`routes::configure`), not by matching
//! path text, so no spelling of a path reaches a cancel without it.
//!
//! A refused request never reaches its handler (it has no effect), gets a 429 with
//! `Retry-After`, and writes a `rate_limited` security event, at most one per key, policy and
//! window, so a flood cannot fill the table. Every limited response carries the IETF fields
//! `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers) so clients can pace
//! themselves.
//!
//! When the limiter cannot answer (Redis down), requests are let through (fail open) with a
//! warning at most every 10 s: a limiter outage must not become an API outage, and the
//! database, not Redis, is what protects the data.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, ResponseError, web};
use ensinalab_domain::UserId;
use ensinalab_ports::{
    EventOutcome, RateDecision, RateLimitError, RateLimiter, RatePolicy, SecurityEvent,
    SecurityEventKind,
};
use ensinalab_ratelimit::{InProcessLimiter, RedisLimiter};

use crate::auth::{Authenticator, bearer_token};
use crate::config::{RateLimitBackend, RateLimitConfig};
use crate::error::ApiError;
use ensinalab_app::SecurityTrail;

/// Every quota counts per minute.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Routes never limited: load balancers and monitoring poll the probes, and the dashboard's page
/// and assets carry no data, yet a school behind one NAT loads them anonymously from one address.
pub const EXEMPT: [&str; 7] = [
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/",
    "/dashboard.js",
    "/dashboard.css",
    "/favicon.ico",
];
/// `RateLimit-Policy` header.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` header.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// How often a limiter outage is logged.
const OUTAGE_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The limiter chosen by `RATE_LIMIT_BACKEND`.
pub enum Limiter {
    Memory(InProcessLimiter),
    Redis(RedisLimiter),
}

impl Limiter {
    /// From the configuration; Redis is connected on first use.
    ///
    /// # Errors
    /// [`RateLimitError`] for an unusable Redis URL.
    pub fn new(backend: &RateLimitBackend) -> Result<Self, RateLimitError> {
        Ok(match backend {
            RateLimitBackend::Memory => Self::Memory(InProcessLimiter::default()),
            RateLimitBackend::Redis { url, prefix } => {
                Self::Redis(RedisLimiter::lazy(url, prefix)?)
            }
        })
    }

    async fn check(&self, policy: &RatePolicy, key: &str) -> Result<RateDecision, RateLimitError> {
        match self {
            Self::Memory(l) => l.check(policy, key).await,
            Self::Redis(l) => l.check(policy, key).await,
        }
    }
}

/// The quotas and their limiter, shared by every worker of the server.
pub struct RateLimits {
    limiter: Limiter,
    general: RatePolicy,
    cancel: RatePolicy,
    /// One `rate_limited` row per key and policy per window: the bound on the trail itself.
    event: RatePolicy,
    policy_header: HeaderValue,
    last_outage_warning: Mutex<Option<Instant>>,
}

impl RateLimits {
    /// From the configuration.
    ///
    /// # Errors
    /// [`RateLimitError`] for an unusable Redis URL.
    pub fn new(config: &RateLimitConfig) -> Result<Self, RateLimitError> {
        let policy = |name, quota| RatePolicy {
            name,
            quota,
            window: WINDOW,
        };
        let general = policy("general", config.per_min);
        let cancel = policy("cancel", config.cancel_per_min);
        let policy_header = HeaderValue::from_str(&format!(
            "{}, {}",
            policy_item(&general),
            policy_item(&cancel)
        ))
        .map_err(|e| RateLimitError(Box::new(e)))?;
        Ok(Self {
            limiter: Limiter::new(&config.backend)?,
            general,
            cancel,
            event: policy("rate_limited_event", 1),
            policy_header,
            last_outage_warning: Mutex::new(None),
        })
    }

    fn outage(&self, err: &RateLimitError) {
        let mut last = self
            .last_outage_warning
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= OUTAGE_WARNING_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(error = %err, cause = ?std::error::Error::source(err), "rate limiter unavailable; requests are not limited meanwhile");
        }
    }
}

fn policy_item(p: &RatePolicy) -> String {
    format!("\"{}\";q={};w={}", p.name, p.quota, p.window.as_secs())
}

fn limit_item(name: &str, d: &RateDecision) -> String {
    format!(
        "\"{name}\";r={};t={}",
        d.remaining,
        ceil_secs(d.reset_after)
    )
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The key of a request without a valid token. An IPv6 client is counted by its /64, the
/// smallest block a single subscriber usually gets: per address, rotating through its own
/// block would reset the limit at will.
pub fn ip_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("ip:{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        None => "ip:unknown".to_owned(),
    }
}

/// Who a request counts against: its verified user, or else its client address.
#[derive(Debug, Clone)]
struct RateKey {
    key: String,
    user: Option<UserId>,
}

/// The general quota, over the whole app (the routes of [`EXEMPT`] exempt). It also
/// verifies the token once and leaves the identity for the `Auth` extractor, and the key for
/// [`enforce_cancel`].
///
/// # Errors
/// Whatever the inner service returns.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limits = req.app_data::<web::Data<RateLimits>>().cloned();
    let Some(limits) = limits.filter(|_| !EXEMPT.contains(&req.path())) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let identity = req
        .app_data::<web::Data<Authenticator>>()
        .zip(bearer_token(req.headers()))
        .and_then(|(auth, token)| auth.verify(token).ok());
    if let Some(identity) = identity {
        // The `Auth` extractor takes it from here instead of verifying the token again.
        req.extensions_mut().insert(identity);
    }
    let user = identity.map(|identity| identity.user_id);
    let key = RateKey {
        key: match user {
            Some(user) => format!("user:{}", user.get()),
            None => ip_key(crate::client::ip(req.request())),
        },
        user,
    };
    let counted = match check(&limits, &req, &limits.general, &key).await {
        Ok(counted) => counted,
        Err(refused) => return Ok(req.into_response(refused).map_into_right_body()),
    };
    req.extensions_mut().insert(key);
    let mut res = next.call(req).await?;
    if res.status() == StatusCode::TOO_MANY_REQUESTS && res.headers().contains_key(&RATELIMIT) {
        // An inner quota refused it: its answer names the refusing policy only.
        return Ok(res.map_into_left_body());
    }
    let headers = res.headers_mut();
    headers.insert(RATELIMIT_POLICY.clone(), limits.policy_header.clone());
    // An inner quota (the cancel one) may have said where it stands: the general one comes first.
    let items = match (
        counted,
        headers.get(&RATELIMIT).and_then(|v| v.to_str().ok()),
    ) {
        (Some(general), Some(inner)) => Some(format!("{general}, {inner}")),
        (Some(general), None) => Some(general),
        (None, inner) => inner.map(str::to_owned),
    };
    if let Some(v) = items.and_then(|items| HeaderValue::from_str(&items).ok()) {
        headers.insert(RATELIMIT.clone(), v);
    }
    Ok(res.map_into_left_body())
}

/// The cancel quota, on top of the general one. Wrapped around the three cancel resources
/// themselves, so it counts every request the router sends to a cancel, whatever spelling of
/// the path got it there (percent-encoded, doubled slashes, ...).
///
/// # Errors
/// Whatever the inner service returns.
pub async fn enforce_cancel(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limits = req.app_data::<web::Data<RateLimits>>().cloned();
    let key = req.extensions().get::<RateKey>().cloned();
    // Another method on a cancel resource is a 405 that cancels nothing.
    let (Some(limits), Some(key), true) = (limits, key, req.method() == Method::POST) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let counted = match check(&limits, &req, &limits.cancel, &key).await {
        Ok(counted) => counted,
        Err(refused) => return Ok(req.into_response(refused).map_into_right_body()),
    };
    let mut res = next.call(req).await?;
    if let Some(v) = counted.and_then(|item| HeaderValue::from_str(&item).ok()) {
        res.headers_mut().insert(RATELIMIT.clone(), v);
    }
    Ok(res.map_into_left_body())
}

/// Counts the request against `policy`: its `RateLimit` item when allowed (`None` when the
/// limiter could not answer and the request is let through), or the whole 429 when refused.
async fn check(
    limits: &RateLimits,
    req: &ServiceRequest,
    policy: &RatePolicy,
    key: &RateKey,
) -> Result<Option<String>, actix_web::HttpResponse> {
    match limits.limiter.check(policy, &key.key).await {
        Ok(decision) if decision.allowed => Ok(Some(limit_item(policy.name, &decision))),
        Ok(decision) => {
            let retry_after = decision.retry_after.map_or(1, ceil_secs).max(1);
            crate::metrics::count(req.request(), |m| m.rate_limited(policy.name));
            record_refusal(limits, req, policy, key, retry_after).await;
            let mut res = ApiError::RateLimited {
                retry_after_secs: retry_after,
            }
            .error_response();
            let headers = res.headers_mut();
            headers.insert(RATELIMIT_POLICY.clone(), limits.policy_header.clone());
            if let Ok(v) = HeaderValue::from_str(&limit_item(policy.name, &decision)) {
                headers.insert(RATELIMIT.clone(), v);
            }
            Err(res)
        }
        Err(err) => {
            limits.outage(&err);
            Ok(None)
        }
    }
}

/// The `rate_limited` event, unless this key already has one for this policy in the window.
async fn record_refusal(
    limits: &RateLimits,
    req: &ServiceRequest,
    policy: &RatePolicy,
    key: &RateKey,
    retry_after: u64,
) {
    let first_in_window = limits
        .limiter
        .check(&limits.event, &format!("{}:{}", policy.name, key.key))
        .await
        .is_ok_and(|d| d.allowed);
    let route = crate::client::route(req.request());
    if !first_in_window {
        tracing::debug!(
            policy = policy.name,
            key = key.key,
            route,
            "rate limited (already in the trail this window)"
        );
        return;
    }
    let Some(trail) = req.app_data::<web::Data<SecurityTrail>>() else {
        return;
    };
    trail.record(SecurityEvent {
        event: SecurityEventKind::RateLimited,
        user_id: key.user,
        resource: None,
        task_id: None,
        outcome: EventOutcome::Refused,
        client_ip: crate::client::ip(req.request()).map(|ip| ip.to_string()),
        details: serde_json::json!({
            "policy": policy.name,
            "method": crate::client::method(req.method()),
            "route": route,
            "retry_after_secs": retry_after,
        }),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_clients_are_keyed_by_ipv4_address_or_ipv6_64() {
        let table = [
            ("203.0.113.7", "ip:203.0.113.7"),
            ("::ffff:203.0.113.7", "ip:203.0.113.7"),
            ("2001:db8:1:2:aaaa::1", "ip:2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "ip:2001:db8:1:2::/64"),
            ("::1", "ip:0:0:0:0::/64"),
        ];
        for (ip, key) in table {
            assert_eq!(ip_key(Some(ip.parse().unwrap())), key, "{ip}");
        }
        assert_eq!(ip_key(None), "ip:unknown");
    }

    #[test]
    fn headers_follow_the_ietf_draft_syntax() {
        let limits = RateLimits::new(&RateLimitConfig {
            per_min: 100,
            cancel_per_min: 10,
            backend: RateLimitBackend::Memory,
        })
        .unwrap();
        assert_eq!(
            limits.policy_header,
            "\"general\";q=100;w=60, \"cancel\";q=10;w=60"
        );
        let d = RateDecision {
            allowed: false,
            remaining: 0,
            reset_after: Duration::from_millis(41_200),
            retry_after: Some(Duration::from_secs(5)),
        };
        assert_eq!(limit_item("cancel", &d), "\"cancel\";r=0;t=42");
    }
}
