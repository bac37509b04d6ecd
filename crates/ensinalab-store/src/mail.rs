//! The [`MailSlots`] port: `mail_slots`, one row per kind of e-mail with the time it was last
//! sent. Taking the slot is one upsert that only moves the time forward when the interval is
//! over, so one server per interval gets it, whatever the number asking.

use std::time::Duration;

use ensinalab_ports::{MailSlots, StoreError};
use sea_orm::Value;
use time::OffsetDateTime;

use crate::SqlStore;

/// The slot of the operators' alert digest.
const ALERTS: &str = "alerts";

impl MailSlots for SqlStore {
    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn claim_mail_slot(
        &self,
        now: OffsetDateTime,
        every: Duration,
    ) -> Result<bool, StoreError> {
        // The last send that still leaves the slot free now; an interval too long to count
        // leaves it taken for good after the first.
        let last_allowed = time::Duration::try_from(every)
            .ok()
            .and_then(|every| now.checked_sub(every))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let sql = "INSERT INTO mail_slots (name, taken_at) VALUES ($1, $2) \
                   ON CONFLICT (name) DO UPDATE SET taken_at = excluded.taken_at \
                   WHERE mail_slots.taken_at <= $3";
        let values: [Value; 3] = [ALERTS.into(), now.into(), last_allowed.into()];
        let done = self.execute(sql, values).await?;
        Ok(done == 1)
    }
}
