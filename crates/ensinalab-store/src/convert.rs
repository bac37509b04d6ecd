//! Rows to domain records. Every check a stored value can fail ends in `StoreError::Corrupt`
//! naming the row, never in a panic.

use std::str::FromStr;

use ensinalab_domain::{BriefingId, OptionId, TaskId, UserId, VideoId};
use ensinalab_ports::{Briefing, BriefingOption, StoreError, Video};
use time::{OffsetDateTime, UtcOffset};

use crate::entity::{briefing, option, video};

pub(crate) fn status<S>(table: &str, id: i64, raw: &str) -> Result<S, StoreError>
where
    S: FromStr,
    S::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e| StoreError::Corrupt(format!("{table} {id}: {e}")))
}

pub(crate) fn task_id(
    table: &str,
    id: i64,
    raw: Option<&str>,
) -> Result<Option<TaskId>, StoreError> {
    raw.map(|raw| {
        TaskId::parse(raw).map_err(|e| StoreError::Corrupt(format!("{table} {id}: task_id: {e}")))
    })
    .transpose()
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
        status: status("briefings", m.id, &m.status)?,
        task_id: task_id("briefings", m.id, m.task_id.as_deref())?,
        title: m.title,
        description: m.description,
        error_message: m.error_message,
        created_at: utc(m.created_at),
        updated_at: utc(m.updated_at),
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
        status: status("videos", m.id, &m.status)?,
        task_id: task_id("videos", m.id, m.task_id.as_deref())?,
        title: m.title,
        generator_type: m.generator_type,
        progress: m.progress,
        error_message: m.error_message,
        created_at: utc(m.created_at),
        updated_at: utc(m.updated_at),
    })
}
