//! The revoke outbox: a cancel and the revoke it owes are one transaction; delivery, backoff
//! and settling are idempotent marks.

use ensinalab_domain::{BriefingStatus, ResourceKind, TaskId, VideoStatus};
use ensinalab_ports::{
    Caller, FIRST_ATTEMPT_GRACE, RevokeOutbox, RevokeOutcome, RevokeReport, Transition, Videos,
};
use time::{Duration, OffsetDateTime};

use ensinalab_store::{SqlStore as Store, testing};

use crate::support::*;

fn after_grace() -> OffsetDateTime {
    OffsetDateTime::now_utc() + FIRST_ATTEMPT_GRACE + Duration::seconds(1)
}

/// The task ids owed a revoke once the first attempt's grace is over, sorted.
async fn due_after_grace(store: &Store) -> Vec<TaskId> {
    let mut due: Vec<_> = store
        .due_revokes(after_grace(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.task_id)
        .collect();
    due.sort();
    due
}

fn day_ago() -> OffsetDateTime {
    OffsetDateTime::now_utc() - Duration::hours(24)
}

on_both_backends! {
    async fn a_cancel_owes_its_revoke_and_a_refusal_owes_nothing(store: Store) {
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        let b = briefing_in(&store, ALICE, BriefingStatus::Processing).await;
        let done = video_in(&store, ALICE, VideoStatus::Completed).await;
        assert!(matches!(store.cancel(ALICE, v.id, &by_user()).await.unwrap(), Transition::Done(_)));
        assert!(matches!(store.cancel(ALICE, b.id, &by_user()).await.unwrap(), Transition::Done(_)));
        assert!(matches!(store.cancel(ALICE, done.id, &by_user()).await.unwrap(), Transition::Refused(_)));
        assert!(matches!(store.cancel(BOB, v.id, &by_user()).await.unwrap(), Transition::NotOwned));

        // Left to the cancel's own attempt first.
        assert!(store.due_revokes(OffsetDateTime::now_utc(), 10).await.unwrap().is_empty());
        let due = store.due_revokes(after_grace(), 10).await.unwrap();
        let owed: Vec<_> = due.iter().map(|o| (o.task_id.clone(), o.resource)).collect();
        assert_eq!(
            owed,
            vec![
                (v.task_id.clone().unwrap(), (ResourceKind::Video, v.id.get())),
                (b.task_id.clone().unwrap(), (ResourceKind::Briefing, b.id.get())),
            ]
        );
        assert!(due.iter().all(|o| o.attempts == 0 && o.delivered_at.is_none()));
    }
}

on_both_backends! {
    async fn cancel_all_owes_one_revoke_per_task_in_its_transaction(store: Store) {
        let v1 = video_in(&store, ALICE, VideoStatus::Queued).await;
        let v2 = video_in(&store, ALICE, VideoStatus::Processing).await;
        let b = briefing_in(&store, ALICE, BriefingStatus::Processing).await;
        let bob = video_in(&store, BOB, VideoStatus::Processing).await;
        let caller = Caller { user_id: ALICE, is_admin: false, client_ip: None };
        let all = cancel_all(&store, &caller).await.unwrap();
        assert_eq!(all.videos.len(), 2);
        let due = due_after_grace(&store).await;
        let mut expected: Vec<_> = [v1.task_id, v2.task_id, b.task_id]
            .into_iter()
            .map(Option::unwrap)
            .collect();
        expected.sort();
        assert_eq!(due, expected);
        assert!(!due.contains(bob.task_id.as_ref().unwrap()));
    }
}

on_both_backends! {
    async fn cancel_all_owes_a_task_shared_by_two_rows_once(store: Store) {
        // Each table's task ids are unique, but nothing stops a briefing and a video from
        // naming the same task: the cancel still succeeds and owes that task one revoke.
        let b = briefing_in(&store, ALICE, BriefingStatus::Processing).await;
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        let shared = b.task_id.clone().unwrap();
        testing::execute(&store, &format!("UPDATE videos SET task_id = '{shared}' WHERE id = {}", v.id))
            .await
            .unwrap();
        let caller = Caller { user_id: ALICE, is_admin: false, client_ip: None };
        let all = cancel_all(&store, &caller).await.unwrap();
        assert_eq!((all.briefings.len(), all.videos.len()), (1, 1));
        assert_eq!(due_after_grace(&store).await, [shared]);
        assert!(store.due_revokes(OffsetDateTime::now_utc(), 10).await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn a_cancel_all_commits_one_outbox_row_per_task_before_anything_reads_them(store: Store) {
        for _ in 0..3 {
            video_in(&store, ALICE, VideoStatus::Processing).await;
        }
        let caller = Caller { user_id: ALICE, is_admin: false, client_ip: None };
        let before = OffsetDateTime::now_utc() - Duration::seconds(1);
        cancel_all(&store, &caller).await.unwrap();
        assert_eq!(testing::row_count(&store, "revoke_outbox").await.unwrap(), 3);
        let due = store.due_revokes(after_grace(), 10).await.unwrap();
        assert_eq!(due.len(), 3);
        for owed in &due {
            assert!(owed.created_at >= before, "{owed:?}");
            assert_eq!((owed.attempts, owed.delivered_at), (0, None), "{owed:?}");
        }
        // Left to the cancel's own attempt first.
        assert!(store.due_revokes(OffsetDateTime::now_utc(), 10).await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn a_cancels_own_delivery_is_marked_before_anything_read_its_revoke(store: Store) {
        // The dispatcher's tick marks what cancels delivered themselves before it reads what is
        // due: the mark must find the row the cancel wrote.
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        store.cancel(ALICE, v.id, &by_user()).await.unwrap();
        let task_id = v.task_id.unwrap();
        let report = RevokeReport { task_id: task_id.clone(), outcome: RevokeOutcome::Signalled };
        store.revokes_delivered(&[report], OffsetDateTime::now_utc()).await.unwrap();
        assert!(due_after_grace(&store).await.is_empty());
        let open = store.open_revokes(day_ago(), 10).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].task_id, task_id);
        assert!(open[0].delivered_at.is_some());
    }
}

on_both_backends! {
    async fn a_cancel_whose_revoke_cannot_be_recorded_changes_nothing(store: Store) {
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        testing::execute(&store, "DROP TABLE revoke_outbox").await.unwrap();
        assert!(store.cancel(ALICE, v.id, &by_user()).await.is_err());
        let caller = Caller { user_id: ALICE, is_admin: false, client_ip: None };
        assert!(cancel_all(&store, &caller).await.is_err());
        let row = store.video(v.id).await.unwrap().unwrap();
        assert_eq!(row.status, VideoStatus::Processing);
    }
}

on_both_backends! {
    async fn failures_back_off_and_deliveries_settle_only_finished_tasks(store: Store) {
        let queued = video_in(&store, ALICE, VideoStatus::Queued).await;
        let running = video_in(&store, ALICE, VideoStatus::Processing).await;
        store.cancel(ALICE, queued.id, &by_user()).await.unwrap();
        store.cancel(ALICE, running.id, &by_user()).await.unwrap();
        let (q, r) = (queued.task_id.unwrap(), running.task_id.unwrap());

        let t1 = after_grace();
        store.revokes_failed(&[q.clone(), r.clone()], t1 + Duration::seconds(2)).await.unwrap();
        assert!(store.due_revokes(t1, 10).await.unwrap().is_empty());
        let due = store.due_revokes(t1 + Duration::seconds(3), 10).await.unwrap();
        assert_eq!(due.len(), 2);
        assert!(due.iter().all(|o| o.attempts == 1));

        let reports = [
            RevokeReport { task_id: q.clone(), outcome: RevokeOutcome::Claimed },
            RevokeReport { task_id: r.clone(), outcome: RevokeOutcome::NoWorkerListening },
        ];
        store.revokes_delivered(&reports, t1).await.unwrap();
        assert!(store.due_revokes(t1 + Duration::hours(1), 10).await.unwrap().is_empty());
        // Claimed before any worker: settled. Unheard: open, broadcast again.
        let open = store.open_revokes(day_ago(), 10).await.unwrap();
        assert_eq!(open.iter().map(|o| &o.task_id).collect::<Vec<_>>(), vec![&r]);
        assert!(open[0].delivered_at.is_some());

        // Delivering again is harmless; a finished task settles.
        let finished = [RevokeReport { task_id: r.clone(), outcome: RevokeOutcome::AlreadyFinished }];
        store.revokes_delivered(&finished, t1).await.unwrap();
        assert!(store.open_revokes(day_ago(), 10).await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn revokes_older_than_the_bound_are_not_open(store: Store) {
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        store.cancel(ALICE, v.id, &by_user()).await.unwrap();
        let t = v.task_id.unwrap();
        let report = [RevokeReport { task_id: t.clone(), outcome: RevokeOutcome::Signalled }];
        store.revokes_delivered(&report, OffsetDateTime::now_utc()).await.unwrap();
        assert_eq!(store.open_revokes(day_ago(), 10).await.unwrap().len(), 1);
        let future = OffsetDateTime::now_utc() + Duration::seconds(5);
        assert!(store.open_revokes(future, 10).await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn cancel_all_of_more_tasks_than_a_statement_has_binds_owes_and_marks_them_all(store: Store) {
        // More rows than one statement could bind if each row's 11 outbox columns were bound:
        // 6,000 × 11 is past SQLite's 32,766 ("too many SQL variables" on the embedded default).
        const N: usize = 6_000;
        let rows: Vec<String> = (0..N)
            .map(|i| {
                format!(
                    "({}, 't', 'd', 5, 'processing', '00000000-0000-4000-8000-{i:012}', \
                     '2026-11-28T12:00:00Z', '2026-11-28T12:00:00Z')",
                    ALICE.get()
                )
            })
            .collect();
        testing::execute(
            &store,
            &format!(
                "INSERT INTO briefings (user_id, title, description, duration_minutes, status, \
                 task_id, created_at, updated_at) VALUES {}",
                rows.join(", ")
            ),
        )
        .await
        .unwrap();
        let caller = Caller { user_id: ALICE, is_admin: false, client_ip: None };
        let all = cancel_all(&store, &caller).await.unwrap();
        assert_eq!(all.briefings.len(), N);

        let due = store.due_revokes(after_grace(), 10_000).await.unwrap();
        assert_eq!(due.len(), N);
        let reports: Vec<RevokeReport> = due
            .iter()
            .map(|o| RevokeReport { task_id: o.task_id.clone(), outcome: RevokeOutcome::Signalled })
            .collect();
        store.revokes_delivered(&reports, OffsetDateTime::now_utc()).await.unwrap();
        assert!(store.due_revokes(after_grace(), 10_000).await.unwrap().is_empty());
        assert_eq!(store.open_revokes(day_ago(), 10_000).await.unwrap().len(), N);
    }
}

on_both_backends! {
    async fn an_open_revoke_is_settled_once_and_only_once_delivered(store: Store) {
        let running = video_in(&store, ALICE, VideoStatus::Processing).await;
        let pending = video_in(&store, ALICE, VideoStatus::Processing).await;
        store.cancel(ALICE, running.id, &by_user()).await.unwrap();
        store.cancel(ALICE, pending.id, &by_user()).await.unwrap();
        let (r, p) = (running.task_id.unwrap(), pending.task_id.unwrap());
        let now = OffsetDateTime::now_utc();
        let signalled = [RevokeReport { task_id: r.clone(), outcome: RevokeOutcome::Signalled }];
        store.revokes_delivered(&signalled, now).await.unwrap();

        let killed = [
            RevokeReport { task_id: r.clone(), outcome: RevokeOutcome::Killed },
            RevokeReport { task_id: p.clone(), outcome: RevokeOutcome::Killed },
        ];
        assert_eq!(store.settle_revokes(&killed, now).await.unwrap(), vec![r.clone()]);
        assert!(store.settle_revokes(&killed, now).await.unwrap().is_empty(), "once");
        assert!(store.open_revokes(day_ago(), 10).await.unwrap().is_empty());
        // An outcome that settles nothing is not recorded as settling.
        let still = [RevokeReport { task_id: p.clone(), outcome: RevokeOutcome::Signalled }];
        assert!(store.settle_revokes(&still, now).await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn a_task_owed_again_keeps_its_row_and_its_delivery(store: Store) {
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        let w = video_in(&store, ALICE, VideoStatus::Processing).await;
        store.cancel(ALICE, v.id, &by_user()).await.unwrap();
        let task_id = v.task_id.unwrap();
        let report = RevokeReport { task_id: task_id.clone(), outcome: RevokeOutcome::Signalled };
        store.revokes_delivered(&[report], OffsetDateTime::now_utc()).await.unwrap();
        // The row back in flight (nothing in the service does this), then cancelled again,
        // alone and with another.
        let back = format!("UPDATE videos SET status = 'processing' WHERE id = {}", v.id);
        testing::execute(&store, &back).await.unwrap();
        assert!(matches!(store.cancel(ALICE, v.id, &by_user()).await.unwrap(), Transition::Done(_)));
        testing::execute(&store, &back).await.unwrap();
        let caller = Caller { user_id: ALICE, is_admin: false, client_ip: None };
        assert_eq!(cancel_all(&store, &caller).await.unwrap().videos.len(), 2);

        assert_eq!(testing::row_count(&store, "revoke_outbox").await.unwrap(), 2);
        assert_eq!(due_after_grace(&store).await, [w.task_id.unwrap()]);
        let open = store.open_revokes(day_ago(), 10).await.unwrap();
        assert_eq!(open.iter().map(|o| &o.task_id).collect::<Vec<_>>(), [&task_id]);
    }
}
