//! [`Backlog`]: what a change sink owes a background job, kept in memory until the job takes it.
//! A sink must not block the use case that emitted a change, so it only pushes here; the job
//! does the IO, and puts back what it could not do.

use std::sync::{Arc, Mutex, PoisonError};

/// A bounded queue shared by a sink and a job. Cheap to clone: clones share the items.
#[derive(Debug)]
pub struct Backlog<T> {
    items: Arc<Mutex<Vec<T>>>,
    max: usize,
    /// What the items are, for the log line that reports a drop.
    what: &'static str,
}

impl<T> Clone for Backlog<T> {
    fn clone(&self) -> Self {
        Self {
            items: Arc::clone(&self.items),
            max: self.max,
            what: self.what,
        }
    }
}

impl<T> Backlog<T> {
    /// An empty backlog of at most `max` items of `what`.
    pub fn new(max: usize, what: &'static str) -> Self {
        Self {
            items: Arc::default(),
            max,
            what,
        }
    }

    fn items(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `item`, unless the backlog is full: then it is dropped, with an error logged.
    pub fn push(&self, item: T) {
        let mut items = self.items();
        if items.len() >= self.max {
            tracing::error!(
                what = self.what,
                max = self.max,
                "backlog full: one dropped"
            );
            return;
        }
        items.push(item);
    }

    /// Everything queued so far, oldest first; the backlog is left empty.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.items())
    }

    /// Puts back what [`Self::take`] returned and could not be handled, ahead of what came
    /// since; beyond the bound the oldest are dropped, with an error logged.
    pub fn put_back(&self, mut older: Vec<T>) {
        let mut items = self.items();
        older.append(&mut items);
        let excess = older.len().saturating_sub(self.max);
        if excess > 0 {
            tracing::error!(
                what = self.what,
                dropped = excess,
                "backlog full: oldest dropped"
            );
            older.drain(..excess);
        }
        *items = older;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_put_back_goes_first_and_the_bound_holds() {
        let backlog = Backlog::new(3, "numbers");
        backlog.push(1);
        let first = backlog.take();
        assert!(backlog.take().is_empty(), "take empties it");
        backlog.push(2);
        backlog.put_back(first);
        assert_eq!(backlog.take(), [1, 2]);

        backlog.put_back(vec![1, 2, 3, 4]);
        assert_eq!(backlog.take(), [2, 3, 4], "the oldest went");
        for n in 0..5 {
            backlog.clone().push(n);
        }
        assert_eq!(
            backlog.take(),
            [0, 1, 2],
            "clones share it, and it stays bounded"
        );
    }
}
