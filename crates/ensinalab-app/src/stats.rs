//! The operators' figures: jobs per day, and the census of what is in flight.

use time::{Date, Duration};

use crate::Service;
use ensinalab_ports::StoreError;
use ensinalab_ports::{Census, DayCounts, MAX_STATS_DAYS, Statistics};

/// Why the daily figures could not be given.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// `days` outside `1..=max`.
    #[error("days must be between 1 and {max}")]
    DaysOutOfRange { max: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<S: Statistics, B> Service<S, B> {
    /// The `days` UTC days ending with `today`, oldest first, one entry per day (a day with
    /// nothing is all zeros), from one read of the store.
    ///
    /// # Errors
    /// [`StatsError::DaysOutOfRange`] unless `1 <= days <= MAX_STATS_DAYS`; `Store`.
    pub async fn daily_stats(&self, days: u32, today: Date) -> Result<Vec<DayCounts>, StatsError> {
        if !(1..=MAX_STATS_DAYS).contains(&days) {
            return Err(StatsError::DaysOutOfRange {
                max: MAX_STATS_DAYS,
            });
        }
        let first = today - Duration::days(i64::from(days - 1));
        let counted = self.store.daily_counts(first, today).await?;
        let mut out: Vec<DayCounts> = Vec::with_capacity(days as usize);
        let mut counted = counted.into_iter().peekable();
        let mut day = first;
        while day <= today {
            while counted.next_if(|c| c.date < day).is_some() {}
            out.push(
                counted
                    .next_if(|c| c.date == day)
                    .unwrap_or(DayCounts::empty(day)),
            );
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok(out)
    }

    /// The jobs in flight now and the revokes pending.
    ///
    /// # Errors
    /// `StoreError` on database failure.
    pub async fn census(&self) -> Result<Census, StoreError> {
        self.store.census().await
    }
}
