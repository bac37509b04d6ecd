//! `inspect active`: which tasks the workers are running, asked on the pidbox channel and
//! collected from a reply queue of our own.

use std::time::Duration;

use ensinalab_domain::TaskId;
use ensinalab_ports::BrokerError;
use serde_json::{Value, json};

use super::{CeleryBroker, epoch_secs};
use crate::message::{SEP, control_body, control_envelope, envelope_body, queue_keys};

/// The reply exchange's routing table: without our member in it, replies are dropped.
const REPLY_BINDING: &str = "_kombu.binding.reply.celery.pidbox";
/// How long [`TaskBroker::running`](ensinalab_ports::TaskBroker::running) waits for `inspect active` replies (a live worker's main
/// process answers in milliseconds, even with every pool slot busy).
pub(super) const INSPECT_FOR_RUNNING: Duration = Duration::from_secs(2);

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

impl CeleryBroker {
    /// Asks every worker for its running tasks and collects the replies for at most
    /// `timeout` (returning earlier once every worker that heard the request has answered).
    /// For health checks and the reconciler; too slow for a user request.
    ///
    /// On RabbitMQ, which does not say how many workers heard the request, the whole `timeout`
    /// is waited.
    ///
    /// # Errors
    /// `Unavailable` when Redis (or RabbitMQ, when it is the broker) cannot be reached.
    pub async fn inspect_active(
        &self,
        timeout: Duration,
    ) -> Result<Vec<WorkerActivity>, BrokerError> {
        let oid = uuid::Uuid::new_v4().to_string();
        let ticket = uuid::Uuid::new_v4().to_string();
        if let Some(link) = self.amqp() {
            let body = control_body("active", json!({"safe": null}), Some((&ticket, &oid)));
            let expires_at = epoch_secs() + timeout.as_secs_f64();
            let replies =
                crate::amqp::inspect::collect(link, &body, expires_at, &oid, &ticket, timeout)
                    .await?;
            return Ok(replies.into_iter().flat_map(activities).collect());
        }
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
            if let Some(body) = envelope_body(&envelope) {
                workers.extend(activities(body));
            }
        }
        Ok(workers)
    }
}

/// The workers' `active` replies in one reply body (`{"<worker>": [<task>, ...]}`).
fn activities(body: Value) -> Vec<WorkerActivity> {
    let Value::Object(body) = body else {
        return Vec::new();
    };
    body.into_iter()
        .map(|(worker, reply)| WorkerActivity {
            worker,
            active: active_tasks(&reply),
        })
        .collect()
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
}
