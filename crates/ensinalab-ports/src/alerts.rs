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

use crate::backlog::Backlog;
use crate::changes::{ChangeKind, ChangeSink, TaskChange};
use crate::error::{MailError, StoreError};

/// Whether a change is an alert for the operators.
pub fn is_alert(kind: ChangeKind) -> bool {
    matches!(
        kind,
        ChangeKind::Cancelled(CancelReason::Timeout) | ChangeKind::RevokeOverdue(_)
    )
}

/// Alerts kept in memory at most until the next e-mail; beyond it some are dropped (the
/// security trail and the logs still have every one).
pub const MAX_QUEUED_ALERTS: usize = 10_000;

/// The change-stream consumer that collects alerts until the mail job sends them.
#[derive(Debug, Clone)]
pub struct AlertQueue(pub Backlog<TaskChange>);

impl Default for AlertQueue {
    fn default() -> Self {
        Self(Backlog::new(MAX_QUEUED_ALERTS, "operator alerts"))
    }
}

impl ChangeSink for AlertQueue {
    fn publish(&self, change: &TaskChange) {
        if is_alert(change.kind) {
            self.0.push(change.clone());
        }
    }
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
