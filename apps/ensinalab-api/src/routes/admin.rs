//! Admin routes. To anyone but an admin token they do not exist: the same 404 as an unknown
//! route, whatever the method or token, so they cannot be found by probing.

use actix_web::{HttpRequest, HttpResponse, web};
use ensinalab_app::Admin;
use ensinalab_domain::UserId;
use ensinalab_ports::{
    DEFAULT_STATS_DAYS, DayCounts, MAX_SECURITY_EVENTS_PAGE, SecurityEventKind, SecurityEventPage,
    SecurityEventQuery, Store, StoredSecurityEvent, TaskBroker,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Svc;
use crate::auth::identify;
use crate::dto::rfc3339;
use crate::error::{ApiError, ROUTE_NOT_FOUND};
use crate::ids::Hashids;

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// Filters and cursor of `GET /admin/security-events`.
#[derive(Debug, Deserialize)]
pub struct SecurityEventsParams {
    /// Only this user's events (the token `sub`).
    pub user_id: Option<i64>,
    /// Only this event, e.g. `cancel_refused`, `auth_failed`, `rate_limited` (an unknown name
    /// is a 400).
    pub event: Option<String>,
    /// RFC 3339; events at or after this instant.
    pub since: Option<String>,
    /// RFC 3339; events strictly before this instant.
    pub until: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// One event of the trail.
#[derive(Debug, Serialize)]
pub struct SecurityEventItem {
    /// Increasing; newest first in a page.
    pub id: i64,
    /// `video_cancelled`, `briefing_cancelled`, `tasks_cancelled_all`, `cancel_refused`,
    /// `read_refused`, `auth_failed`, `rate_limited`, `admin_refused`.
    pub event: String,
    /// e.g. `cancelled`, `not_found`, `not_owner`, `not_cancellable`, `invalid_token`,
    /// `refused`.
    pub outcome: String,
    /// The token's `sub`; null when authentication failed.
    pub user_id: Option<i64>,
    /// `video` or `briefing`.
    pub resource_type: Option<String>,
    /// Hash of the resource.
    pub resource_id: Option<String>,
    pub task_id: Option<String>,
    pub client_ip: Option<String>,
    /// Event-specific facts (counts, the rate-limit policy, the failed check...). Never a token.
    pub details: serde_json::Value,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A page of the trail, newest first.
#[derive(Debug, Serialize)]
pub struct SecurityEventsResponse {
    pub events: Vec<SecurityEventItem>,
    /// Pass as `after` for the next (older) page; null on the last page.
    pub next: Option<String>,
}

impl SecurityEventsResponse {
    fn new(page: SecurityEventPage, ids: &Hashids) -> Self {
        Self {
            events: page
                .events
                .into_iter()
                .map(|s| SecurityEventItem::new(s, ids))
                .collect(),
            next: page.next_before_id.map(|id| id.to_string()),
        }
    }
}

impl SecurityEventItem {
    fn new(stored: StoredSecurityEvent, ids: &Hashids) -> Self {
        let e = stored.event;
        Self {
            id: stored.id,
            event: e.event.as_str().to_owned(),
            outcome: e.outcome.as_str().to_owned(),
            user_id: e.user_id.map(UserId::get),
            resource_type: e.resource.map(|(kind, _)| kind.as_str().to_owned()),
            resource_id: e.resource.map(|(_, id)| ids.encode(id)),
            task_id: e.task_id.map(|t| t.as_str().to_owned()),
            client_ip: e.client_ip,
            details: e.details,
            created_at: rfc3339(stored.created_at),
        }
    }
}

fn bad(what: &str) -> ApiError {
    ApiError::BadRequest(format!("Parâmetro inválido: {what}"))
}

fn instant(raw: Option<&str>, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    raw.map(|r| OffsetDateTime::parse(r, &Rfc3339).map_err(|_| bad(name)))
        .transpose()
}

impl SecurityEventsParams {
    fn query(&self) -> Result<SecurityEventQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_SECURITY_EVENTS_PAGE).contains(&limit) {
            return Err(bad("limit"));
        }
        Ok(SecurityEventQuery {
            user_id: self.user_id.map(UserId),
            event: self
                .event
                .as_deref()
                .map(|e| e.parse::<SecurityEventKind>().map_err(|_| bad("event")))
                .transpose()?,
            since: instant(self.since.as_deref(), "since")?,
            until: instant(self.until.as_deref(), "until")?,
            before_id: self
                .after
                .as_deref()
                .map(|c| {
                    c.parse::<i64>()
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or(bad("after"))
                })
                .transpose()?,
            limit,
        })
    }
}

/// The security trail, filtered and keyset-paginated (admin tokens only).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn security_events<S: Store, B: TaskBroker>(
    req: HttpRequest,
    svc: Svc<S, B>,
    ids: web::Data<Hashids>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin(&req, &svc)?;
    let params = web::Query::<SecurityEventsParams>::from_query(req.query_string());
    let query = params.map_err(|_| bad("query string"))?.query()?;
    let page = svc.security_events(&admin, &query).await?;
    Ok(HttpResponse::Ok().json(SecurityEventsResponse::new(page, &ids)))
}

