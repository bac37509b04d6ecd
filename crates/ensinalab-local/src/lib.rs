//! The embedded task broker: runs `ensinalab.generate_options` and `ensinalab.generate_video`
//! as tokio tasks inside the server, so the service works with no Redis and no Celery.
//!
//! It follows the Celery task contract (`docs/celery-contract.md`) with simulated work:
//! STARTED, then PROGRESS `{current, total}` for videos, then SUCCESS with the contract's
//! result. A title starting with `[fail]` fails like the reference worker does. Revoking a
//! task aborts its tokio task, so it really stops. State lives in memory only: tasks of a
//! previous process are unknown (PENDING) after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ensinalab_domain::{CeleryState, TaskId, progress_fraction};
use ensinalab_ports::{
    BrokerError, RevokeOutcome, RevokeReport, TaskBroker, TaskKind, TaskRequest, TaskSnapshot,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// How long the simulated tasks take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalConfig {
    pub options_duration: Duration,
    pub video_duration: Duration,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            options_duration: Duration::from_secs(3),
            video_duration: Duration::from_secs(30),
        }
    }
}

/// Finished results are forgotten after this long, like Celery's `result_expires`, so memory
/// stays bounded on a long-running server.
const RESULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Progress reports per video.
const VIDEO_STEPS: u32 = 10;
/// Change notifications buffered per watcher; past that they are dropped (the reconciler's
/// periodic sweep is the safety net).
const WATCH_BUFFER: usize = 1024;

struct Entry {
    snapshot: TaskSnapshot,
    handle: Option<AbortHandle>,
    finished_at: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<TaskId, Entry>,
    watchers: Vec<mpsc::Sender<TaskId>>,
}

/// The in-process broker. Cheap to clone; clones share the tasks.
#[derive(Clone, Default)]
pub struct LocalBroker {
    config: LocalConfig,
    inner: Arc<Mutex<Inner>>,
}

impl LocalBroker {
    /// A broker whose tasks take the configured time.
    pub fn new(config: LocalConfig) -> Self {
        Self {
            config,
            inner: Arc::default(),
        }
    }

    /// Task ids whose state changed, as they change (for the reconciler).
    pub fn watch(&self) -> mpsc::Receiver<TaskId> {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        self.lock().watchers.push(tx);
        rx
    }

