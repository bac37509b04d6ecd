//! [`CeleryBroker`]: the adapter itself.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::{Manager, Pool, Runtime};
use ensinalab_domain::{CeleryState, TaskId};
use ensinalab_ports::{BrokerError, RevokeReport, TakenOut, TaskBroker, TaskRequest, TaskSnapshot};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::mpsc;

use crate::amqp::{Link, parse_broker_url, wire};
use crate::config::CeleryConfig;
use crate::error::{classify, pool_error, timed_out};
use crate::feed::{self, Subscription};
use crate::message::{queue_keys, task_envelope, validate_task_message};
use crate::result::{META_PREFIX, decode, decode_state, meta_key};

mod inspect;
mod revoke;

use inspect::INSPECT_FOR_RUNNING;
pub use inspect::{WorkerActivity, WorkerTask};

/// Celery over Redis. Cheap to clone: clones share connections.
#[derive(Clone)]
pub struct CeleryBroker {
    inner: Arc<Inner>,
}

struct Inner {
    config: CeleryConfig,
    client: Client,
    /// Revokes, broadcasts and blocking reads.
    pool: Pool,
    /// The hot path's multiplexed connections, one per thread that calls, each made on first
    /// use on that thread (so its driver task runs on that thread's runtime) and dropped after
    /// a failure. deadpool's `get()` would cost an UNWATCH+PING round trip per call; one
    /// connection for the process made every read wake the runtime thread that drove it
    /// (docs/benchmarks.md, "per-thread read connections").
    shared: Mutex<HashMap<ThreadId, MultiplexedConnection>>,
    /// `/<db>.celery.pidbox`: PUB/SUB ignores SELECT, so kombu puts the DB in the name.
    pidbox_channel: String,
    queue_keys: [String; 4],
    /// RabbitMQ, when it is the broker (`CeleryConfig::broker_url`).
    amqp: Option<Link>,
}

impl std::fmt::Debug for CeleryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeleryBroker")
            .field("queue", &self.inner.config.queue)
            .field("pidbox_channel", &self.inner.pidbox_channel)
            .finish_non_exhaustive()
    }
}

