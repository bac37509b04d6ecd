//! Rows to domain records: one decoder per row shape. Every check a stored value can fail ends
//! in `StoreError::Corrupt` naming the row, never in a panic.

use std::str::FromStr;

use ensinalab_domain::{BriefingId, OptionId, ResourceKind, TaskId, UserId, VideoId};
use ensinalab_ports::{
    ActiveResource, AnyStatus, Briefing, BriefingOption, InFlightTask, ResourceRef, StoreError,
    Video,
};
use time::{OffsetDateTime, UtcOffset};

use crate::entity::{briefing, option, video};

pub(crate) fn parsed<S>(table: &str, id: impl std::fmt::Display, raw: &str) -> Result<S, StoreError>
where
    S: FromStr,
    S::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e| StoreError::Corrupt(format!("{table} {id}: {e}")))
}

pub(crate) fn task_id(
    table: &str,
    id: impl std::fmt::Display,
    raw: Option<&str>,
) -> Result<Option<TaskId>, StoreError> {
    raw.map(|raw| required_task_id(table, &id, raw)).transpose()
}

pub(crate) fn required_task_id(
    table: &str,
    id: impl std::fmt::Display,
    raw: &str,
) -> Result<TaskId, StoreError> {
    TaskId::parse(raw).map_err(|e| StoreError::Corrupt(format!("{table} {id}: task_id: {e}")))
}

/// The `(kind, id)` of a resource stored as two columns.
pub(crate) fn resource(
    table: &str,
    row: impl std::fmt::Display,
    kind: &str,
    id: i64,
) -> Result<(ResourceKind, i64), StoreError> {
    Ok((parsed(table, row, kind)?, id))
}

/// Timestamps are read back in UTC, whatever offset the driver returns.
pub(crate) fn utc(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(UtcOffset::UTC)
}

/// Now, truncated to what PostgreSQL keeps (microseconds), so a record returned by a write
/// equals the same record read back later, on either backend.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

pub(crate) fn briefing(m: briefing::Model) -> Result<Briefing, StoreError> {
    Ok(Briefing {
        id: BriefingId(m.id),
        user_id: UserId(m.user_id),
        duration_minutes: u32::try_from(m.duration_minutes).map_err(|_| {
            StoreError::Corrupt(format!(
                "briefings {}: negative duration_minutes {}",
                m.id, m.duration_minutes
            ))
        })?,
        status: parsed("briefings", m.id, &m.status)?,
        task_id: task_id("briefings", m.id, m.task_id.as_deref())?,
        title: m.title,
        description: m.description,
        error_message: m.error_message,
        created_at: utc(m.created_at),
        updated_at: utc(m.updated_at),
        started_at: m.started_at.map(utc),
    })
}

pub(crate) fn option(m: option::Model) -> BriefingOption {
    BriefingOption {
        id: OptionId(m.id),
        briefing_id: BriefingId(m.briefing_id),
        title: m.title,
        description: m.description,
        generator_type: m.generator_type,
        created_at: utc(m.created_at),
    }
}

pub(crate) fn video(m: video::Model) -> Result<Video, StoreError> {
    Ok(Video {
        id: VideoId(m.id),
        user_id: UserId(m.user_id),
        briefing_id: BriefingId(m.briefing_id),
        option_id: OptionId(m.option_id),
        status: parsed("videos", m.id, &m.status)?,
        task_id: task_id("videos", m.id, m.task_id.as_deref())?,
        title: m.title,
        generator_type: m.generator_type,
        progress: m.progress,
        error_message: m.error_message,
        created_at: utc(m.created_at),
        updated_at: utc(m.updated_at),
        started_at: m.started_at.map(utc),
    })
}

/// A moved row of a cancel of many rows: `(id, task_id)`, the two columns the revokes need.
pub(crate) type Moved = (i64, Option<TaskId>);

pub(crate) fn moved(kind: ResourceKind, id: i64, task: Option<&str>) -> Result<Moved, StoreError> {
    Ok((id, task_id(table(kind), id, task)?))
}

/// The table a kind of resource lives in.
pub(crate) fn table(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Briefing => "briefings",
        ResourceKind::Video => "videos",
    }
}

/// One row of the briefings-and-videos union behind the cross-table reads (columns in the
/// order of `tasks::task_rows`), as read: text the driver can lend is borrowed.
pub(crate) struct UnionRow<'a> {
    pub kind: &'a str,
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub status: &'a str,
    pub progress: Option<f64>,
    pub generator_type: Option<String>,
    pub task_id: Option<&'a str>,
    pub created_at: OffsetDateTime,
}

impl UnionRow<'_> {
    fn kind(&self) -> Result<ResourceKind, StoreError> {
        parsed("briefings/videos union", self.id, self.kind)
    }

    fn status(&self) -> Result<AnyStatus, StoreError> {
        let kind = self.kind()?;
        let table = table(kind);
        Ok(match kind {
            ResourceKind::Briefing => AnyStatus::Briefing(parsed(table, self.id, self.status)?),
            ResourceKind::Video => AnyStatus::Video(parsed(table, self.id, self.status)?),
        })
    }

    fn task(&self) -> Result<Option<TaskId>, StoreError> {
        task_id(table(self.kind()?), self.id, self.task_id)
    }

    /// The row as the owner and the reconciler know it.
    pub fn resource(&self) -> Result<ResourceRef, StoreError> {
        Ok(ResourceRef {
            kind: self.kind()?,
            id: self.id,
            user_id: UserId(self.user_id),
        })
    }

    /// The row as the active list shows it.
    pub fn into_active(self) -> Result<ActiveResource, StoreError> {
        Ok(ActiveResource {
            status: self.status()?,
            task_id: self.task()?,
            id: self.id,
            title: self.title,
            progress: self.progress,
            generator_type: self.generator_type,
            created_at: utc(self.created_at),
        })
    }

    /// The row as the reconciler's sweep reads it (`started`: a worker reported it running);
    /// `None` without a task.
    pub fn into_in_flight(self, started: bool) -> Result<Option<InFlightTask>, StoreError> {
        let Some(task_id) = self.task()? else {
            return Ok(None);
        };
        Ok(Some(InFlightTask {
            resource: self.resource()?,
            status: self.status()?,
            task_id,
            progress: self.progress,
            started,
        }))
    }
}
