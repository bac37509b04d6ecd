//! Keeping the database true to the broker: task reports become status changes.
//!
//! Every write goes through the store's in-flight guard, so a late report (a SUCCESS after a
//! cancel, a PROGRESS after a failure) never moves a row out of a terminal status.

use ensinalab_domain::{
    BriefingId, BriefingStatus, CeleryState, GeneratedOption, ResourceKind, TaskId, VideoId,
    VideoStatus,
};

use time::OffsetDateTime;

use ensinalab_ports::{
    AnyStatus, BriefingUpdate, BrokerError, ChangeKind, InFlightTask, ResourceRef, RevokeOutcome,
    RevokeReport, Store, StoreError, TaskBroker, TaskSnapshot, VideoUpdate,
};

use crate::Service;

/// What one reconciliation pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconcileReport {
    /// Tasks whose state was read.
    pub checked: usize,
    /// Rows that changed.
    pub updated: usize,
}

/// Why a reconciliation pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// The safety-net sweep: reads the state of up to `limit` in-flight tasks in one broker call
    /// and applies what changed.
    ///
    /// # Errors
    /// [`ReconcileError`] when the store or the broker fails.
    pub async fn reconcile_sweep(&self, limit: u32) -> Result<ReconcileReport, ReconcileError> {
        let rows = self.store.in_flight(limit).await?;
        if rows.is_empty() {
            return Ok(ReconcileReport::default());
        }
        let ids: Vec<TaskId> = rows.iter().map(|r| r.task_id.clone()).collect();
        let states = self.broker.states(&ids).await?;
        let mut report = ReconcileReport {
            checked: rows.len(),
            updated: 0,
        };
        for (row, snapshot) in rows.iter().zip(&states) {
            if self.apply(row, snapshot).await? {
                report.updated += 1;
            }
        }
        Ok(report)
    }

    /// Applies the current state of one task (on a change notification from the broker).
    /// Unknown task ids are ignored: they belong to another service sharing the broker.
    ///
    /// # Errors
    /// [`ReconcileError`] when the store or the broker fails.
    pub async fn reconcile_task(&self, task_id: &TaskId) -> Result<bool, ReconcileError> {
        let Some(resource) = self.store.resource_for_task(task_id).await? else {
            return Ok(false);
        };
        let Some(snapshot) = self
            .broker
            .states(std::slice::from_ref(task_id))
            .await?
            .pop()
        else {
            return Ok(false);
        };
        Ok(self.apply_snapshot(resource, &snapshot).await?)
    }

    /// Applies `snapshot`, the state of the task of `resource` (whatever the row's status now:
    /// the guarded write decides), and settles its open revoke when the task ended. Returns
    /// whether the row moved.
    pub(super) async fn apply_snapshot(
        &self,
        resource: ResourceRef,
        snapshot: &TaskSnapshot,
    ) -> Result<bool, StoreError> {
        let task_id = &snapshot.task_id;
        // A cancelled task's end settles its open revoke: the kill confirmed, or the task
        // finished first.
        if let Some(outcome) = RevokeOutcome::settled_by(snapshot) {
            let report = RevokeReport {
                task_id: task_id.clone(),
                outcome,
            };
            self.settle_open(&[report], OffsetDateTime::now_utc())
                .await?;
        }
        let row = InFlightTask {
            resource,
            task_id: task_id.clone(),
            // Unknown here; the guarded write decides. Pending is in flight for both kinds.
            status: match resource.kind {
                ResourceKind::Briefing => AnyStatus::Briefing(BriefingStatus::Pending),
                ResourceKind::Video => AnyStatus::Video(VideoStatus::Queued),
            },
            progress: None,
            started: false,
        };
        self.apply(&row, snapshot).await
    }

    async fn apply(&self, row: &InFlightTask, snapshot: &TaskSnapshot) -> Result<bool, StoreError> {
        let id = row.resource.id;
        match row.status {
            AnyStatus::Briefing(status) => match briefing_update(status, row.started, snapshot) {
                Some(update) => self.update_briefing(BriefingId(id), &update).await,
                None => Ok(false),
            },
            AnyStatus::Video(status) => {
                match video_update(status, row.started, row.progress, snapshot) {
                    Some(update) => {
                        // A running task's first report is its start; the next ones are progress.
                        let change = match (&update, &snapshot.state) {
                            (VideoUpdate::Running { .. }, CeleryState::Started) => {
                                ChangeKind::Started
                            }
                            _ => update.change(),
                        };
                        self.update_video(VideoId(id), &update, change).await
                    }
                    None => Ok(false),
                }
            }
        }
    }

    /// Applies `update` to briefing `id` through the store's in-flight guard and, when the row
    /// moved, emits its change. Returns whether it moved.
    pub(crate) async fn update_briefing(
        &self,
        id: BriefingId,
        update: &BriefingUpdate,
    ) -> Result<bool, StoreError> {
        let moved = self.store.apply_briefing_update(id, update).await?;
        if let Some(row) = &moved {
            self.emit_now(row, update.change());
        }
        Ok(moved.is_some())
    }

    /// [`Self::update_briefing`] for a video, emitting `change` when it moved.
    pub(crate) async fn update_video(
        &self,
        id: VideoId,
        update: &VideoUpdate,
        change: ChangeKind,
    ) -> Result<bool, StoreError> {
        let moved = self.store.apply_video_update(id, update).await?;
        if let Some(row) = &moved {
            self.emit_now(row, change);
        }
        Ok(moved.is_some())
    }
}

