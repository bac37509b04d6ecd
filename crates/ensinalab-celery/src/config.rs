//! How to reach the Celery deployment.

use std::time::Duration;

/// Where the broker and result backend live and how long to wait for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeleryConfig {
    /// Broker and result backend (the workers must use the same URL, DB number included: the
    /// pidbox channel is `/<db>.celery.pidbox`).
    pub redis_url: String,
    /// The queue the workers consume (`task_default_queue`, `-Q`). `CELERY_QUEUE`.
    pub queue: String,
    /// TTL of the REVOKED values this adapter writes for messages it removed, as the workers'
    /// `result_expires` (Celery's default: one day). Zero = no expiry.
    pub result_expires: Duration,
    /// Upper bound of every Redis call (connect included), so a dead Redis fails fast.
    pub command_timeout: Duration,
    /// Connections of the pool used for scripts, broadcasts and blocking reads.
    pub pool_size: usize,
    /// `origin` header of published tasks (informational: logs, Flower).
    pub origin: String,
}

impl CeleryConfig {
    /// Defaults for `redis_url`: queue `celery`, one-day results, 2 s timeout.
    pub fn new(redis_url: impl Into<String>) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Self {
            redis_url: redis_url.into(),
            queue: "celery".to_owned(),
            result_expires: Duration::from_secs(86_400),
            command_timeout: Duration::from_secs(2),
            pool_size: 8,
            origin: format!(
                "ensinalab@{}",
                if host.is_empty() { "localhost" } else { &host }
            ),
        }
    }

    /// Same, consuming queue `queue`.
    #[must_use]
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }
}