impl CeleryBroker {
    /// The result-backend values of `ids`, in order: one `MGET` whatever the count (even for
    /// one id: one round trip, and always an array back).
    async fn values<T: Borrow<TaskId> + Sync>(
        &self,
        ids: &[T],
    ) -> Result<Vec<Option<Vec<u8>>>, BrokerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| meta_key(id.borrow())).collect();
        let values: Vec<Option<Vec<u8>>> = self
            .on_shared(|mut conn| async move {
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
            })
            .await?;
        if values.len() != ids.len() {
            return Err(BrokerError::Protocol(format!(
                "MGET of {} keys returned {} values",
                ids.len(),
                values.len()
            )));
        }
        Ok(values)
    }

    /// Builds the adapter without touching the network (connections are made on first use).
    ///
    /// # Errors
    /// `Protocol` when the URL or the queue name is invalid, or the pool cannot be built.
    pub fn new(config: CeleryConfig) -> Result<Self, BrokerError> {
        if config.queue.is_empty() || config.queue.chars().any(|c| c.is_control()) {
            return Err(BrokerError::Protocol(format!(
                "invalid queue name {:?}",
                config.queue
            )));
        }
        let amqp = match &config.broker_url {
            Some(url) => Some(Link::new(
                parse_broker_url(url)
                    .map_err(|e| BrokerError::Protocol(format!("invalid broker url: {e}")))?,
                &config.queue,
                config.command_timeout,
            )),
            None => None,
        };
        let client = Client::open(config.redis_url.as_str())
            .map_err(|e| BrokerError::Protocol(format!("invalid redis url: {e}")))?;
        let db = client.get_connection_info().redis_settings().db();
        // No response timeout on pooled connections: BRPOP blocks by design. Every pooled
        // call is bounded by tokio::time::timeout instead.
        let manager = Manager::new_with_config(
            config.redis_url.as_str(),
            AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.command_timeout))
                .set_response_timeout(None),
        )
        .map_err(|e| BrokerError::Protocol(format!("invalid redis url: {e}")))?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.command_timeout))
            .create_timeout(Some(config.command_timeout))
            .recycle_timeout(Some(config.command_timeout))
            .build()
            .map_err(|e| BrokerError::Protocol(format!("redis pool: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pidbox_channel: format!("/{db}.celery.pidbox"),
                queue_keys: queue_keys(&config.queue),
                client,
                pool,
                shared: Mutex::default(),
                amqp,
                config,
            }),
        })
    }

    /// [`Self::new`], then a PING.
    ///
    /// # Errors
    /// `Protocol` for an invalid configuration; `Unavailable` when Redis does not answer.
    pub async fn connect(config: CeleryConfig) -> Result<Self, BrokerError> {
        let broker = Self::new(config)?;
        broker.ping().await?;
        Ok(broker)
    }

    /// The Redis client, for the PUB/SUB feeds (each opens its own connection).
    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &CeleryConfig {
        &self.inner.config
    }

    /// RabbitMQ, when it is the broker.
    pub(crate) fn amqp(&self) -> Option<&Link> {
        self.inner.amqp.as_ref()
    }

    /// Whether claimed tasks' messages are taken out of the queue: configured, and the queue is
    /// a Redis list (RabbitMQ cannot take one message out of a queue).
    pub(crate) fn unqueues(&self) -> bool {
        self.inner.config.unqueue && self.inner.amqp.is_none()
    }

    /// The pidbox channel control messages go to (`/<db>.celery.pidbox`).
    pub fn pidbox_channel(&self) -> &str {
        &self.inner.pidbox_channel
    }

    /// Runs `f` on this thread's multiplexed connection within the command timeout; a failed
    /// connection is dropped so the next call makes a new one.
    pub(crate) async fn on_shared<T, F, Fut>(&self, f: F) -> Result<T, BrokerError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let limit = self.inner.config.command_timeout;
        let thread = thread::current().id();
        let outcome = tokio::time::timeout(limit, async {
            let conn = self.shared_connection(thread).await?;
            f(conn).await
        })
        .await;
        let forget = || {
            self.connections().remove(&thread);
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if err.is_unrecoverable_error() || err.is_connection_dropped() || err.is_io_error()
                {
                    forget();
                }
                Err(classify(err))
            }
            Err(_) => {
                forget();
                Err(timed_out(limit))
            }
        }
    }

    async fn shared_connection(
        &self,
        thread: ThreadId,
    ) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(conn) = self.connections().get(&thread) {
            return Ok(conn.clone());
        }
        let limit = self.inner.config.command_timeout;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(limit))
            .set_response_timeout(Some(limit));
        let conn = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // Two first calls on one thread may race: the first one kept serves both.
        Ok(self.connections().entry(thread).or_insert(conn).clone())
    }

    /// The per-thread read connections (a poisoned lock still holds valid connections).
    fn connections(&self) -> MutexGuard<'_, HashMap<ThreadId, MultiplexedConnection>> {
        self.inner
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A pooled connection, within the command timeout.
    pub(crate) async fn pooled(&self) -> Result<deadpool_redis::Connection, BrokerError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// Bounds one pooled call.
    pub(crate) async fn bounded<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BrokerError> {
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(timed_out(limit)),
        }
    }

    /// A feed of task ids whose backend value changed (the result backend PUBLISHes every
    /// write on `celery-task-meta-<id>`; this PSUBSCRIBEs `celery-task-meta-*`). Reconnects
    /// by itself; transitions made while disconnected are not replayed, so pair it with a
    /// periodic sweep. PUB/SUB is server-wide: ids of other DBs or services on the same Redis
    /// show up too. The feed stops when the receiver is dropped. Needs a tokio runtime.
    pub fn watch(&self) -> mpsc::Receiver<TaskId> {
        let (tx, rx) = mpsc::channel(1024);
        let pattern = Subscription::Pattern(format!("{META_PREFIX}*"));
        let task_id = |msg: &redis::Msg| {
            let channel = msg.get_channel_name();
            TaskId::parse(channel.strip_prefix(META_PREFIX)?).ok()
        };
        tokio::spawn(feed::follow(
            self.inner.client.clone(),
            pattern,
            self.inner.config.command_timeout,
            "celery change feed",
            None,
            task_id,
            tx,
        ));
        rx
    }
}

