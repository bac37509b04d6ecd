use ensinalab_domain::{BriefingId, BriefingStatus, OptionId};
use ensinalab_ports::{BriefingUpdate, Briefings, StoreError, Transition};
use ensinalab_store::testing;

use crate::support::*;

on_both_backends! {
    async fn a_new_briefing_is_processing_with_its_task_and_reads_back_by_id(store: Store) {
        let task_id = task();
        let created = store.create_briefing(ALICE, &draft(), &task_id, u32::MAX).await.unwrap()
            .expect("a free job slot");
        assert_eq!(created.user_id, ALICE);
        assert_eq!(created.title, "Gestão de Sala de Aula");
        assert_eq!(created.description, "Como usar o Google Classroom");
        assert_eq!(created.duration_minutes, 10);
        assert_eq!(created.status, BriefingStatus::Processing);
        assert_eq!(created.task_id, Some(task_id));
        assert_eq!(created.error_message, None);
        assert_eq!(created.created_at, created.updated_at);

        let (read, options) = store.briefing(created.id).await.unwrap().unwrap();
        assert_eq!(read, created);
        assert!(options.is_empty());
        assert_eq!(read.user_id, ALICE, "the owner is on the row: the use case checks it");
        assert_eq!(store.briefing(BriefingId(created.id.get() + 1000)).await.unwrap(), None);
    }
}

on_both_backends! {
    async fn options_ready_stores_the_options_with_the_status_and_only_once(store: Store) {
        let b = store.create_briefing(ALICE, &draft(), &task(), u32::MAX).await.unwrap()
            .expect("a free job slot");
        let update = BriefingUpdate::OptionsReady(vec![generated("Primeira"), generated("Segunda")]);
        assert!(store.apply_briefing_update(b.id, &update).await.unwrap().is_some());

        let (read, options) = store.briefing(b.id).await.unwrap().unwrap();
        assert_eq!(read.status, BriefingStatus::OptionsReady);
        let titles: Vec<_> = options.iter().map(|o| o.title.as_str()).collect();
        assert_eq!(titles, ["Primeira", "Segunda"]);
        assert!(options.iter().all(|o| o.briefing_id == b.id && o.generator_type == "simple"));
        assert_eq!(options[0].description, "Primeira: roteiro");

        // options_ready is not in flight: a repeated report changes nothing, adds nothing.
        assert!(store.apply_briefing_update(b.id, &update).await.unwrap().is_none());
        assert_eq!(store.briefing(b.id).await.unwrap().unwrap().1.len(), 2);

        let (owner_briefing, option) = store.option(options[1].id).await.unwrap().unwrap();
        assert_eq!(owner_briefing, read);
        assert_eq!(option, options[1]);
        assert_eq!(store.option(OptionId(options[1].id.get() + 1000)).await.unwrap(), None);
    }
}

on_both_backends! {
    async fn options_ready_on_a_cancelled_briefing_stores_no_options(store: Store) {
        let b = briefing_in(&store, ALICE, BriefingStatus::Cancelled).await;
        let update = BriefingUpdate::OptionsReady(vec![generated("Tarde demais")]);
        assert!(store.apply_briefing_update(b.id, &update).await.unwrap().is_none());
        let (read, options) = store.briefing(b.id).await.unwrap().unwrap();
        assert_eq!(read.status, BriefingStatus::Cancelled);
        assert!(options.is_empty());
    }
}

on_both_backends! {
    async fn a_briefing_is_cancelled_only_by_its_owner_and_only_while_cancellable(store: Store) {
        for status in BriefingStatus::ALL.iter().copied() {
            let b = briefing_in(&store, ALICE, status).await;
            assert_eq!(
                store.cancel(BOB, b.id, &by_user()).await.unwrap(),
                Transition::NotOwned,
                "{status}"
            );
            let outcome = store.cancel(ALICE, b.id, &by_user()).await.unwrap();
            let after = store.briefing(b.id).await.unwrap().unwrap().0;
            if status.is_cancellable() {
                let Transition::Done(done) = outcome else {
                    panic!("{status}: {outcome:?}")
                };
                assert_eq!(done.status, BriefingStatus::Cancelled);
                assert_eq!(done, after);
                assert!(done.updated_at >= b.updated_at);
                assert_eq!(
                    store.cancel(ALICE, b.id, &by_user()).await.unwrap(),
                    Transition::Refused(BriefingStatus::Cancelled)
                );
            } else {
                assert_eq!(outcome, Transition::Refused(status));
                assert_eq!(after, b, "a refused cancel changes nothing");
            }
        }
        assert_eq!(
            store.cancel(ALICE, BriefingId(999_999), &by_user()).await.unwrap(),
            Transition::NotFound
        );
    }
}

on_both_backends! {
    async fn task_reports_move_a_briefing_only_while_it_is_in_flight(store: Store) {
        let b = briefing_in(&store, ALICE, BriefingStatus::Pending).await;
        assert!(store.apply_briefing_update(b.id, &BriefingUpdate::Running).await.unwrap().is_some());
        let read = store.briefing(b.id).await.unwrap().unwrap().0;
        assert_eq!(read.status, BriefingStatus::Processing);

        let failed = BriefingUpdate::Failed("ValueError: boom".into());
        assert!(store.apply_briefing_update(b.id, &failed).await.unwrap().is_some());
        let read = store.briefing(b.id).await.unwrap().unwrap().0;
        assert_eq!(read.status, BriefingStatus::Failed);
        assert_eq!(read.error_message.as_deref(), Some("ValueError: boom"));

        let revoked = briefing_in(&store, ALICE, BriefingStatus::GeneratingOptions).await;
        assert!(store.apply_briefing_update(revoked.id, &BriefingUpdate::Revoked).await.unwrap().is_some());
        let read = store.briefing(revoked.id).await.unwrap().unwrap().0;
        assert_eq!(read.status, BriefingStatus::Cancelled);

        let updates = [
            BriefingUpdate::Running,
            BriefingUpdate::OptionsReady(vec![generated("x")]),
            BriefingUpdate::Failed("late".into()),
            BriefingUpdate::Revoked,
        ];
        for status in BriefingStatus::ALL.iter().copied().filter(|s| !s.is_in_flight()) {
            let b = briefing_in(&store, ALICE, status).await;
            for update in &updates {
                assert!(store.apply_briefing_update(b.id, update).await.unwrap().is_none(), "{status}");
            }
            assert_eq!(store.briefing(b.id).await.unwrap().unwrap(), (b, vec![]));
        }
        assert!(store.apply_briefing_update(BriefingId(999_999), &BriefingUpdate::Running).await.unwrap().is_none());
    }
}

on_both_backends! {
    async fn an_unknown_briefing_status_in_the_database_is_corrupt_not_a_panic(store: Store) {
        let b = store.create_briefing(ALICE, &draft(), &task(), u32::MAX).await.unwrap()
            .expect("a free job slot");
        set_status(&store, "briefings", b.id.get(), "exploded").await;
        assert!(matches!(store.briefing(b.id).await, Err(StoreError::Corrupt(_))));
        assert!(matches!(store.cancel(ALICE, b.id, &by_user()).await, Err(StoreError::Corrupt(_))));

        let b = store.create_briefing(ALICE, &draft(), &task(), u32::MAX).await.unwrap()
            .expect("a free job slot");
        testing::execute(&store, &format!("UPDATE briefings SET task_id = 'not-a-uuid' WHERE id = {}", b.id))
            .await
            .unwrap();
        let err = store.briefing(b.id).await.unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("task_id")), "{err:?}");
    }
}
