//! The revoke: each task's result key claimed for the cancel, one kill broadcast for the tasks
//! not final, and a short wait for the workers to confirm the kills.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ensinalab_domain::TaskId;
use ensinalab_ports::{BrokerError, RevokeOutcome, RevokeReport};
use serde_json::json;

use super::{CeleryBroker, epoch_secs};
use crate::amqp::wire;
use crate::message::{control_body, control_envelope};
use crate::result::{decode, meta_key, revoked_value};

/// How often a kill's confirmation is read at first, and for how long: most kills are
/// confirmed within milliseconds (docs/benchmarks.md); then less often, up to the window.
const CONFIRM_POLL_FAST: Duration = Duration::from_millis(2);
const CONFIRM_POLL_FAST_FOR: Duration = Duration::from_millis(50);
const CONFIRM_POLL_SLOW: Duration = Duration::from_millis(16);

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

impl CeleryBroker {
    /// [`TaskBroker::revoke`](ensinalab_ports::TaskBroker::revoke): the claims, the broadcast,
    /// the confirmations; one report per id, in order.
    pub(super) async fn revoke_tasks(
        &self,
        ids: &[TaskId],
    ) -> Result<Vec<RevokeReport>, BrokerError> {
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
                    // On RabbitMQ the broadcast is all a stock worker ever learns of a cancel
                    // (no message can be taken out of the queue), so a revoke delivered again
                    // after a failed broadcast names the tasks its first delivery claimed.
                    if self.amqp().is_some() && *outcome == RevokeOutcome::AlreadyFinished {
                        to_signal.push(id.as_str());
                    }
                }
            }
        }
        let listeners: i64 = if to_signal.is_empty() {
            0
        } else if let Some(link) = self.amqp() {
            drop(conn);
            let body = control_body(
                "revoke",
                json!({"task_id": to_signal, "terminate": true, "signal": "SIGKILL"}),
                None,
            );
            // The claims are written; a broadcast RabbitMQ did not confirm is owed again (the
            // error leaves the revoke pending), since nothing else reaches a stock worker.
            i64::from(
                link.publish(wire::control(&body, epoch_secs() + 10.0))
                    .await?,
            )
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
            drop(conn);
            published.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "revoke broadcast failed after the claims");
                0
            })
        };

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
        if self.unqueues() {
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
    fn date_done_has_celerys_shape() {
        let s = utc_iso8601_now();
        assert_eq!(s.len(), "2026-11-28T14:27:54.198313+00:00".len(), "{s}");
        assert!(s.ends_with("+00:00"));
    }
}