impl TaskBroker for CeleryBroker {
    async fn publish(&self, task: &TaskRequest) -> Result<(), BrokerError> {
        let cfg = &self.inner.config;
        let tag = uuid::Uuid::new_v4().to_string();
        let envelope = task_envelope(task, &cfg.queue, &cfg.origin, &tag);
        validate_task_message(&envelope).map_err(BrokerError::Protocol)?;
        if let Some(link) = self.amqp() {
            let message = wire::task(&envelope, &cfg.queue).map_err(BrokerError::Protocol)?;
            // Dispatched only once RabbitMQ confirmed it; the queue is declared on connect, so
            // a message it returned as unroutable means the topology is not Celery's.
            return match link.publish(message).await? {
                true => Ok(()),
                false => Err(BrokerError::Protocol(format!(
                    "rabbitmq could not route the task to queue {:?}",
                    cfg.queue
                ))),
            };
        }
        let payload = envelope.to_string();
        let key = self.inner.queue_keys[0].clone();
        self.on_shared(|mut conn| async move {
            redis::cmd("LPUSH")
                .arg(key)
                .arg(payload)
                .exec_async(&mut conn)
                .await
        })
        .await
    }

    async fn states(&self, ids: &[TaskId]) -> Result<Vec<TaskSnapshot>, BrokerError> {
        Ok(ids
            .iter()
            .zip(self.values(ids).await?)
            .map(|(id, raw)| decode(id.clone(), raw.as_deref()))
            .collect())
    }

    async fn states_only(&self, ids: &[&TaskId]) -> Result<Vec<CeleryState>, BrokerError> {
        Ok(self
            .values(ids)
            .await?
            .iter()
            .map(|raw| decode_state(raw.as_deref()))
            .collect())
    }

    async fn revoke(&self, ids: &[TaskId]) -> Result<Vec<RevokeReport>, BrokerError> {
        self.revoke_tasks(ids).await
    }

    async fn running(&self) -> Result<Option<Vec<TaskId>>, BrokerError> {
        let replies = self.inspect_active(INSPECT_FOR_RUNNING).await?;
        Ok(Some(
            replies
                .into_iter()
                .flat_map(|w| w.active)
                .map(|t| t.task_id)
                .collect(),
        ))
    }

    async fn take_out_cancelled(&self) -> Result<Option<TakenOut>, BrokerError> {
        if !self.unqueues() {
            return Ok(None);
        }
        self.unqueue_pass().await.map(Some)
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        let pong: String = self
            .on_shared(|mut conn| async move { redis::cmd("PING").query_async(&mut conn).await })
            .await?;
        if let Some(link) = self.amqp() {
            link.ping().await?;
        }
        if pong == "PONG" {
            Ok(())
        } else {
            Err(BrokerError::Protocol(format!("PING answered {pong:?}")))
        }
    }
}

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_configuration_is_refused_without_io() {
        assert!(CeleryBroker::new(CeleryConfig::new("not a url")).is_err());
        assert!(
            CeleryBroker::new(CeleryConfig::new("redis://127.0.0.1:6379/3").with_queue(""))
                .is_err()
        );
        let broker = CeleryBroker::new(CeleryConfig::new("redis://127.0.0.1:6379/3")).unwrap();
        assert_eq!(broker.pidbox_channel(), "/3.celery.pidbox");
    }
}
