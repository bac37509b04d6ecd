//! The cleanup outbox: owed once per task, due at once after a failure and only after the
//! revoke's delivery after one of our cancels, backed off on failure, gone once sent.

use ensinalab_domain::{CancelReason, ResourceKind, TaskId, VideoStatus};
use ensinalab_ports::{
    CleanupOutbox, CleanupReason, OwedCleanup, RevokeOutbox, RevokeOutcome, RevokeReport,
};
use time::{Duration, OffsetDateTime};

use ensinalab_store::SqlStore as Store;

use crate::support::*;

fn owed(task_id: &TaskId, id: i64, reason: CleanupReason) -> OwedCleanup {
    OwedCleanup {
        task_id: task_id.clone(),
        resource: (ResourceKind::Video, id),
        reason,
        created_at: OffsetDateTime::now_utc(),
        attempts: 0,
    }
}

async fn due(store: &Store, at: OffsetDateTime) -> Vec<(TaskId, &'static str)> {
    store
        .due_cleanups(at, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.task_id, c.reason.as_str()))
        .collect()
}

on_both_backends! {
    async fn a_cancels_cleanup_is_due_once_its_revoke_went_out_and_a_failures_at_once(store: Store) {
        let cancelled = video_in(&store, ALICE, VideoStatus::Processing).await;
        store.cancel(ALICE, cancelled.id, &by_user()).await.unwrap();
        let cancelled_task = cancelled.task_id.clone().unwrap();
        let failed = video_in(&store, ALICE, VideoStatus::Failed).await;
        let failed_task = failed.task_id.clone().unwrap();
        let revoked = video_in(&store, ALICE, VideoStatus::Cancelled).await;
        let revoked_task = revoked.task_id.clone().unwrap();
        let user = CleanupReason::Cancelled(CancelReason::User);
        let batch = [
            owed(&cancelled_task, cancelled.id.get(), user),
            owed(&failed_task, failed.id.get(), CleanupReason::Failed),
            owed(&revoked_task, revoked.id.get(), CleanupReason::Cancelled(CancelReason::Revoked)),
        ];
        store.owe_cleanups(&batch).await.unwrap();
        // Owed again (another instance, a retry): nothing doubles, the first is kept.
        store.owe_cleanups(&batch[..1]).await.unwrap();
        let now = OffsetDateTime::now_utc() + Duration::seconds(1);

        let mut at_once = due(&store, now).await;
        at_once.sort();
        let mut expected = vec![(failed_task.clone(), "failed"), (revoked_task.clone(), "revoked")];
        expected.sort();
        assert_eq!(at_once, expected, "the cancel's cleanup waits for its revoke");

        let report = RevokeReport { task_id: cancelled_task.clone(), outcome: RevokeOutcome::Signalled };
        store.revokes_delivered(&[report], now).await.unwrap();
        let all = store.due_cleanups(now, 10).await.unwrap();
        let mine = all.iter().find(|c| c.task_id == cancelled_task).expect("due after the kill");
        assert_eq!(mine.resource, (ResourceKind::Video, cancelled.id.get()));
        assert_eq!(mine.reason, user);
        assert_eq!(all.len(), 3);
    }
}

on_both_backends! {
    async fn a_failed_dispatch_backs_off_and_a_sent_cleanup_is_forgotten(store: Store) {
        let a = video_in(&store, ALICE, VideoStatus::Failed).await;
        let b = video_in(&store, ALICE, VideoStatus::Failed).await;
        let (ta, tb) = (a.task_id.clone().unwrap(), b.task_id.clone().unwrap());
        store
            .owe_cleanups(&[owed(&ta, a.id.get(), CleanupReason::Failed), owed(&tb, b.id.get(), CleanupReason::Failed)])
            .await
            .unwrap();
        let now = OffsetDateTime::now_utc() + Duration::seconds(1);
        store.cleanups_failed(std::slice::from_ref(&ta), now + Duration::seconds(4)).await.unwrap();

        assert_eq!(due(&store, now).await, [(tb.clone(), "failed")]);
        let later = store.due_cleanups(now + Duration::seconds(4), 10).await.unwrap();
        let retried = later.iter().find(|c| c.task_id == ta).unwrap();
        assert_eq!(retried.attempts, 1);

        store.cleanups_sent(&[ta.clone(), tb.clone()]).await.unwrap();
        assert!(due(&store, now + Duration::hours(1)).await.is_empty());
    }
}

on_both_backends! {
    async fn a_claimed_tasks_cleanup_is_dropped_and_a_finished_first_one_cleans_its_output(store: Store) {
        let claimed = video_in(&store, ALICE, VideoStatus::Queued).await;
        let first = video_in(&store, ALICE, VideoStatus::Processing).await;
        store.cancel(ALICE, claimed.id, &by_user()).await.unwrap();
        store.cancel(ALICE, first.id, &by_user()).await.unwrap();
        let (c, f) = (claimed.task_id.clone().unwrap(), first.task_id.clone().unwrap());
        let user = CleanupReason::Cancelled(CancelReason::User);
        // The change stream owes the cancel's cleanup, then the finished task's, in one batch.
        store
            .owe_cleanups(&[
                owed(&c, claimed.id.get(), user),
                owed(&f, first.id.get(), user),
                owed(&f, first.id.get(), CleanupReason::FinishedFirst),
            ])
            .await
            .unwrap();
        let reports = [
            RevokeReport { task_id: c.clone(), outcome: RevokeOutcome::Claimed },
            RevokeReport { task_id: f.clone(), outcome: RevokeOutcome::FinishedFirst },
        ];
        store.revokes_delivered(&reports, OffsetDateTime::now_utc()).await.unwrap();
        // Owed again later (another server): the output's cleanup is kept.
        store.owe_cleanups(&[owed(&f, first.id.get(), user)]).await.unwrap();

        let now = OffsetDateTime::now_utc() + Duration::seconds(1);
        assert_eq!(due(&store, now).await, vec![(f.clone(), "finished_first")]);
        assert_eq!(due(&store, now).await.len(), 1, "the claimed one is gone for good");
    }
}
