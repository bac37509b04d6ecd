//! The security trail: what an event is ([`SecurityEvent`], [`SecurityEventKind`]), the one
//! log line every event also is ([`SecurityEvent::log`]), and reading the trail back (the
//! query of `GET /admin/security-events`).
//!
//! Pagination is by keyset on the event id, newest first: a page is "the `limit` newest events
//! with an id below `before_id`", so a page never shifts when events are appended meanwhile
//! (an offset would).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ensinalab_domain::{ResourceKind, TaskId, UserId};
use time::OffsetDateTime;

/// What happened, as the trail's `event` column and the log's `event` field name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityEventKind {
    /// A user cancelled one of their videos.
    VideoCancelled,
    /// A user cancelled the option generation of one of their briefings.
    BriefingCancelled,
    /// A user cancelled everything they had running (details carry the counts).
    TasksCancelledAll,
    /// The server cancelled a job that ran past its limit (details carry the limit).
    AutoCancelled,
    /// A cancel was refused: someone else's resource, a missing one, or a final status.
    CancelRefused,
    /// A read was refused: someone else's (or a missing) briefing, video, option or task.
    ReadRefused,
    /// A request without a valid token.
    AuthFailed,
    /// A request over a rate limit.
    RateLimited,
    /// A non-admin token on an admin route.
    AdminRefused,
}

impl SecurityEventKind {
    /// Every kind.
    pub const ALL: [Self; 9] = [
        Self::VideoCancelled,
        Self::BriefingCancelled,
        Self::TasksCancelledAll,
        Self::AutoCancelled,
        Self::CancelRefused,
        Self::ReadRefused,
        Self::AuthFailed,
        Self::RateLimited,
        Self::AdminRefused,
    ];

    /// The stored and logged name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VideoCancelled => "video_cancelled",
            Self::BriefingCancelled => "briefing_cancelled",
            Self::TasksCancelledAll => "tasks_cancelled_all",
            Self::AutoCancelled => "auto_cancelled",
            Self::CancelRefused => "cancel_refused",
            Self::ReadRefused => "read_refused",
            Self::AuthFailed => "auth_failed",
            Self::RateLimited => "rate_limited",
            Self::AdminRefused => "admin_refused",
        }
    }

    /// Whether the event is something done as asked (a user's cancel), logged at `INFO`; every
    /// other event (a refusal, a failed authentication, a job cut short by the timeout) is
    /// worth an operator's look, at `WARN`.
    pub fn is_routine(self) -> bool {
        match self {
            Self::VideoCancelled | Self::BriefingCancelled | Self::TasksCancelledAll => true,
            Self::AutoCancelled
            | Self::CancelRefused
            | Self::ReadRefused
            | Self::AuthFailed
            | Self::RateLimited
            | Self::AdminRefused => false,
        }
    }

    /// The event of a user's cancel of one resource of `kind`.
    pub fn cancelled(kind: ResourceKind) -> Self {
        match kind {
            ResourceKind::Briefing => Self::BriefingCancelled,
            ResourceKind::Video => Self::VideoCancelled,
        }
    }
}

impl fmt::Display for SecurityEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event name this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown security event {0:?}")]
pub struct UnknownEventKind(pub String);

impl FromStr for SecurityEventKind {
    type Err = UnknownEventKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.chars().take(64).collect()))
    }
}

/// How an event ended, as the trail's `outcome` column and the log's `outcome` field name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventOutcome {
    /// The cancel was carried out.
    Cancelled,
    /// No such resource.
    NotFound,
    /// Someone else's resource: an attempt worth flagging, answered like [`Self::NotFound`].
    NotOwner,
    /// The resource's status does not allow the cancel.
    NotCancellable,
    /// An admin route, and the caller is no admin.
    NotAdmin,
    /// Over a rate limit.
    Refused,
    /// No bearer token.
    MissingToken,
    /// A token longer than any the server accepts.
    TokenTooLong,
    /// A token that does not verify (details say which check failed).
    InvalidToken,
    /// A token whose subject is not a user id.
    BadSubject,
    /// A token valid for longer than the server allows.
    LivesTooLong,
}

