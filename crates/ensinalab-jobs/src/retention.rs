//! Retention of the security trail: events older than the retention period
//! (`SECURITY_EVENT_RETENTION_DAYS`) are deleted, in batches, on every pass.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::Service;
use ensinalab_ports::SecurityLog;
use time::OffsetDateTime;

use crate::Job;

/// How often the trail is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The periodic prune.
pub struct TrailRetention<S, B> {
    service: Arc<Service<S, B>>,
    keep: Duration,
}

impl<S, B> TrailRetention<S, B> {
    /// Keeps `keep` of the trail.
    pub fn new(service: Arc<Service<S, B>>, keep: Duration) -> Self {
        Self { service, keep }
    }
}

impl<S: SecurityLog + 'static, B: Send + Sync + 'static> Job for TrailRetention<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        let before = OffsetDateTime::now_utc() - self.keep;
        match self.service.prune_security_events(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, %before, "security events past retention deleted"),
            Err(err) => {
                tracing::warn!(error = %err, "security trail retention failed; next pass retries")
            }
        }
        ControlFlow::Continue(())
    }
}
