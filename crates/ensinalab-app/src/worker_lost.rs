//! The lost-worker rule. A worker killed whole (host death, OOM of the main process, `kill -9`)
//! never reports again: Celery's backend keeps its running task at STARTED/PROGRESS forever, and
//! no WorkerLostError comes (that one only comes for a pool child killed under a live worker).
//! The rule: a task the backend shows running, that no live worker reports executing, on every
//! check for a grace period (the server uses twice the task time limit), has lost its worker;
//! its row is marked `failed`
//! (through the in-flight guard, so a cancel or a late report that got there first wins).
//! The caller (the server's reconciler) keeps the "missing since" memory between checks.

use ensinalab_domain::{BriefingId, TaskId, VideoId};

use ensinalab_ports::{
    AnyStatus, BriefingUpdate, InFlightTask, Store, StoreError, TaskBroker, VideoUpdate,
};

use crate::{Service, reconcile::ReconcileError};

/// The `error_message` of a row whose worker was lost.
pub const WORKER_LOST: &str = "WorkerLostError: o worker que executava a tarefa desapareceu";

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// Up to `limit` in-flight rows whose task the backend shows running but no live worker
    /// executes. `None` when the broker cannot tell who runs what.
    ///
    /// # Errors
    /// [`ReconcileError`] when the store or the broker fails.
    pub async fn orphaned_tasks(
        &self,
        limit: u32,
    ) -> Result<Option<Vec<InFlightTask>>, ReconcileError> {
        let rows = self.store.in_flight(limit).await?;
        if rows.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let Some(running) = self.broker.running().await? else {
            return Ok(None);
        };
        let ids: Vec<TaskId> = rows.iter().map(|r| r.task_id.clone()).collect();
        let states = self.broker.states(&ids).await?;
        Ok(Some(
            rows.into_iter()
                .zip(states)
                .filter(|(row, s)| s.state.is_running() && !running.contains(&row.task_id))
                .map(|(row, _)| row)
                .collect(),
        ))
    }

    /// Marks the row of a task whose worker was lost as `failed` ([`WORKER_LOST`]), unless it
    /// left flight meanwhile. Returns whether it changed.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    pub async fn fail_lost(&self, row: &InFlightTask) -> Result<bool, StoreError> {
        let id = row.resource.id;
        match row.status {
            AnyStatus::Briefing(_) => {
                let update = BriefingUpdate::Failed(WORKER_LOST.to_owned());
                self.update_briefing(BriefingId(id), &update).await
            }
            AnyStatus::Video(_) => {
                let update = VideoUpdate::Failed(WORKER_LOST.to_owned());
                self.update_video(VideoId(id), &update, update.change())
                    .await
            }
        }
    }
}
