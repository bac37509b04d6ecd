//! Taking cancelled tasks' messages out of the broker's queue, off the response path.
//!
//! Every [`IDLE_CHECK_EVERY`] the job asks for one pass; a pass with nothing owed is one O(1)
//! check in the broker. While removals are owed that this server may carry out, passes follow
//! each other at once, for up to [`BUSY_FOR`] before the job yields (so that it stops promptly
//! with the others). Passes are exclusive across servers in the broker itself, and each removal
//! is reported by the pass that made it. A broker with no queue of its own ends the job at its
//! first pass.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::Service;
use ensinalab_ports::{Store, TaskBroker};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::Job;

/// How often an idle server checks whether removals are owed.
pub const IDLE_CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long back-to-back passes run before the job yields to its next tick.
pub const BUSY_FOR: Duration = Duration::from_secs(1);

/// The periodic pass.
pub struct Unqueue<S, B>(pub Arc<Service<S, B>>);

impl<S: Store + 'static, B: TaskBroker + 'static> Job for Unqueue<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        let started = Instant::now();
        loop {
            match self.0.take_out_cancelled(OffsetDateTime::now_utc()).await {
                Ok(None) => return ControlFlow::Break(()),
                Ok(Some(report)) => {
                    if report.removed > 0 {
                        tracing::info!(
                            removed = report.removed,
                            "cancelled tasks' messages taken out of the queue"
                        );
                    }
                    if !report.more || started.elapsed() >= BUSY_FOR {
                        return ControlFlow::Continue(());
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "taking cancelled messages out of the queue failed; retrying");
                    return ControlFlow::Continue(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::Ordering;

    use ensinalab_app::testing::{RecordingSink, task};
    use ensinalab_domain::{UserId, VideoStatus};
    use ensinalab_ports::{ChangeKind, RevokeOutcome, RevokeStatus, TakenOut};

    use super::*;
    use crate::Jobs;

    fn pass(removed: Vec<ensinalab_domain::TaskId>, more: bool) -> TakenOut {
        TakenOut { removed, more }
    }

    #[tokio::test]
    async fn passes_follow_each_other_while_more_is_owed_and_each_removal_is_reported() {
        let sink = Arc::new(RecordingSink::default());
        let service = Arc::new(ensinalab_app::testing::service().with_sink(sink.clone()));
        service
            .store()
            .insert_video(UserId(1), VideoStatus::Cancelled, Some(task(1)));
        service
            .store()
            .insert_video(UserId(1), VideoStatus::Cancelled, Some(task(2)));
        *service.broker().taken_out.lock().unwrap() = Some(VecDeque::from([
            pass(vec![task(1)], true),
            pass(vec![task(2)], false),
            pass(vec![task(3)], false),
        ]));
        let mut job = Unqueue(Arc::clone(&service));

        assert!(job.run().await.is_continue());

        let reported: Vec<_> = sink
            .changes()
            .into_iter()
            .map(|c| (c.task_id, c.kind))
            .collect();
        let removed = ChangeKind::Revoke(RevokeStatus::Done(RevokeOutcome::RemovedFromQueue));
        assert_eq!(
            reported,
            [(Some(task(1)), removed), (Some(task(2)), removed)],
            "two passes back to back, the third left for the next tick"
        );
        let left = service.broker().taken_out.lock().unwrap().clone().unwrap();
        assert_eq!(left.len(), 1);
    }

    #[tokio::test]
    async fn a_failed_pass_is_retried_at_the_next_tick() {
        let service = Arc::new(ensinalab_app::testing::service());
        *service.broker().taken_out.lock().unwrap() = Some(VecDeque::new());
        service.broker().fail_next.store(1, Ordering::SeqCst);
        let mut job = Unqueue(Arc::clone(&service));

        assert!(job.run().await.is_continue());
        assert!(job.run().await.is_continue());
        assert_eq!(service.broker().fail_next.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn with_a_broker_that_keeps_no_queue_the_job_ends_at_once() {
        let service = Arc::new(ensinalab_app::testing::service());
        let mut job = Unqueue(Arc::clone(&service));

        assert!(job.run().await.is_break());
    }

    #[tokio::test]
    async fn the_job_runs_until_the_jobs_stop() {
        let sink = Arc::new(RecordingSink::default());
        let service = Arc::new(ensinalab_app::testing::service().with_sink(sink.clone()));
        service
            .store()
            .insert_video(UserId(1), VideoStatus::Cancelled, Some(task(1)));
        *service.broker().taken_out.lock().unwrap() = Some(VecDeque::new());
        let mut jobs = Jobs::new();
        jobs.every("unqueue", IDLE_CHECK_EVERY, Unqueue(Arc::clone(&service)));

        // A removal owed while the job idles is reported at a later tick.
        service
            .broker()
            .taken_out
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .push_back(pass(vec![task(1)], false));
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.changes().is_empty() {
            assert!(Instant::now() < deadline, "the idle job never passed again");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // stop() returns once the job's task has ended: nothing is left to take another pass.
        jobs.stop(Duration::from_secs(1)).await;
        assert_eq!(sink.changes().len(), 1);
    }
}
