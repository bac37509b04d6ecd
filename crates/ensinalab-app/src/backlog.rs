//! What the use cases and the change sinks owe a background job, in memory until the job takes
//! it. A producer must not block the use case that owes the work, so it only sends its half,
//! [`Backlog`]; the receiving half, [`Drain`], is handed to the one job that does the IO when
//! the service is built, and keeps what that job could not do. Nothing is shared behind a lock.

use tokio::sync::mpsc;

/// A bounded backlog of at most `max` items of `what` waiting, and as many held back by its
/// drain; beyond that some are dropped, with an error logged.
pub fn backlog<T>(max: usize, what: &'static str) -> (Backlog<T>, Drain<T>) {
    let (tx, rx) = mpsc::channel(max.max(1));
    (
        Backlog { tx, what },
        Drain {
            rx,
            held: Vec::new(),
            max,
            what,
        },
    )
}

/// The sending half. Cheap to clone: clones feed the same drain.
#[derive(Debug)]
pub struct Backlog<T> {
    tx: mpsc::Sender<T>,
    what: &'static str,
}

impl<T> Clone for Backlog<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            what: self.what,
        }
    }
}

impl<T> Backlog<T> {
    /// Adds `item`, unless the backlog is full: then it is dropped, with an error logged. Once
    /// the drain is gone (the server is stopping) the item is dropped quietly.
    pub fn push(&self, item: T) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(item) {
            tracing::error!(what = self.what, "backlog full: one dropped");
        }
    }
}

/// The receiving half, owned by the job that does the work.
#[derive(Debug)]
pub struct Drain<T> {
    rx: mpsc::Receiver<T>,
    /// What an earlier [`Drain::take`] returned and could not be handled.
    held: Vec<T>,
    max: usize,
    what: &'static str,
}

impl<T> Drain<T> {
    /// Everything owed so far, oldest first; the backlog is left empty.
    pub fn take(&mut self) -> Vec<T> {
        let mut items = std::mem::take(&mut self.held);
        while let Ok(item) = self.rx.try_recv() {
            items.push(item);
        }
        items
    }

    /// Keeps what [`Drain::take`] returned and could not be handled, for the next take, ahead
    /// of what came since; beyond the bound the oldest are dropped, with an error logged.
    pub fn put_back(&mut self, mut older: Vec<T>) {
        let excess = older.len().saturating_sub(self.max);
        if excess > 0 {
            tracing::error!(
                what = self.what,
                dropped = excess,
                "backlog full: oldest dropped"
            );
            older.drain(..excess);
        }
        self.held = older;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_put_back_goes_first_and_the_bounds_hold() {
        let (backlog, mut drain) = backlog(3, "numbers");
        backlog.push(1);
        let first = drain.take();
        assert!(drain.take().is_empty(), "take empties it");
        backlog.push(2);
        drain.put_back(first);
        assert_eq!(drain.take(), [1, 2]);

        drain.put_back(vec![1, 2, 3, 4]);
        assert_eq!(drain.take(), [2, 3, 4], "the oldest went");
        for n in 0..5 {
            backlog.clone().push(n);
        }
        assert_eq!(
            drain.take(),
            [0, 1, 2],
            "clones feed the same drain, and it stays bounded"
        );
    }

    #[test]
    fn a_backlog_whose_drain_is_gone_drops_quietly() {
        let (backlog, drain) = backlog(1, "numbers");
        drop(drain);
        backlog.push(1);
    }
}
