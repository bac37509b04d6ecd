//! [`CeleryBroker`]: the adapter itself.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::{Manager, Pool, Runtime};
use ensinalab_domain::{CeleryState, TaskId};
use ensinalab_ports::{
    BrokerError, RevokeOutcome, RevokeReport, TakenOut, TaskBroker, TaskRequest, TaskSnapshot,
};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::CeleryConfig;
use crate::error::{classify, pool_error, timed_out};
use crate::feed::{self, Subscription};
use crate::message::{
    SEP, control_envelope, envelope_body, queue_keys, task_envelope, validate_task_message,
};
use crate::result::{META_PREFIX, decode, decode_state, meta_key, revoked_value};

/// The reply exchange's routing table: without our member in it, replies are dropped.
const REPLY_BINDING: &str = "_kombu.binding.reply.celery.pidbox";
/// How long [`TaskBroker::running`] waits for `inspect active` replies (a live worker's main
/// process answers in milliseconds, even with every pool slot busy).
const INSPECT_FOR_RUNNING: Duration = Duration::from_secs(2);
/// How often a kill's confirmation is read at first, and for how long: most kills are
/// confirmed within milliseconds (docs/benchmarks.md); then less often, up to the window.
const CONFIRM_POLL_FAST: Duration = Duration::from_millis(2);
const CONFIRM_POLL_FAST_FOR: Duration = Duration::from_millis(50);
const CONFIRM_POLL_SLOW: Duration = Duration::from_millis(16);

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
}

/// Who holds a task's result key after a cancel's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// It was absent: the cancel wrote REVOKED, and no claiming worker will run the task.
    Cancel,
    /// A worker had claimed it (RECEIVED, STARTED, PROGRESS, ...): only the broadcast can stop it.
    Worker,
    /// It held a final state already, which says this; nothing was written.
    Finished(RevokeOutcome),
}

/// What a task's result value says a revoke achieved ([`RevokeOutcome::settled_by`]).
fn settled_by(id: &TaskId, raw: &[u8]) -> Option<RevokeOutcome> {
    RevokeOutcome::settled_by(&decode(id.clone(), Some(raw)))
}

/// One task a worker is executing, from `inspect active`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerTask {
    pub task_id: TaskId,
    /// Celery task name, e.g. `ensinalab.generate_video`.
    pub name: String,
    /// The pool child running it.
    pub worker_pid: Option<u32>,
    /// Epoch seconds.
    pub time_start: Option<f64>,
}