impl EventOutcome {
    /// Every outcome.
    pub const ALL: [Self; 11] = [
        Self::Cancelled,
        Self::NotFound,
        Self::NotOwner,
        Self::NotCancellable,
        Self::NotAdmin,
        Self::Refused,
        Self::MissingToken,
        Self::TokenTooLong,
        Self::InvalidToken,
        Self::BadSubject,
        Self::LivesTooLong,
    ];

    /// The stored and logged name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancelled => "cancelled",
            Self::NotFound => "not_found",
            Self::NotOwner => "not_owner",
            Self::NotCancellable => "not_cancellable",
            Self::NotAdmin => "not_admin",
            Self::Refused => "refused",
            Self::MissingToken => "missing_token",
            Self::TokenTooLong => "token_too_long",
            Self::InvalidToken => "invalid_token",
            Self::BadSubject => "bad_subject",
            Self::LivesTooLong => "lives_too_long",
        }
    }
}

impl fmt::Display for EventOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome name this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown security event outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for EventOutcome {
    type Err = UnknownOutcome;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.chars().take(64).collect()))
    }
}

/// A row of the security trail.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEvent {
    pub event: SecurityEventKind,
    /// `None` for failed authentication.
    pub user_id: Option<UserId>,
    pub resource: Option<(ResourceKind, i64)>,
    pub task_id: Option<TaskId>,
    pub outcome: EventOutcome,
    pub client_ip: Option<String>,
    pub details: serde_json::Value,
}

/// How log lines name a resource: by the name the API's answers give it (the HTTP layer hands
/// the service its hashids encoder), so a log line can be matched to what users and operators
/// see, and never by the raw database id. Without a namer, a log line names the resource's kind
/// only. The stored rows keep the raw id: they are read back through the API, which renders it.
#[derive(Clone, Default)]
pub struct ResourceNames(Option<Arc<dyn Fn(i64) -> String + Send + Sync>>);

impl ResourceNames {
    /// Names each resource id with `name`.
    pub fn new(name: impl Fn(i64) -> String + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(name)))
    }

    /// The log's name of the resource `id`; `None` without a namer.
    pub fn name(&self, id: i64) -> Option<String> {
        self.0.as_ref().map(|name| name(id))
    }
}

impl fmt::Debug for ResourceNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ResourceNames(named)"
        } else {
            "ResourceNames(kind only)"
        })
    }
}

impl SecurityEvent {
    /// The event's structured log line (target `security`), without the resource's id (the
    /// HTTP layer's events name no resource); see [`SecurityEvent::log_named`].
    pub fn log(&self) {
        self.log_named(&ResourceNames::default());
    }

    /// The event's structured log line (target `security`), the resource named by `names`.
    /// Every event is one, whether or not its row is written: the log is the trail of last
    /// resort. A user's cancel is `INFO`, anything else `WARN` ([`SecurityEventKind::is_routine`]).
    pub fn log_named(&self, names: &ResourceNames) {
        let resource_id = self.resource.and_then(|(_, id)| names.name(id));
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "security",
                    event = self.event.as_str(),
                    outcome = self.outcome.as_str(),
                    user_id = self.user_id.map(UserId::get),
                    resource_type = self.resource.map(|(kind, _)| kind.as_str()),
                    resource_id = resource_id.as_deref(),
                    task_id = self.task_id.as_ref().map(TaskId::as_str),
                    client_ip = self.client_ip.as_deref().unwrap_or("-"),
                    details = %self.details,
                    "security event"
                )
            };
        }
        if self.event.is_routine() {
            line!(info);
        } else {
            line!(warn);
        }
    }
}

/// Largest page a query may ask for.
pub const MAX_SECURITY_EVENTS_PAGE: u32 = 200;

/// Which events to read. Every filter is optional; all given filters must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityEventQuery {
    pub user_id: Option<UserId>,
    pub event: Option<SecurityEventKind>,
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
            && self.event.is_none_or(|e| stored.event.event == e)
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
