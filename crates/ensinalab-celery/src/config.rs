//! How to reach the Celery deployment.

use std::time::Duration;

/// Where the broker and result backend live and how long to wait for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeleryConfig {
    /// Broker and result backend (the workers must use the same URL, DB number included: the
    /// pidbox channel is `/<db>.celery.pidbox`).
    pub redis_url: String,
    /// RabbitMQ as the broker (`CELERY_BROKER_URL`, `amqp://user:pass@host:port/vhost`): task
    /// messages, control broadcasts and worker events go there, the result backend (and every
    /// claim) stays at `redis_url`. `None`: Redis is the broker too.
    pub broker_url: Option<String>,
    /// The queue the workers consume (`task_default_queue`, `-Q`). `CELERY_QUEUE`.
    pub queue: String,
    /// How long the REVOKED value a cancel writes for a task no worker had claimed lives. That
    /// value is the cancel's claim on the task: a cancelled message still waiting in the queue
    /// this long after the cancel could run (docs/celery-contract.md, "Cancelling"). Longer
    /// than the workers' `result_expires` (a day) on purpose: a backlog can hold a message for
    /// days.
    pub revoked_ttl: Duration,
    /// How long a revoke waits for the workers to confirm the kill of a task one of them was
    /// running (`REVOKE_CONFIRM_MS`): within it the report says `killed`, after it
    /// `signalled`. Zero: never wait.
    pub revoke_confirm: Duration,
    /// Whether claimed tasks' messages are taken out of the queue (`crate::unqueue`), for
    /// workers that do not claim (`CELERY_UNQUEUE`). Off only when every worker claims. Never
    /// with RabbitMQ, which cannot take one message out of a queue.
    pub unqueue: bool,
    /// Upper bound of every Redis call (connect included), so a dead Redis fails fast.
    pub command_timeout: Duration,
    /// Connections of the pool used for revokes, broadcasts and blocking reads.
    pub pool_size: usize,
    /// `origin` header of published tasks (informational: logs, Flower).
    pub origin: String,
}

impl CeleryConfig {
    /// Defaults for `redis_url`: queue `celery`, cancels' REVOKED values kept seven days, kills
    /// confirmed within 250 ms, 2 s timeout.
    pub fn new(redis_url: impl Into<String>) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Self {
            redis_url: redis_url.into(),
            broker_url: None,
            queue: "celery".to_owned(),
            revoked_ttl: Duration::from_secs(7 * 86_400),
            revoke_confirm: Duration::from_millis(250),
            unqueue: true,
            command_timeout: Duration::from_secs(2),
            pool_size: 8,
            origin: format!(
                "ensinalab@{}",
                if host.is_empty() { "localhost" } else { &host }
            ),
        }
    }

    /// Same, with RabbitMQ at `url` as the broker.
    #[must_use]
    pub fn with_broker(mut self, url: impl Into<String>) -> Self {
        self.broker_url = Some(url.into());
        self
    }

    /// Same, consuming queue `queue`.
    #[must_use]
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }
}
