//! A change sink that records.

use std::sync::Mutex;

use ensinalab_ports::{ChangeSink, TaskChange};

/// A change sink that keeps every change it was given.
#[derive(Default)]
pub struct RecordingSink {
    changes: Mutex<Vec<TaskChange>>,
}

impl RecordingSink {
    /// The changes so far, in emission order.
    pub fn changes(&self) -> Vec<TaskChange> {
        self.changes.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl ChangeSink for RecordingSink {
    fn publish(&self, change: &TaskChange) {
        if let Ok(mut c) = self.changes.lock() {
            c.push(change.clone());
        }
    }
}
