//! Watching jobs: the active list and the status of one task.

use ensinalab_domain::{CeleryState, Elapsed, TaskId};
use serde_json::json;
use time::OffsetDateTime;

use ensinalab_ports::{
    ActivePage, ActivePosition, ActiveResource, ActiveRows, BrokerError, Caller, EventOutcome,
    MAX_ACTIVE_PAGE, Store, StoreError, TaskBroker, TaskSnapshot,
};

use crate::Service;

/// One row of the active list.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTask {
    pub resource: ActiveResource,
    /// `None` when the row has no task id, or the broker could not be asked.
    pub celery: Option<CeleryState>,
    pub elapsed: Elapsed,
    pub is_stuck: bool,
    pub can_cancel: bool,
}

/// A page of the caller's active list.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveList {
    /// Newest first.
    pub tasks: Vec<ActiveTask>,
    /// The whole list's briefings and videos, every page's.
    pub briefings: u64,
    pub videos: u64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ActivePosition>,
    /// The broker could not be reached: states are unknown, the list is still the database's.
    pub celery_unavailable: bool,
}

/// Why the active list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListActiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a task's status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TaskStatusError {
    /// Not a task of one of the caller's briefings or videos (or no such task).
    #[error("task not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl<S: Store, B: TaskBroker> Service<S, B> {
    /// A page of the caller's cancellable briefings and videos with their Celery states, and
    /// the counts of the whole list: one store query and one broker call, whatever the number
    /// of tasks. If the broker is down the list still answers, with the states unknown.
    ///
    /// # Errors
    /// [`ListActiveError`] when the database fails.
    pub async fn list_active(
        &self,
        caller: &Caller,
        page: &ActivePage,
        now: OffsetDateTime,
    ) -> Result<ActiveList, ListActiveError> {
        let page = ActivePage {
            limit: page.limit.clamp(1, MAX_ACTIVE_PAGE),
            after: page.after,
        };
        let ActiveRows {
            mut rows,
            briefings,
            videos,
        } = self.store.active(caller.user_id, &page).await?;
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        let next = more.then(|| rows.last().map(ActivePosition::of)).flatten();
        let ids: Vec<&TaskId> = rows.iter().filter_map(|r| r.task_id.as_ref()).collect();
        let (mut states, celery_unavailable) = if ids.is_empty() {
            (Vec::new().into_iter(), false)
        } else {
            match self.broker.states_only(&ids).await {
                Ok(states) => (states.into_iter(), false),
                Err(err) => {
                    tracing::warn!(error = %err, "task states unavailable; listing without them");
                    (Vec::new().into_iter(), true)
                }
            }
        };
        let limit = self.settings.task_time_limit_secs;
        let tasks: Vec<ActiveTask> = rows
            .into_iter()
            .map(|resource| {
                // `states` is in the order of `ids`, which skipped rows without a task id.
                let celery = resource.task_id.as_ref().and_then(|_| states.next());
                let elapsed = Elapsed::between(resource.created_at, now);
                ActiveTask {
                    can_cancel: resource.status.is_cancellable(),
                    is_stuck: elapsed.is_stuck(limit),
                    elapsed,
                    celery,
                    resource,
                }
            })
            .collect();
        Ok(ActiveList {
            tasks,
            briefings,
            videos,
            next,
            celery_unavailable,
        })
    }

    /// The Celery state of one task, if it belongs to one of the caller's briefings or videos
    /// (anyone else's task is `NotFound`, so results and tracebacks never leak, and is a refused
    /// read in the trail). The traceback is kept for admins only.
    ///
    /// # Errors
    /// [`TaskStatusError`].
    pub async fn task_status(
        &self,
        caller: &Caller,
        task_id: &TaskId,
    ) -> Result<TaskSnapshot, TaskStatusError> {
        let (refusal, resource) = match self.store.resource_for_task(task_id).await? {
            Some(owner) if owner.user_id == caller.user_id => (None, None),
            Some(owner) => (Some(EventOutcome::NotOwner), Some((owner.kind, owner.id))),
            None => (Some(EventOutcome::NotFound), None),
        };
        if let Some(refusal) = refusal {
            let details = json!({"action": "read_task"});
            self.refuse_read(caller, details, resource, Some(task_id), refusal);
            return Err(TaskStatusError::NotFound);
        }
        let mut snapshot = self
            .broker
            .states(std::slice::from_ref(task_id))
            .await?
            .pop()
            .ok_or_else(|| BrokerError::Protocol("no state returned for one id".into()))?;
        if !caller.is_admin {
            snapshot.traceback = None;
        }
        Ok(snapshot)
    }
}
