//! The fake's [`MailSlots`].

use time::OffsetDateTime;

use super::*;
use ensinalab_ports::{MailSlots, StoreError};

impl MailSlots for InMemoryStore {
    async fn claim_mail_slot(
        &self,
        now: OffsetDateTime,
        every: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.with(|t| {
            let free = t.last_mail.is_none_or(|last| last + every <= now);
            if free {
                t.last_mail = Some(now);
            }
            free
        })
    }
}