/// One worker's answer to `inspect active`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerActivity {
    /// Node name, e.g. `celery@host`.
    pub worker: String,
    /// Its running tasks (ids that are not UUIDs, from other producers, are left out).
    pub active: Vec<WorkerTask>,
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

    /// Claims `ids` for the cancel: one `SET <result key> <REVOKED> NX GET EX <revoked_ttl>` per
    /// id, the command a worker runs with RECEIVED right before it runs a task, all in one
    /// pipeline (one round trip; each command O(1), so other clients' commands go in between).
    /// Whoever writes first decides (docs/celery-contract.md, "Cancelling"). One [`Claim`] per
    /// id, in order. A failure part-way leaves the earlier claims written, which is safe: a
    /// claim is never undone, and the caller delivers the whole revoke again.
    async fn claim(
        &self,
        conn: &mut deadpool_redis::Connection,
        ids: &[&TaskId],
    ) -> Result<Vec<Claim>, BrokerError> {
        let cfg = &self.inner.config;
        let date_done = utc_iso8601_now();
        let ttl = cfg.revoked_ttl.as_secs().max(1);
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("SET")
                .arg(meta_key(id))
                .arg(revoked_value(id, &date_done))
                .arg("NX")
                .arg("GET")
                .arg("EX")
                .arg(ttl);
        }
        // Every id is owed a removal of its message from the queue (crate::unqueue), in the
        // same round trip; the unqueue pass drops those whose claim the cancel did not win.
        if cfg.unqueue {
            let owed = crate::unqueue::owed_key(&cfg.queue);
            for batch in ids.chunks(crate::unqueue::SET_CHUNK) {
                pipe.cmd("SADD")
                    .arg(&owed)
                    .arg(batch.iter().map(|id| id.as_str()).collect::<Vec<_>>())
                    .ignore();
            }
        }
        let before: Vec<Option<Vec<u8>>> = self
            .bounded(cfg.command_timeout, pipe.query_async(conn))
            .await?;
        if before.len() != ids.len() {
            return Err(BrokerError::Protocol(format!(
                "{} replies to {} claims",
                before.len(),
                ids.len()
            )));
        }
        // Not PUBLISHed on the key's channel as a worker's write is: nobody waits on a task the
        // service cancelled itself (its row is cancelled already), and the worker that discards
        // the message later publishes its own REVOKED.
        Ok(before
            .iter()
            .zip(ids)
            .map(|(value, id)| match value {
                None => Claim::Cancel,
                Some(raw) => settled_by(id, raw).map_or(Claim::Worker, Claim::Finished),
            })
            .collect())
    }

    /// Waits up to `CeleryConfig::revoke_confirm` for the workers to confirm what the kill
    /// broadcast did to `held` (tasks a worker had claimed): the result each task's worker writes
    /// once the task is terminated, or finished anyway. Reads the result keys again (one `MGET`
    /// each time, often at first, then less) and returns the tasks that settled; the others
    /// stay unconfirmed. A failed read ends the wait early: the kill went out either way.
    async fn confirmations<'a>(&self, held: &[&'a TaskId]) -> Vec<(&'a TaskId, RevokeOutcome)> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.inner.config.revoke_confirm;
        let mut settled = Vec::with_capacity(held.len());
        let mut waiting: Vec<&TaskId> = held.to_vec();
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let pause = if started.elapsed() < CONFIRM_POLL_FAST_FOR {
                CONFIRM_POLL_FAST
            } else {
                CONFIRM_POLL_SLOW
            };
            tokio::time::sleep(pause.min(left)).await;
            let Ok(values) = self.values(&waiting).await else {
                break;
            };
            let mut still = Vec::with_capacity(waiting.len());
            for (id, raw) in waiting.into_iter().zip(values) {
                match raw.as_deref().and_then(|raw| settled_by(id, raw)) {
                    Some(outcome) => settled.push((id, outcome)),
                    None => still.push(id),
                }
            }
            waiting = still;
        }
        settled
    }

    /// Asks every worker for its running tasks and collects the replies for at most
    /// `timeout` (returning earlier once every worker that heard the request has answered).
    /// For health checks and the reconciler; too slow for a user request.
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached.
    pub async fn inspect_active(
        &self,
        timeout: Duration,
    ) -> Result<Vec<WorkerActivity>, BrokerError> {
        let oid = uuid::Uuid::new_v4().to_string();
        let ticket = uuid::Uuid::new_v4().to_string();
        let reply_queue = format!("{oid}.reply.celery.pidbox");
        let reply_keys = queue_keys(&reply_queue);
        let member = format!("{oid}{SEP}{SEP}{reply_queue}");
        let limit = self.inner.config.command_timeout;
        let mut conn = self.pooled().await?;

        self.bounded(
            limit,
            redis::cmd("SADD")
                .arg(REPLY_BINDING)
                .arg(&member)
                .exec_async(&mut conn),
        )
        .await?;
        let collected = self
            .collect_active(&mut conn, &oid, &ticket, &reply_keys, timeout)
            .await;
        // Reply lists get no TTL: always clean up. A connection that timed out may still be
        // blocked in BRPOP, so it is not given back to the pool.
        let cleanup = self
            .bounded(limit, async {
                redis::pipe()
                    .cmd("SREM")
                    .arg(REPLY_BINDING)
                    .arg(&member)
                    .ignore()
                    .cmd("DEL")
                    .arg(&reply_keys[..])
                    .ignore()
                    .exec_async(&mut conn)
                    .await
            })
            .await;
        if collected.is_err() || cleanup.is_err() {
            drop(deadpool_redis::Connection::take(conn));
        }
        if let Err(err) = &cleanup {
            tracing::warn!(error = %err, "could not clean up an inspect reply queue");
        }
        collected
    }

    async fn collect_active(
        &self,
        conn: &mut deadpool_redis::Connection,
        oid: &str,
        ticket: &str,
        reply_keys: &[String; 4],
        timeout: Duration,
    ) -> Result<Vec<WorkerActivity>, BrokerError> {
        let limit = self.inner.config.command_timeout;
        let request = control_envelope(
            "active",
            json!({"safe": null}),
            Some((ticket, oid)),
            epoch_secs() + timeout.as_secs_f64(),
            &uuid::Uuid::new_v4().to_string(),
        );
        let listeners: usize = self
            .bounded(
                limit,
                redis::cmd("PUBLISH")
                    .arg(&self.inner.pidbox_channel)
                    .arg(request.to_string())
                    .query_async(conn),
            )
            .await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut workers = Vec::new();
        while workers.len() < listeners {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let popped: Option<(String, String)> = self
                .bounded(
                    left + limit,
                    redis::cmd("BRPOP")
                        .arg(&reply_keys[..])
                        .arg(left.as_secs_f64().max(0.01))
                        .query_async(conn),
                )
                .await?;
            let Some((_, raw)) = popped else { break };
            let Ok(envelope) = serde_json::from_str::<Value>(&raw) else {
                continue;
            };
            if envelope["headers"]["ticket"].as_str() != Some(ticket) {
                continue;
            }
            if let Some(Value::Object(body)) = envelope_body(&envelope) {
                workers.extend(body.into_iter().map(|(worker, reply)| WorkerActivity {
                    worker,
                    active: active_tasks(&reply),
                }));
            }
        }
        Ok(workers)
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
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let limit = self.inner.config.command_timeout;
        let mut seen = HashSet::with_capacity(ids.len());
        let unique: Vec<&TaskId> = ids.iter().filter(|id| seen.insert(*id)).collect();
        let mut conn = self.pooled().await?;

        let claims = self.claim(&mut conn, &unique).await?;
        let mut outcome_of: HashMap<&str, RevokeOutcome> = HashMap::with_capacity(unique.len());
        // Tasks a worker had claimed: the kill is for them, and only they can confirm one.
        let mut held: Vec<&TaskId> = Vec::new();
        // ONE broadcast for every id not already final. The ones this cancel claimed are in it
        // too, so live workers (stock ones included) also hold them in their revoked sets.
        let mut to_signal: Vec<&str> = Vec::with_capacity(unique.len());
        for (id, claim) in unique.iter().zip(&claims) {
            match claim {
                // A claiming worker never runs it; a stock worker learns it from the broadcast,
                // and the removal pass takes its message out of the queue.
                Claim::Cancel => {
                    outcome_of.insert(id.as_str(), RevokeOutcome::Claimed);
                    to_signal.push(id.as_str());
                }
                Claim::Worker => {
                    held.push(id);
                    to_signal.push(id.as_str());
                }
                Claim::Finished(outcome) => {
                    outcome_of.insert(id.as_str(), *outcome);
                }
            }
        }
        let listeners: i64 = if to_signal.is_empty() {
            0
        } else {
            let request = control_envelope(
                "revoke",
                json!({"task_id": to_signal, "terminate": true, "signal": "SIGKILL"}),
                None,
                epoch_secs() + 10.0,
                &uuid::Uuid::new_v4().to_string(),
            );
            let published = self
                .bounded(
                    limit,
                    redis::cmd("PUBLISH")
                        .arg(&self.inner.pidbox_channel)
                        .arg(request.to_string())
                        .query_async(&mut conn),
                )
                .await;
            // The claims are already written: report them, and report the rest as unheard
            // (which is the truth) rather than failing the whole call.
            published.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "revoke broadcast failed after the claims");
                0
            })
        };
        drop(conn);

        if listeners > 0 && !held.is_empty() {
            for (id, outcome) in self.confirmations(&held).await {
                outcome_of.insert(id.as_str(), outcome);
            }
        }
        let unconfirmed = if listeners > 0 {
            RevokeOutcome::Signalled
        } else {
            RevokeOutcome::NoWorkerListening
        };
        Ok(ids
            .iter()
            .map(|id| RevokeReport {
                task_id: id.clone(),
                outcome: outcome_of.get(id.as_str()).copied().unwrap_or(unconfirmed),
            })
            .collect())
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
        if !self.inner.config.unqueue {
            return Ok(None);
        }
        self.unqueue_pass().await.map(Some)
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        let pong: String = self
            .on_shared(|mut conn| async move { redis::cmd("PING").query_async(&mut conn).await })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(BrokerError::Protocol(format!("PING answered {pong:?}")))
        }
    }
}

