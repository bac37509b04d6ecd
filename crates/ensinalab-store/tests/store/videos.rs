use ensinalab_domain::{CANCELLED_BY_USER, VideoId, VideoStatus};
use ensinalab_ports::{NewVideo, StoreError, Transition, VideoUpdate, Videos};

use crate::support::*;

on_both_backends! {
    async fn a_new_video_is_queued_at_zero_progress_and_reads_back_by_id(store: Store) {
        let (b, o) = briefing_with_option(&store, ALICE).await;
        let task_id = task();
        let created = store
            .create_video(&NewVideo {
                user_id: ALICE,
                briefing_id: b.id,
                option_id: o.id,
                title: o.title.clone(),
                generator_type: "simple".into(),
                task_id: task_id.clone(),
            }, u32::MAX)
            .await
            .unwrap()
            .expect("a free job slot");
        assert_eq!(created.user_id, ALICE);
        assert_eq!((created.briefing_id, created.option_id), (b.id, o.id));
        assert_eq!(created.title, "Como usar Google Classroom");
        assert_eq!(created.generator_type, "simple");
        assert_eq!(created.status, VideoStatus::Queued);
        assert_eq!(created.progress, 0.0);
        assert_eq!(created.task_id, Some(task_id));
        assert_eq!(created.error_message, None);

        assert_eq!(store.video(created.id).await.unwrap(), Some(created.clone()));
        assert_eq!(store.video(VideoId(created.id.get() + 1000)).await.unwrap(), None);
    }
}

on_both_backends! {
    async fn a_video_is_cancelled_only_by_its_owner_and_only_while_cancellable(store: Store) {
        for status in VideoStatus::ALL.iter().copied() {
            let v = video_in(&store, ALICE, status).await;
            assert_eq!(store.cancel(BOB, v.id, &by_user()).await.unwrap(), Transition::NotOwned);
            let outcome = store.cancel(ALICE, v.id, &by_user()).await.unwrap();
            let after = store.video(v.id).await.unwrap().unwrap();
            if status.is_cancellable() {
                let Transition::Done(done) = outcome else {
                    panic!("{status}: {outcome:?}")
                };
                assert_eq!(done.status, VideoStatus::Cancelled);
                assert_eq!(done.error_message.as_deref(), Some(CANCELLED_BY_USER));
                assert_eq!(done.progress, 0.0);
                assert_eq!(done, after);
                assert_eq!(
                    store.cancel(ALICE, v.id, &by_user()).await.unwrap(),
                    Transition::Refused(VideoStatus::Cancelled)
                );
            } else {
                assert_eq!(outcome, Transition::Refused(status));
                assert_eq!(after, v, "a refused cancel changes nothing");
            }
        }
        assert_eq!(
            store.cancel(ALICE, VideoId(999_999), &by_user()).await.unwrap(),
            Transition::NotFound
        );
    }
}

on_both_backends! {
    async fn task_reports_move_a_video_only_while_it_is_in_flight(store: Store) {
        let v = video_in(&store, ALICE, VideoStatus::Queued).await;
        let running = VideoUpdate::Running { progress: 0.4 };
        assert!(store.apply_video_update(v.id, &running).await.unwrap().is_some());
        let read = store.video(v.id).await.unwrap().unwrap();
        assert_eq!((read.status, read.progress), (VideoStatus::Processing, 0.4));

        let finished = VideoUpdate::Finished(VideoStatus::PendingApproval);
        assert!(store.apply_video_update(v.id, &finished).await.unwrap().is_some());
        let read = store.video(v.id).await.unwrap().unwrap();
        assert_eq!((read.status, read.progress), (VideoStatus::PendingApproval, 1.0));
        // pending_approval waits for a human: no task writes to it any more.
        assert!(store.apply_video_update(v.id, &running).await.unwrap().is_none());

        let failing = video_in(&store, ALICE, VideoStatus::Processing).await;
        let failed = VideoUpdate::Failed("ValueError: boom".into());
        assert!(store.apply_video_update(failing.id, &failed).await.unwrap().is_some());
        let read = store.video(failing.id).await.unwrap().unwrap();
        assert_eq!(read.status, VideoStatus::Failed);
        assert_eq!(read.error_message.as_deref(), Some("ValueError: boom"));

        let revoked = video_in(&store, ALICE, VideoStatus::Queued).await;
        assert!(store.apply_video_update(revoked.id, &VideoUpdate::Revoked).await.unwrap().is_some());
        let read = store.video(revoked.id).await.unwrap().unwrap();
        assert_eq!(read.status, VideoStatus::Cancelled);

        let updates = [
            VideoUpdate::Running { progress: 0.9 },
            VideoUpdate::Finished(VideoStatus::Completed),
            VideoUpdate::Failed("late".into()),
            VideoUpdate::Revoked,
        ];
        for status in VideoStatus::TERMINAL.iter().copied() {
            let v = video_in(&store, ALICE, status).await;
            for update in &updates {
                assert!(store.apply_video_update(v.id, update).await.unwrap().is_none(), "{status}");
            }
            assert_eq!(store.video(v.id).await.unwrap(), Some(v));
        }
        assert!(store.apply_video_update(VideoId(999_999), &running).await.unwrap().is_none());
    }
}

on_both_backends! {
    async fn an_unknown_video_status_in_the_database_is_corrupt_not_a_panic(store: Store) {
        let v = video_in(&store, ALICE, VideoStatus::Queued).await;
        set_status(&store, "videos", v.id.get(), "QUEUED").await;
        let err = store.video(v.id).await.unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("QUEUED")), "{err:?}");
        assert!(matches!(store.cancel(ALICE, v.id, &by_user()).await, Err(StoreError::Corrupt(_))));
    }
}
