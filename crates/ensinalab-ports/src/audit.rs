//! Reading the security trail back: the query of `GET /admin/security-events`.
//!
//! Pagination is by keyset on the event id, newest first: a page is "the `limit` newest events
//! with an id below `before_id`", so a page never shifts when events are appended meanwhile
//! (an offset would).

use ensinalab_domain::UserId;
use time::OffsetDateTime;

use crate::model::SecurityEvent;

/// Largest page a query may ask for.
pub const MAX_SECURITY_EVENTS_PAGE: u32 = 200;

/// Which events to read. Every filter is optional; all given filters must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityEventQuery {
    pub user_id: Option<UserId>,
    /// Exact event name, e.g. `cancel_refused`.
    pub event: Option<String>,
    /// `created_at >= since`.
    pub since: Option<OffsetDateTime>,
    /// `created_at < until`.
    pub until: Option<OffsetDateTime>,
    /// Keyset cursor: only events with an id strictly below this one.
    pub before_id: Option<i64>,
    /// Page size, 1..=[`MAX_SECURITY_EVENTS_PAGE`] (adapters clamp it).
    pub limit: u32,
}

/// One stored event with what the store added to it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSecurityEvent {
    /// Increasing with insertion order; the pagination key.
    pub id: i64,
    pub created_at: OffsetDateTime,
    pub event: SecurityEvent,
}

/// A page of events, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityEventPage {
    pub events: Vec<StoredSecurityEvent>,
    /// The `before_id` of the next page; `None` when this page is the last.
    pub next_before_id: Option<i64>,
}

impl SecurityEventQuery {
    /// The page size actually used.
    pub fn clamped_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_SECURITY_EVENTS_PAGE)
    }

    /// Whether `stored` passes every filter (fakes use it; the store does it in SQL).
    pub fn matches(&self, stored: &StoredSecurityEvent) -> bool {
        self.user_id.is_none_or(|u| stored.event.user_id == Some(u))
            && self.event.as_ref().is_none_or(|e| &stored.event.event == e)
            && self.since.is_none_or(|t| stored.created_at >= t)
            && self.until.is_none_or(|t| stored.created_at < t)
            && self.before_id.is_none_or(|id| stored.id < id)
    }
}

impl SecurityEventPage {
    /// A page from up to `limit + 1` matching events, newest first: the extra one only says
    /// whether a next page exists.
    pub fn from_overfetch(mut events: Vec<StoredSecurityEvent>, limit: u32) -> Self {
        let limit = limit as usize;
        let more = events.len() > limit;
        events.truncate(limit);
        let next_before_id = if more {
            events.last().map(|e| e.id)
        } else {
            None
        };
        Self {
            events,
            next_before_id,
        }
    }
}
