//! The operators' alerts: which changes are worth an e-mail, and the ports that send it.
//!
//! [`AlertQueue`] takes off the change stream what operators must hear of: an automatic timeout
//! (`cancelled` for reason `timeout`) and a cancel that could not be carried out
//! (`revoke_overdue`). The server's mail job sends what accumulated as one digest through the
//! [`Mailer`], at most once per interval across every server ([`MailSlots`]), so a storm of
//! timeouts is one e-mail, not thousands.

use std::future::Future;
use std::time::Duration;

use ensinalab_domain::CancelReason;
use time::OffsetDateTime;

use crate::changes::{ChangeKind, TaskChange};
use crate::error::{MailError, StoreError};

/// Whether a change is an alert for the operators.
pub fn is_alert(kind: ChangeKind) -> bool {
    matches!(
        kind,
        ChangeKind::Cancelled(CancelReason::Timeout) | ChangeKind::RevokeOverdue(_)
    )
}

/// Sends the operators one e-mail about `alerts`.
pub trait Mailer: Send + Sync {
    /// Sends one digest of `alerts` (never empty), oldest first.
    ///
    /// # Errors
    /// [`MailError`] when the message could not be handed to the mail server.
    fn send(&self, alerts: &[TaskChange]) -> impl Future<Output = Result<(), MailError>> + Send;
}

/// The one right to send an alert e-mail per interval, shared by every server.
pub trait MailSlots: Send + Sync {
    /// Takes the right to send an alert e-mail at `now` if none was taken within `every`
    /// before it; true for one caller per interval, however many servers ask.
    ///
    /// # Errors
    /// `StoreError` on database failure only.
    fn claim_mail_slot(
        &self,
        now: OffsetDateTime,
        every: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