/// What a task state means for a briefing in `status` (`started`: a worker already reported
/// it running); `None` when nothing changes.
pub(crate) fn briefing_update(
    status: BriefingStatus,
    started: bool,
    s: &TaskSnapshot,
) -> Option<BriefingUpdate> {
    match &s.state {
        state if state.is_running() => {
            (status == BriefingStatus::Pending || !started).then_some(BriefingUpdate::Running)
        }
        CeleryState::Success => Some(match parse_options(s.info.as_ref()) {
            Some(options) => BriefingUpdate::OptionsReady(options),
            None => BriefingUpdate::Failed("Resultado inválido da geração de opções".to_owned()),
        }),
        CeleryState::Failure => Some(BriefingUpdate::Failed(failure_message(s))),
        CeleryState::Revoked => Some(BriefingUpdate::Revoked),
        _ => None,
    }
}

/// What a task state means for a video in `status` at `progress` (`started`: a worker already
/// reported it running); `None` when nothing changes.
pub(crate) fn video_update(
    status: VideoStatus,
    started: bool,
    progress: Option<f64>,
    s: &TaskSnapshot,
) -> Option<VideoUpdate> {
    match &s.state {
        state if state.is_running() => {
            let new = s.progress.or(progress).unwrap_or(0.0);
            let unchanged = started && status == VideoStatus::Processing && progress == Some(new);
            (!unchanged).then_some(VideoUpdate::Running { progress: new })
        }
        CeleryState::Success => {
            let awaiting = s
                .info
                .as_ref()
                .and_then(|v| v.get("status"))
                .and_then(serde_json::Value::as_str)
                == Some("pending_approval");
            Some(VideoUpdate::Finished(if awaiting {
                VideoStatus::PendingApproval
            } else {
                VideoStatus::Completed
            }))
        }
        CeleryState::Failure => Some(VideoUpdate::Failed(failure_message(s))),
        CeleryState::Revoked => Some(VideoUpdate::Revoked),
        _ => None,
    }
}

fn failure_message(s: &TaskSnapshot) -> String {
    s.error
        .clone()
        .unwrap_or_else(|| "Falha na tarefa".to_owned())
}

