//! A task broker that records what it was asked ([`TaskBroker`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ensinalab_domain::TaskId;

use ensinalab_ports::{
    BrokerError, RevokeOutcome, RevokeReport, TakenOut, TaskBroker, TaskRequest, TaskSnapshot,
};

/// A broker that records what it was asked and answers from a table of states.
#[derive(Default)]
pub struct RecordingBroker {
    published: Mutex<Vec<TaskRequest>>,
    revoked: Mutex<Vec<Vec<TaskId>>>,
    states: Mutex<HashMap<TaskId, TaskSnapshot>>,
    /// Calls still to fail with `Unavailable` (any method).
    pub fail_next: AtomicUsize,
    /// What every revoke reports.
    pub revoke_outcome: Mutex<Option<RevokeOutcome>>,
    /// How many `states` calls were made (to check batch shapes).
    pub state_calls: AtomicUsize,
    /// What `running` reports: `None`, the broker cannot tell.
    pub running: Mutex<Option<Vec<TaskId>>>,
    /// What `take_out_cancelled` reports, one pass after the other (an empty pass once they
    /// are used up); `None`: the broker keeps no queue to take messages out of.
    pub taken_out: Mutex<Option<VecDeque<TakenOut>>>,
}

impl RecordingBroker {
    fn failing(&self) -> Result<(), BrokerError> {
        let left = self.fail_next.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_next.store(left - 1, Ordering::SeqCst);
            return Err(BrokerError::Unavailable(
                "recording broker told to fail".into(),
            ));
        }
        Ok(())
    }

    /// Sets what `states` reports for a task.
    pub fn set_state(&self, snapshot: TaskSnapshot) {
        if let Ok(mut s) = self.states.lock() {
            s.insert(snapshot.task_id.clone(), snapshot);
        }
    }

    /// Tasks published so far.
    pub fn published(&self) -> Vec<TaskRequest> {
        self.published.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Revoke calls so far, each with its ids.
    pub fn revoke_calls(&self) -> Vec<Vec<TaskId>> {
        self.revoked.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl TaskBroker for RecordingBroker {
    async fn publish(&self, task: &TaskRequest) -> Result<(), BrokerError> {
        self.failing()?;
        if let Ok(mut p) = self.published.lock() {
            p.push(task.clone());
        }
        Ok(())
    }

    async fn states(&self, ids: &[TaskId]) -> Result<Vec<TaskSnapshot>, BrokerError> {
        self.state_calls.fetch_add(1, Ordering::SeqCst);
        self.failing()?;
        let states = self
            .states
            .lock()
            .map_err(|_| BrokerError::Protocol("poisoned".into()))?;
        Ok(ids
            .iter()
            .map(|id| {
                states
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| TaskSnapshot::pending(id.clone()))
            })
            .collect())
    }

    async fn revoke(&self, ids: &[TaskId]) -> Result<Vec<RevokeReport>, BrokerError> {
        self.failing()?;
        if let Ok(mut r) = self.revoked.lock() {
            r.push(ids.to_vec());
        }
        let outcome = self
            .revoke_outcome
            .lock()
            .ok()
            .and_then(|o| *o)
            .unwrap_or(RevokeOutcome::Signalled);
        Ok(ids
            .iter()
            .map(|id| RevokeReport {
                task_id: id.clone(),
                outcome,
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        self.failing()
    }

    async fn running(&self) -> Result<Option<Vec<TaskId>>, BrokerError> {
        self.failing()?;
        Ok(self.running.lock().ok().and_then(|r| r.clone()))
    }

    async fn take_out_cancelled(&self) -> Result<Option<TakenOut>, BrokerError> {
        self.failing()?;
        let mut passes = self
            .taken_out
            .lock()
            .map_err(|_| BrokerError::Protocol("poisoned".into()))?;
        Ok(passes
            .as_mut()
            .map(|passes| passes.pop_front().unwrap_or_default()))
    }
}
