//! The operators' figures: jobs per UTC day and the census of what is in flight, each ONE
//! statement over both tables.
//!
//! The daily counts read each table twice by range, by `created_at` and by `finished_at` (one
//! index each: migration 11), group each side by day inside the database, and add the four
//! sides up per day, so what leaves the database is one row per day whatever the volume. Only
//! the name of a timestamp's UTC day is written per backend ([`day_of`]).

use ensinalab_domain::{BriefingStatus, CancelReason, Lifecycle, VideoStatus};
use ensinalab_ports::{AnyStatus, Census, DayCounts, Statistics, StoreError};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use time::{Date, Month, OffsetDateTime, Time};

use crate::SqlStore;
use crate::convert;
use crate::error::classify;
use crate::slots::literals;

/// The UTC day of timestamp `column`, as `YYYY-MM-DD` text. SQLite keeps timestamps as RFC 3339
/// text written in UTC, whose first ten characters are that day.
fn day_of(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        _ => format!("substr({column}, 1, 10)"),
    }
}

/// The daily-counts statement: `$1` the first instant counted, `$2` the first one past it.
fn daily_sql(backend: DbBackend) -> String {
    let created = day_of(backend, "created_at");
    let finished = day_of(backend, "finished_at");
    let reason = |r: CancelReason| {
        format!(
            "SUM(CASE WHEN status = 'cancelled' AND cancel_reason = '{}' THEN 1 ELSE 0 END)",
            r.as_str()
        )
    };
    let side = |table: &str| {
        format!(
            "SELECT {created} AS day, count(*) AS created, 0 AS c_user, 0 AS c_user_all, \
             0 AS c_timeout, 0 AS completed, 0 AS failed \
             FROM {table} WHERE created_at >= $1 AND created_at < $2 GROUP BY 1 \
             UNION ALL SELECT {finished}, 0, {user}, {user_all}, {timeout}, \
             SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) \
             FROM {table} WHERE finished_at >= $1 AND finished_at < $2 GROUP BY 1",
            user = reason(CancelReason::User),
            user_all = reason(CancelReason::UserAll),
            timeout = reason(CancelReason::Timeout),
        )
    };
    let sum = |c: &str| format!("CAST(SUM({c}) AS BIGINT)");
    format!(
        "SELECT day, {}, {}, {}, {}, {}, {} FROM ({} UNION ALL {}) AS e GROUP BY day ORDER BY day",
        sum("created"),
        sum("c_user"),
        sum("c_user_all"),
        sum("c_timeout"),
        sum("completed"),
        sum("failed"),
        side("briefings"),
        side("videos"),
    )
}

/// The census statement: in-flight rows per table and status, and the undelivered revokes.
fn census_sql() -> String {
    format!(
        "SELECT 'briefing' AS kind, status, count(*) AS n FROM briefings \
         WHERE status IN ({briefings}) GROUP BY status \
         UNION ALL SELECT 'video', status, count(*) FROM videos \
         WHERE status IN ({videos}) GROUP BY status \
         UNION ALL SELECT 'revoke', '', count(*) FROM revoke_outbox WHERE delivered_at IS NULL",
        briefings = literals(<BriefingStatus as Lifecycle>::IN_FLIGHT),
        videos = literals(<VideoStatus as Lifecycle>::IN_FLIGHT),
    )
}

fn midnight(date: Date) -> OffsetDateTime {
    date.with_time(Time::MIDNIGHT).assume_utc()
}

fn count(row: &QueryResult, index: usize) -> Result<u64, StoreError> {
    let n: i64 = row.try_get_by_index(index).map_err(classify)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
}

/// `YYYY-MM-DD`.
fn parse_day(raw: &str) -> Result<Date, StoreError> {
    let bad = || StoreError::Corrupt(format!("not a day: {raw:?}"));
    let mut parts = raw.splitn(3, '-').map(str::parse::<u16>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let month = Month::try_from(u8::try_from(m).map_err(|_| bad())?).map_err(|_| bad())?;
    Date::from_calendar_date(i32::from(y), month, u8::try_from(d).map_err(|_| bad())?)
        .map_err(|_| bad())
}

impl Statistics for SqlStore {
    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn daily_counts(&self, first: Date, last: Date) -> Result<Vec<DayCounts>, StoreError> {
        let backend = self.db.get_database_backend();
        let end = last.next_day().map_or(OffsetDateTime::now_utc(), midnight);
        let statement = Statement::from_sql_and_values(
            backend,
            daily_sql(backend),
            [Value::from(midnight(first)), Value::from(end)],
        );
        let rows = self.db.query_all_raw(statement).await.map_err(classify)?;
        rows.iter()
            .map(|row| {
                let day: String = row.try_get_by_index(0).map_err(classify)?;
                Ok(DayCounts {
                    date: parse_day(&day)?,
                    created: count(row, 1)?,
                    cancelled_user: count(row, 2)?,
                    cancelled_user_all: count(row, 3)?,
                    cancelled_timeout: count(row, 4)?,
                    completed: count(row, 5)?,
                    failed: count(row, 6)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn census(&self) -> Result<Census, StoreError> {
        let backend = self.db.get_database_backend();
        let statement = Statement::from_string(backend, census_sql());
        let rows = self.db.query_all_raw(statement).await.map_err(classify)?;
        let mut census = Census::default();
        for row in &rows {
            let kind: String = row.try_get_by_index(0).map_err(classify)?;
            let status: String = row.try_get_by_index(1).map_err(classify)?;
            let n = count(row, 2)?;
            let status: AnyStatus = match kind.as_str() {
                "briefing" => {
                    convert::parsed::<BriefingStatus>("briefings", "census", &status)?.into()
                }
                "video" => convert::parsed::<VideoStatus>("videos", "census", &status)?.into(),
                _ => {
                    census.revokes_pending = n;
                    continue;
                }
            };
            census.in_flight.push((status, n));
        }
        Ok(census)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_from_their_text_and_nothing_else_does() {
        assert_eq!(
            parse_day("2026-12-03").unwrap(),
            Date::from_calendar_date(2026, Month::December, 3).unwrap()
        );
        for bad in ["", "2026-13-01", "2026-02-30", "2026/12/03", "x-1-1"] {
            assert!(parse_day(bad).is_err(), "{bad:?}");
        }
    }
}
