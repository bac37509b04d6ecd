//! The alerts' jobs: the look for cancels that could not be carried out
//! (`Service::report_overdue_revokes`), and the operators' e-mail (`Service::mail_alerts`),
//! when the deployment has one.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::{Drain, Service};
use ensinalab_ports::{Mailer, Store, TaskBroker, TaskChange};
use time::OffsetDateTime;

use crate::Job;

/// How often revokes are checked for being overdue, and how often pending alerts look for a
/// free mail slot.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Overdue revokes reported per pass.
const BATCH: u32 = 500;

/// The operators' e-mail: the drain of the alert queue the service feeds (an
/// `ensinalab_app::AlertQueue` among its sinks), who sends, and how often at most.
#[derive(Debug)]
pub struct Mail<M> {
    pub alerts: Drain<TaskChange>,
    pub mailer: M,
    pub min_interval: Duration,
}

/// The periodic look for overdue revokes.
pub struct OverdueRevokes<S, B> {
    service: Arc<Service<S, B>>,
    grace: time::Duration,
}

impl<S, B> OverdueRevokes<S, B> {
    /// A revoke is overdue `grace` after its cancel (undelivered) or its delivery (still
    /// running).
    pub fn new(service: Arc<Service<S, B>>, grace: Duration) -> Self {
        Self {
            service,
            grace: time::Duration::try_from(grace).unwrap_or(time::Duration::MAX),
        }
    }
}

impl<S: Store + 'static, B: TaskBroker + 'static> Job for OverdueRevokes<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        let now = OffsetDateTime::now_utc();
        if let Err(err) = self
            .service
            .report_overdue_revokes(now, self.grace, BATCH)
            .await
        {
            tracing::warn!(error = %err, "overdue revokes not checked; the next pass retries");
        }
        ControlFlow::Continue(())
    }
}

/// The periodic send of the alert digest.
pub struct AlertMail<S, B, M> {
    service: Arc<Service<S, B>>,
    mail: Mail<M>,
}

impl<S, B, M> AlertMail<S, B, M> {
    pub fn new(service: Arc<Service<S, B>>, mail: Mail<M>) -> Self {
        Self { service, mail }
    }
}

impl<S, B, M> Job for AlertMail<S, B, M>
where
    S: Store + 'static,
    B: TaskBroker + 'static,
    M: Mailer + 'static,
{
    async fn run(&mut self) -> ControlFlow<()> {
        let Mail {
            alerts,
            mailer,
            min_interval,
        } = &mut self.mail;
        let now = OffsetDateTime::now_utc();
        if let Err(err) = self
            .service
            .mail_alerts(alerts, mailer, now, *min_interval)
            .await
        {
            tracing::warn!(error = %err, "alert e-mail not sent; kept for the next interval");
        }
        ControlFlow::Continue(())
    }
}
