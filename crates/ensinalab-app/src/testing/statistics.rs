//! The fake's operators' statistics ([`Statistics`]).

use time::{Date, OffsetDateTime};

use super::*;
use ensinalab_ports::{AnyStatus, Census, DayCounts, Statistics, StoreError};

/// The fake keeps no `finished_at` or cancel reason: a final row counts as finished at its
/// `updated_at`, and its cancel reason is read from its message (so a cancel-all counts as
/// `user`, and a revoke from elsewhere, which writes no message, as no cancellation).
impl Statistics for InMemoryStore {
    async fn daily_counts(&self, first: Date, last: Date) -> Result<Vec<DayCounts>, StoreError> {
        self.with(|t| {
            let mut days: std::collections::BTreeMap<Date, DayCounts> =
                std::collections::BTreeMap::new();
            let rows = t
                .briefings
                .iter()
                .map(|b| {
                    (
                        b.created_at,
                        b.updated_at,
                        AnyStatus::from(b.status),
                        b.error_message.as_deref(),
                    )
                })
                .chain(t.videos.iter().map(|v| {
                    (
                        v.created_at,
                        v.updated_at,
                        AnyStatus::from(v.status),
                        v.error_message.as_deref(),
                    )
                }));
            for (created, updated, status, message) in rows {
                let mut on = |at: OffsetDateTime, count: &dyn Fn(&mut DayCounts)| {
                    let date = at.date();
                    if (first..=last).contains(&date) {
                        count(days.entry(date).or_insert_with(|| DayCounts::empty(date)));
                    }
                };
                on(created, &|d| d.created += 1);
                match (status.as_str(), message) {
                    ("completed", _) => on(updated, &|d| d.completed += 1),
                    ("failed", _) => on(updated, &|d| d.failed += 1),
                    ("cancelled", Some(ensinalab_domain::CANCELLED_BY_USER)) => {
                        on(updated, &|d| d.cancelled_user += 1);
                    }
                    ("cancelled", Some(ensinalab_domain::CANCELLED_BY_TIMEOUT)) => {
                        on(updated, &|d| d.cancelled_timeout += 1);
                    }
                    _ => {}
                }
            }
            days.into_values().collect()
        })
    }

    async fn census(&self) -> Result<Census, StoreError> {
        self.with(|t| {
            let mut in_flight: Vec<(AnyStatus, u64)> = Vec::new();
            let statuses = t
                .briefings
                .iter()
                .filter(|b| b.status.is_in_flight())
                .map(|b| AnyStatus::from(b.status))
                .chain(
                    t.videos
                        .iter()
                        .filter(|v| v.status.is_in_flight())
                        .map(|v| AnyStatus::from(v.status)),
                );
            for status in statuses {
                match in_flight.iter_mut().find(|(s, _)| *s == status) {
                    Some((_, n)) => *n += 1,
                    None => in_flight.push((status, 1)),
                }
            }
            Census {
                in_flight,
                revokes_pending: t
                    .outbox
                    .iter()
                    .filter(|r| r.owed.delivered_at.is_none())
                    .count() as u64,
            }
        })
    }
}
