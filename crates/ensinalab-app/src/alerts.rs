//! Telling the operators: the digest of alerts the change stream collected (see
//! [`crate::alerts`]), at most one e-mail per interval across every server.

use std::time::Duration;

use time::OffsetDateTime;

use ensinalab_ports::{MailError, Mailer, Store, StoreError, TaskBroker, TaskChange};

use crate::{Drain, Service};

/// Why the alerts were not sent (they are kept for the next interval).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Sends what `alerts` holds as one e-mail through `mailer`, if the deployment's mail slot
    /// is free at `now` (none sent within `min_interval`, by any server); otherwise keeps them
    /// for a later call. Returns how many alerts were sent. A failed send keeps them too; the
    /// slot it took is spent, so they go in the next interval.
    ///
    /// # Errors
    /// [`AlertError`] when the slot could not be read or the mail server did not take it.
    pub async fn mail_alerts<M: Mailer>(
        &self,
        alerts: &mut Drain<TaskChange>,
        mailer: &M,
        now: OffsetDateTime,
        min_interval: Duration,
    ) -> Result<usize, AlertError> {
        let pending = alerts.take();
        if pending.is_empty() {
            return Ok(0);
        }
        let sent = match self.store.claim_mail_slot(now, min_interval).await {
            Ok(true) => mailer.send(&pending).await.map_err(AlertError::from),
            Ok(false) => {
                alerts.put_back(pending);
                return Ok(0);
            }
            Err(err) => Err(err.into()),
        };
        match sent {
            Ok(()) => Ok(pending.len()),
            Err(err) => {
                alerts.put_back(pending);
                Err(err)
            }
        }
    }
}