    /// How many simulated jobs are executing right now (aborted ones are not).
    pub fn running(&self) -> usize {
        self.lock()
            .tasks
            .values()
            .filter(|e| e.handle.as_ref().is_some_and(|h| !h.is_finished()))
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets a task's state unless it is already final (a revoke wins over a late report).
    fn report(&self, id: &TaskId, state: CeleryState, info: Option<Value>, error: Option<String>) {
        let mut inner = self.lock();
        let Some(entry) = inner.tasks.get_mut(id) else {
            return;
        };
        if entry.snapshot.state.is_final() {
            return;
        }
        let progress = info.as_ref().and_then(|i| {
            Some(progress_fraction(
                i.get("current")?.as_f64()?,
                i.get("total")?.as_f64()?,
            ))
        });
        if state.is_final() {
            entry.finished_at = Some(Instant::now());
            entry.handle = None;
        }
        entry.snapshot = TaskSnapshot {
            task_id: id.clone(),
            state,
            info,
            error,
            traceback: None,
            progress,
        };
        notify(&mut inner, id);
    }

    async fn run(self, task: TaskRequest) {
        let id = task.id;
        let started = json!({"pid": std::process::id(), "hostname": "local"});
        self.report(&id, CeleryState::Started, Some(started), None);
        match task.kind {
            TaskKind::GenerateOptions { title, .. } => {
                tokio::time::sleep(self.config.options_duration).await;
                if let Some(error) = simulated_failure(&title) {
                    return self.report(&id, CeleryState::Failure, None, Some(error));
                }
                let options = ["simple", "avatar", "slides"].map(|generator| {
                    json!({
                        "title": format!("{title} ({generator})"),
                        "description": format!("Vídeo '{title}' no formato {generator}"),
                        "generator_type": generator,
                    })
                });
                self.report(
                    &id,
                    CeleryState::Success,
                    Some(json!({ "options": options })),
                    None,
                );
            }
            TaskKind::GenerateVideo {
                video_id, title, ..
            } => {
                let step = self.config.video_duration / VIDEO_STEPS;
                for current in 0..VIDEO_STEPS {
                    let meta = json!({"current": current, "total": VIDEO_STEPS});
                    self.report(
                        &id,
                        CeleryState::Custom("PROGRESS".into()),
                        Some(meta),
                        None,
                    );
                    tokio::time::sleep(step).await;
                    if current == VIDEO_STEPS / 2
                        && let Some(error) = simulated_failure(&title)
                    {
                        return self.report(&id, CeleryState::Failure, None, Some(error));
                    }
                }
                let result = json!({
                    "video_id": video_id.get(),
                    "status": "completed",
                    "url": format!("local://videos/{}", video_id.get()),
                });
                self.report(&id, CeleryState::Success, Some(result), None);
            }
            TaskKind::CleanupPartialFiles { .. } | TaskKind::SweepOrphans { .. } => {}
        }
    }
}

fn notify(inner: &mut Inner, id: &TaskId) {
    inner.watchers.retain(|w| match w.try_send(id.clone()) {
        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    });
}

/// Same rule as the reference worker, so failures can be shown without Celery.
fn simulated_failure(title: &str) -> Option<String> {
    title
        .starts_with("[fail]")
        .then(|| "ConnectionError: Failed to connect to OpenAI API".to_owned())
}

impl TaskBroker for LocalBroker {
    async fn publish(&self, task: &TaskRequest) -> Result<(), BrokerError> {
        // In-process jobs write no files, so a cleanup or a sweep has nothing to delete here.
        if !task.kind.generates() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| BrokerError::Unavailable(Box::new(e)))?;
        let mut inner = self.lock();
        inner
            .tasks
            .retain(|_, e| e.finished_at.is_none_or(|t| t.elapsed() < RESULT_TTL));
        if inner.tasks.contains_key(&task.id) {
            return Err(BrokerError::Protocol(format!(
                "task {} already published",
                task.id
            )));
        }
        inner.tasks.insert(
            task.id.clone(),
            Entry {
                snapshot: TaskSnapshot::pending(task.id.clone()),
                handle: None,
                finished_at: None,
            },
        );
        let handle = runtime.spawn(self.clone().run(task.clone())).abort_handle();
        if let Some(entry) = inner.tasks.get_mut(&task.id) {
            entry.handle = Some(handle);
        }
        Ok(())
    }

    async fn states(&self, ids: &[TaskId]) -> Result<Vec<TaskSnapshot>, BrokerError> {
        let inner = self.lock();
        Ok(ids
            .iter()
            .map(|id| {
                inner
                    .tasks
                    .get(id)
                    .map_or_else(|| TaskSnapshot::pending(id.clone()), |e| e.snapshot.clone())
            })
            .collect())
    }

    async fn revoke(&self, ids: &[TaskId]) -> Result<Vec<RevokeReport>, BrokerError> {
        let mut inner = self.lock();
        let mut reports = Vec::with_capacity(ids.len());
        for id in ids {
            let outcome = match inner.tasks.get_mut(id) {
                // Unknown here (published by a previous process): nothing can stop or run it.
                None => RevokeOutcome::NoWorkerListening,
                Some(entry) if entry.snapshot.state == CeleryState::Revoked => {
                    RevokeOutcome::AlreadyFinished
                }
                Some(entry) if entry.snapshot.state.is_final() => RevokeOutcome::FinishedFirst,
                Some(entry) => {
                    let started = entry.snapshot.state.is_running();
                    if let Some(handle) = &entry.handle {
                        handle.abort();
                    }
                    let reason = if started { "terminated" } else { "revoked" };
                    entry.snapshot = TaskSnapshot {
                        state: CeleryState::Revoked,
                        error: Some(reason.to_owned()),
                        ..TaskSnapshot::pending(id.clone())
                    };
                    entry.finished_at = Some(Instant::now());
                    // The abort above stops the task before this returns: the kill is done.
                    if started {
                        RevokeOutcome::Killed
                    } else {
                        RevokeOutcome::RemovedFromQueue
                    }
                }
            };
            if outcome.revoked() {
                notify(&mut inner, id);
            }
            reports.push(RevokeReport {
                task_id: id.clone(),
                outcome,
            });
        }
        Ok(reports)
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}