/// `{"options": [{"title", "description", "generator_type"}, ...]}` per the task contract;
/// `None` if the result breaks it (an empty list included).
fn parse_options(info: Option<&serde_json::Value>) -> Option<Vec<GeneratedOption>> {
    let list = info?.get("options")?.as_array()?;
    let field = |o: &serde_json::Value, k: &str| o.get(k)?.as_str().map(str::to_owned);
    let options: Option<Vec<GeneratedOption>> = list
        .iter()
        .map(|o| {
            Some(GeneratedOption {
                title: field(o, "title")?,
                description: field(o, "description").unwrap_or_default(),
                generator_type: field(o, "generator_type")?,
            })
        })
        .collect();
    options.filter(|o| !o.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap(state: &str, info: Option<serde_json::Value>, progress: Option<f64>) -> TaskSnapshot {
        TaskSnapshot {
            state: CeleryState::parse(state),
            info,
            progress,
            error: (state == "FAILURE").then(|| "ValueError: boom".to_owned()),
            ..TaskSnapshot::pending(TaskId::parse("550e8400-e29b-41d4-a716-446655440000").unwrap())
        }
    }

    #[test]
    fn task_states_map_to_briefing_updates() {
        let options =
            json!({"options": [{"title": "A", "description": "d", "generator_type": "simple"}]});
        let table = [
            (
                BriefingStatus::Pending,
                snap("STARTED", None, None),
                Some(BriefingUpdate::Running),
            ),
            (
                BriefingStatus::Processing,
                snap("STARTED", None, None),
                None,
            ),
            (
                BriefingStatus::Processing,
                snap("PENDING", None, None),
                None,
            ),
            (BriefingStatus::Processing, snap("RETRY", None, None), None),
            (
                BriefingStatus::Processing,
                snap("SUCCESS", Some(options), None),
                Some(BriefingUpdate::OptionsReady(vec![GeneratedOption {
                    title: "A".into(),
                    description: "d".into(),
                    generator_type: "simple".into(),
                }])),
            ),
            (
                BriefingStatus::Processing,
                snap("SUCCESS", Some(json!({"options": []})), None),
                Some(BriefingUpdate::Failed(
                    "Resultado inválido da geração de opções".into(),
                )),
            ),
            (
                BriefingStatus::Processing,
                snap("SUCCESS", Some(json!(42)), None),
                Some(BriefingUpdate::Failed(
                    "Resultado inválido da geração de opções".into(),
                )),
            ),
            (
                BriefingStatus::Processing,
                snap("FAILURE", None, None),
                Some(BriefingUpdate::Failed("ValueError: boom".into())),
            ),
            (
                BriefingStatus::Processing,
                snap("REVOKED", None, None),
                Some(BriefingUpdate::Revoked),
            ),
        ];
        for (status, s, expected) in table {
            assert_eq!(
                briefing_update(status, true, &s),
                expected,
                "{status} {}",
                s.state
            );
        }
    }

    #[test]
    fn task_states_map_to_video_updates() {
        let table = [
            (
                VideoStatus::Queued,
                None,
                snap("STARTED", None, None),
                Some(VideoUpdate::Running { progress: 0.0 }),
            ),
            (
                VideoStatus::Processing,
                Some(0.2),
                snap("PROGRESS", None, Some(0.5)),
                Some(VideoUpdate::Running { progress: 0.5 }),
            ),
            (
                VideoStatus::Processing,
                Some(0.5),
                snap("PROGRESS", None, Some(0.5)),
                None,
            ),
            (VideoStatus::Queued, None, snap("PENDING", None, None), None),
            (
                VideoStatus::Processing,
                Some(0.9),
                snap(
                    "SUCCESS",
                    Some(json!({"video_id": 1, "status": "completed"})),
                    None,
                ),
                Some(VideoUpdate::Finished(VideoStatus::Completed)),
            ),
            (
                VideoStatus::Processing,
                Some(0.9),
                snap(
                    "SUCCESS",
                    Some(json!({"video_id": 1, "status": "pending_approval"})),
                    None,
                ),
                Some(VideoUpdate::Finished(VideoStatus::PendingApproval)),
            ),
            (
                VideoStatus::Processing,
                None,
                snap("FAILURE", None, None),
                Some(VideoUpdate::Failed("ValueError: boom".into())),
            ),
            (
                VideoStatus::Processing,
                None,
                snap("REVOKED", None, None),
                Some(VideoUpdate::Revoked),
            ),
        ];
        for (status, progress, s, expected) in table {
            assert_eq!(
                video_update(status, true, progress, &s),
                expected,
                "{status} {}",
                s.state
            );
        }
    }

    #[test]
    fn the_first_running_report_records_the_start_and_later_ones_change_nothing_more() {
        let started = snap("STARTED", None, None);
        assert_eq!(
            briefing_update(BriefingStatus::Processing, false, &started),
            Some(BriefingUpdate::Running)
        );
        assert_eq!(
            briefing_update(BriefingStatus::Processing, true, &started),
            None
        );
        let progress = snap("PROGRESS", None, Some(0.5));
        assert_eq!(
            video_update(VideoStatus::Processing, false, Some(0.5), &progress),
            Some(VideoUpdate::Running { progress: 0.5 })
        );
        assert_eq!(
            video_update(VideoStatus::Processing, true, Some(0.5), &progress),
            None
        );
    }
}
