//! The operators' reads: jobs per day, the security trail, and the census of what is in flight.
//! Only an admin caller is answered; anyone else's attempt is a refused admin access.

use ensinalab_ports::{
    Caller, Census, DayCounts, MAX_STATS_DAYS, SecurityEventPage, SecurityEventQuery, SecurityLog,
    Statistics, StoreError,
};
use time::{Date, Duration};

use crate::Service;

/// Why an operator's read was not answered.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The caller holds no admin token (recorded as `admin_refused`).
    #[error("not an admin")]
    NotAdmin,
    /// `days` outside `1..=max`.
    #[error("days must be between 1 and {max}")]
    DaysOutOfRange { max: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Proof that the caller of an operator's read is an admin; only [`Service::admin`] makes one,
/// and every operator's read asks for it.
#[derive(Debug)]
pub struct Admin(());

impl<S, B> Service<S, B> {
    /// Lets an admin through; anyone else's access to `route` is refused and recorded (a log
    /// line, and a row per caller per window).
    ///
    /// # Errors
    /// [`AdminError::NotAdmin`].
    pub fn admin(&self, caller: &Caller, route: &str) -> Result<Admin, AdminError> {
        if caller.is_admin {
            return Ok(Admin(()));
        }
        self.refuse_admin(caller, route);
        Err(AdminError::NotAdmin)
    }
}

impl<S: Statistics + SecurityLog, B> Service<S, B> {
    /// The `days` UTC days ending with `today`, oldest first, one entry per day (a day with
    /// nothing is all zeros), from one read of the store.
    ///
    /// # Errors
    /// [`AdminError::DaysOutOfRange`] unless `1 <= days <= MAX_STATS_DAYS`; `Store`.
    pub async fn daily_stats(
        &self,
        _: &Admin,
        days: u32,
        today: Date,
    ) -> Result<Vec<DayCounts>, AdminError> {
        if !(1..=MAX_STATS_DAYS).contains(&days) {
            return Err(AdminError::DaysOutOfRange {
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

    /// A page of the security trail.
    ///
    /// # Errors
    /// `Store`.
    pub async fn security_events(
        &self,
        _: &Admin,
        query: &SecurityEventQuery,
    ) -> Result<SecurityEventPage, AdminError> {
        Ok(self.store.security_events(query).await?)
    }
}

impl<S: Statistics, B> Service<S, B> {
    /// The jobs in flight now and the revokes pending.
    ///
    /// # Errors
    /// `StoreError` on database failure.
    pub async fn census(&self) -> Result<Census, StoreError> {
        self.store.census().await
    }
}