/// The tasks of one worker's `active` reply.
fn active_tasks(reply: &Value) -> Vec<WorkerTask> {
    let Some(list) = reply.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|t| {
            Some(WorkerTask {
                task_id: TaskId::parse(t.get("id")?.as_str()?).ok()?,
                name: t
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                worker_pid: t
                    .get("worker_pid")
                    .and_then(Value::as_u64)
                    .and_then(|p| u32::try_from(p).ok()),
                time_start: t.get("time_start").and_then(Value::as_f64),
            })
        })
        .collect()
}

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `2026-11-28T14:27:54.198313+00:00`, the form Celery writes `date_done` in.
fn utc_iso8601_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inspect_active_reply_lists_the_running_tasks() {
        let path = format!(
            "{}/tests/fixtures/inspect-active-reply.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let body = envelope_body(&file["element"]).unwrap();
        let tasks = active_tasks(&body["w1@lab"]);
        assert_eq!(
            tasks,
            vec![WorkerTask {
                task_id: TaskId::parse("1c6e7fe4-d636-474b-a4cd-c016667198bf").unwrap(),
                name: "labapp.progress".into(),
                worker_pid: Some(11362),
                time_start: Some(1_795_876_074.222_211_1),
            }]
        );
    }

    #[test]
    fn date_done_has_celerys_shape() {
        let s = utc_iso8601_now();
        assert_eq!(s.len(), "2026-11-28T14:27:54.198313+00:00".len(), "{s}");
        assert!(s.ends_with("+00:00"));
    }

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