/// The use case's proof that the caller is an admin, before anything is parsed; the
/// unknown-route 404 without a valid token (nothing recorded) or without an admin one.
fn admin<S, B>(req: &HttpRequest, svc: &Svc<S, B>) -> Result<Admin, ApiError> {
    let caller = identify(req).ok_or(ApiError::NotFound(ROUTE_NOT_FOUND))?;
    Ok(svc.admin(&caller, &crate::client::route(req))?)
}

/// `GET /admin/stats`'s query.
#[derive(Debug, Deserialize)]
pub struct StatsParams {
    /// How many UTC days, today included: 1 to 90 (default 7).
    pub days: Option<u32>,
}

/// The jobs of each UTC day, oldest first, today last.
#[derive(Debug, Serialize)]
pub struct StatsResponse {
    pub days: Vec<DayStats>,
}

/// One UTC day: jobs (briefings and videos) created that day, and those that ended that day.
#[derive(Debug, Serialize)]
pub struct DayStats {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub created: u64,
    pub cancelled: CancelledStats,
    pub completed: u64,
    pub failed: u64,
    /// Cancellations (all three reasons) ÷ jobs created that day; 0 when none was created.
    pub cancel_rate: f64,
}

/// A day's cancellations by reason.
#[derive(Debug, Serialize)]
pub struct CancelledStats {
    /// By their owner, one job.
    pub user: u64,
    /// By their owner's cancel-all.
    pub user_all: u64,
    /// By the automatic timeout.
    pub timeout: u64,
}

impl From<DayCounts> for DayStats {
    fn from(day: DayCounts) -> Self {
        Self {
            date: day.date.to_string(),
            created: day.created,
            cancelled: CancelledStats {
                user: day.cancelled_user,
                user_all: day.cancelled_user_all,
                timeout: day.cancelled_timeout,
            },
            completed: day.completed,
            failed: day.failed,
            cancel_rate: (day.cancel_rate() * 10_000.0).round() / 10_000.0,
        }
    }
}

/// Jobs created, cancelled (by reason), completed and failed per UTC day (admin tokens only).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn stats<S: Store, B: TaskBroker>(
    req: HttpRequest,
    svc: Svc<S, B>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin(&req, &svc)?;
    let params =
        web::Query::<StatsParams>::from_query(req.query_string()).map_err(|_| bad("days"))?;
    let days = params.days.unwrap_or(DEFAULT_STATS_DAYS);
    let today = OffsetDateTime::now_utc().date();
    let counted = svc.daily_stats(&admin, days, today).await?;
    Ok(HttpResponse::Ok().json(StatsResponse {
        days: counted.into_iter().map(DayStats::from).collect(),
    }))
}
