use ensinalab_domain::{BriefingStatus, CANCELLED_BY_USER, ResourceKind, VideoStatus};
use ensinalab_ports::{
    ActivePage, AnyStatus, Briefings, Caller, ResourceRef, SecurityEvent, SecurityEventKind,
    SecurityLog, StoreError, Tasks, Videos,
};
use ensinalab_store::testing;

use crate::support::*;

on_both_backends! {
    async fn active_lists_the_callers_cancellable_rows_newest_first(store: Store) {
        let b_old = briefing_in(&store, ALICE, BriefingStatus::Processing).await;
        let v_mid = video_in(&store, ALICE, VideoStatus::PendingApproval).await;
        let b_new = briefing_in(&store, ALICE, BriefingStatus::GeneratingOptions).await;
        let v_new = video_in(&store, ALICE, VideoStatus::Queued).await;
        set_created(&store, "briefings", b_old.id.get(), 1).await;
        set_created(&store, "videos", v_mid.id.get(), 2).await;
        set_created(&store, "briefings", b_new.id.get(), 3).await;
        // Same instant as b_new: the kind breaks the tie (videos first), then the id.
        set_created(&store, "videos", v_new.id.get(), 3).await;
        // Not listed: finished, not cancellable, or someone else's.
        video_in(&store, ALICE, VideoStatus::Completed).await;
        briefing_in(&store, ALICE, BriefingStatus::Pending).await;
        briefing_in(&store, ALICE, BriefingStatus::OptionsReady).await;
        briefing_in(&store, BOB, BriefingStatus::Processing).await;
        video_in(&store, BOB, VideoStatus::Processing).await;

        let listed_rows = active(&store, ALICE).await;
        let listed: Vec<_> = listed_rows.iter().map(|a| (a.status.kind(), a.id)).collect();
        assert_eq!(
            listed,
            vec![
                (ResourceKind::Video, v_new.id.get()),
                (ResourceKind::Briefing, b_new.id.get()),
                (ResourceKind::Video, v_mid.id.get()),
                (ResourceKind::Briefing, b_old.id.get()),
            ]
        );

        let video = listed_rows.iter().find(|a| a.status.kind() == ResourceKind::Video && a.id == v_new.id.get()).unwrap();
        assert_eq!(video.status, AnyStatus::Video(VideoStatus::Queued));
        assert_eq!(video.progress, Some(0.0));
        assert_eq!(video.generator_type.as_deref(), Some("simple"));
        assert_eq!(video.task_id, v_new.task_id);
        assert_eq!(video.title, v_new.title);
        let briefing = listed_rows.iter().find(|a| a.status.kind() == ResourceKind::Briefing && a.id == b_old.id.get()).unwrap();
        assert_eq!(briefing.status, AnyStatus::Briefing(BriefingStatus::Processing));
        assert_eq!((briefing.progress, briefing.generator_type.as_deref()), (None, None));
        assert_eq!(briefing.task_id, b_old.task_id);
        assert_eq!(briefing.created_at.second(), 1);

        assert!(active(&store, CAROL).await.is_empty());
    }
}

on_both_backends! {
    async fn an_active_row_with_a_task_id_that_is_not_a_uuid_is_corrupt_not_a_panic(store: Store) {
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        testing::execute(&store, &format!("UPDATE videos SET task_id = 'garbage' WHERE id = {}", v.id))
            .await
            .unwrap();
        match store.active(ALICE, &ActivePage::default()).await {
            Err(StoreError::Corrupt(why)) => assert!(why.contains(&format!("videos {}", v.id)), "{why}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

on_both_backends! {
    async fn a_task_id_leads_to_its_resource_whoever_owns_it(store: Store) {
        let b = briefing_in(&store, BOB, BriefingStatus::Completed).await;
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        assert_eq!(
            store.resource_for_task(b.task_id.as_ref().unwrap()).await.unwrap(),
            Some(ResourceRef { kind: ResourceKind::Briefing, id: b.id.get(), user_id: BOB })
        );
        assert_eq!(
            store.resource_for_task(v.task_id.as_ref().unwrap()).await.unwrap(),
            Some(ResourceRef { kind: ResourceKind::Video, id: v.id.get(), user_id: ALICE })
        );
        assert_eq!(store.resource_for_task(&task()).await.unwrap(), None);
    }
}

on_both_backends! {
    async fn cancel_all_cancels_every_cancellable_row_of_the_caller_and_nothing_else(store: Store) {
        let b1 = briefing_in(&store, ALICE, BriefingStatus::Processing).await;
        let b2 = briefing_in(&store, ALICE, BriefingStatus::GeneratingOptions).await;
        let v1 = video_in(&store, ALICE, VideoStatus::Queued).await;
        let v2 = video_in(&store, ALICE, VideoStatus::PendingApproval).await;
        let untouched = [
            store.briefing(briefing_in(&store, ALICE, BriefingStatus::Pending).await.id).await.unwrap().unwrap().0,
            briefing_in(&store, ALICE, BriefingStatus::Completed).await,
            briefing_in(&store, BOB, BriefingStatus::Processing).await,
        ];
        let untouched_videos = [
            video_in(&store, ALICE, VideoStatus::Failed).await,
            video_in(&store, BOB, VideoStatus::Processing).await,
        ];

        let caller = Caller { user_id: ALICE, is_admin: false, client_ip: Some("203.0.113.7".into()) };
        let out = cancel_all(&store, &caller).await.unwrap();
        assert_eq!(out.briefings, vec![(b1.id, b1.task_id.clone()), (b2.id, b2.task_id.clone())]);
        assert_eq!(out.videos, vec![(v1.id, v1.task_id.clone()), (v2.id, v2.task_id.clone())]);

        for b in [&b1, &b2] {
            let read = store.briefing(b.id).await.unwrap().unwrap().0;
            assert_eq!(read.status, BriefingStatus::Cancelled);
        }
        for v in [&v1, &v2] {
            let read = store.video(v.id).await.unwrap().unwrap();
            assert_eq!(read.status, VideoStatus::Cancelled);
            assert_eq!(read.error_message.as_deref(), Some(CANCELLED_BY_USER));
            assert_eq!(read.progress, 0.0);
        }
        for b in untouched {
            assert_eq!(store.briefing(b.id).await.unwrap().unwrap().0, b);
        }
        for v in untouched_videos {
            assert_eq!(store.video(v.id).await.unwrap().unwrap(), v);
        }
        assert!(active(&store, ALICE).await.is_empty());

        // The trail is the use case's to write.
        assert!(testing::security_events(&store).await.unwrap().is_empty());

        // Nothing left: nothing moves.
        let again = cancel_all(&store, &caller).await.unwrap();
        assert!(again.briefings.is_empty() && again.videos.is_empty());
    }
}

on_both_backends! {
    async fn cancel_all_changes_nothing_when_it_fails(store: Store) {
        let b = briefing_in(&store, ALICE, BriefingStatus::Processing).await;
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        // A row the store cannot read back makes the whole transaction fail.
        testing::execute(&store, &format!("UPDATE videos SET task_id = 'garbage' WHERE id = {}", v.id))
            .await
            .unwrap();
        let caller = Caller { user_id: ALICE, is_admin: false, client_ip: None };
        assert!(matches!(cancel_all(&store, &caller).await, Err(StoreError::Corrupt(_))));
        assert_eq!(store.briefing(b.id).await.unwrap().unwrap().0, b);
        assert!(testing::security_events(&store).await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn in_flight_lists_rows_with_a_task_oldest_first_up_to_the_limit(store: Store) {
        let b = briefing_in(&store, ALICE, BriefingStatus::Pending).await;
        let v = video_in(&store, BOB, VideoStatus::Processing).await;
        let q = video_in(&store, ALICE, VideoStatus::Queued).await;
        set_created(&store, "videos", v.id.get(), 1).await;
        set_created(&store, "briefings", b.id.get(), 2).await;
        set_created(&store, "videos", q.id.get(), 3).await;
        // Not in flight, or no task to ask about.
        video_in(&store, ALICE, VideoStatus::PendingApproval).await;
        video_in(&store, ALICE, VideoStatus::Completed).await;
        let untracked = briefing_in(&store, ALICE, BriefingStatus::Processing).await;
        testing::execute(&store, &format!("UPDATE briefings SET task_id = NULL WHERE id = {}", untracked.id))
            .await
            .unwrap();
        // briefing_with_option (inside video_in) leaves options_ready briefings: not in flight.

        let all = store.in_flight(100).await.unwrap();
        let listed: Vec<_> = all.iter().map(|t| (t.resource, t.status, t.progress)).collect();
        assert_eq!(
            listed,
            vec![
                (ResourceRef { kind: ResourceKind::Video, id: v.id.get(), user_id: BOB }, AnyStatus::Video(VideoStatus::Processing), Some(0.0)),
                (ResourceRef { kind: ResourceKind::Briefing, id: b.id.get(), user_id: ALICE }, AnyStatus::Briefing(BriefingStatus::Pending), None),
                (ResourceRef { kind: ResourceKind::Video, id: q.id.get(), user_id: ALICE }, AnyStatus::Video(VideoStatus::Queued), Some(0.0)),
            ]
        );
        assert_eq!(all[0].task_id, v.task_id.clone().unwrap());
        assert_eq!(all[1].task_id, b.task_id.clone().unwrap());

        let first_two = store.in_flight(2).await.unwrap();
        assert_eq!(first_two, all[..2].to_vec());
        assert!(store.in_flight(0).await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn security_events_are_appended_as_given(store: Store) {
        let v = video_in(&store, ALICE, VideoStatus::Processing).await;
        let events = [
            SecurityEvent {
                event: SecurityEventKind::VideoCancelled,
                user_id: Some(ALICE),
                resource: Some((ResourceKind::Video, v.id.get())),
                task_id: v.task_id.clone(),
                outcome: ensinalab_ports::EventOutcome::Cancelled,
                client_ip: Some("2001:db8::1".into()),
                details: serde_json::json!({ "revoke": "signalled", "nested": { "n": [1, 2] } }),
            },
            SecurityEvent {
                event: SecurityEventKind::AuthFailed,
                user_id: None,
                resource: None,
                task_id: None,
                outcome: ensinalab_ports::EventOutcome::InvalidToken,
                client_ip: None,
                details: serde_json::json!({}),
            },
        ];
        for e in &events {
            store.record(e).await.unwrap();
        }
        assert_eq!(testing::security_events(&store).await.unwrap(), events);
    }
}

on_both_backends! {
    async fn pages_of_the_active_list_cover_every_row_once_in_order_with_the_whole_counts(store: Store) {
        // 7 rows: three at one instant (kinds and ids break the tie), the rest one second apart.
        let mut made = Vec::new();
        for (i, kind) in ["v", "b", "v", "b", "v", "b", "v"].into_iter().enumerate() {
            let (table, id) = if kind == "v" {
                ("videos", video_in(&store, ALICE, VideoStatus::Processing).await.id.get())
            } else {
                ("briefings", briefing_in(&store, ALICE, BriefingStatus::Processing).await.id.get())
            };
            set_created(&store, table, id, u8::try_from(i.min(4)).unwrap()).await;
            made.push(id);
        }
        video_in(&store, BOB, VideoStatus::Processing).await;
        let everything: Vec<_> = active(&store, ALICE).await.iter().map(|r| (r.status.kind(), r.id)).collect();
        assert_eq!(everything.len(), 7);

        let mut seen = Vec::new();
        let mut page = ActivePage { limit: 3, after: None };
        loop {
            let got = store.active(ALICE, &page).await.unwrap();
            assert_eq!((got.briefings, got.videos), (3, 4), "the counts are the whole list's");
            assert!(got.rows.len() <= 4, "at most one row past the page");
            let more = got.rows.len() > 3;
            let shown = &got.rows[..got.rows.len().min(3)];
            seen.extend(shown.iter().map(|r| (r.status.kind(), r.id)));
            if !more {
                break;
            }
            page.after = shown.last().map(ensinalab_ports::ActivePosition::of);
        }
        assert_eq!(seen, everything, "every row once, in the one order");

        // After the last row: no rows, the counts still there.
        let whole = store.active(ALICE, &ActivePage::default()).await.unwrap();
        assert_eq!((whole.briefings, whole.videos), (3, 4), "a page that holds it all counts it");
        let last = whole.rows;
        let past = ActivePage { limit: 3, after: last.last().map(ensinalab_ports::ActivePosition::of) };
        let got = store.active(ALICE, &past).await.unwrap();
        assert!(got.rows.is_empty());
        assert_eq!((got.briefings, got.videos), (3, 4));
    }
}

on_both_backends! {
    async fn a_creation_past_the_users_slots_writes_nothing(store: Store) {
        let slots = 3;
        for _ in 0..2 {
            store.create_briefing(ALICE, &draft(), &task(), slots).await.unwrap().expect("a slot");
        }
        // A finished job frees its slot; an options_ready briefing holds none.
        let done = briefing_in(&store, ALICE, BriefingStatus::Completed).await;
        let (ready, option) = briefing_with_option(&store, ALICE).await;
        assert_eq!(ready.status, BriefingStatus::OptionsReady);
        let new_video = |task_id| ensinalab_ports::NewVideo {
            user_id: ALICE,
            briefing_id: ready.id,
            option_id: option.id,
            title: "t".into(),
            generator_type: "simple".into(),
            task_id,
        };
        store.create_video(&new_video(task()), slots).await.unwrap().expect("the third slot");
        assert_eq!(store.create_briefing(ALICE, &draft(), &task(), slots).await.unwrap(), None);
        assert_eq!(store.create_video(&new_video(task()), slots).await.unwrap(), None);
        // Another user has slots of their own.
        assert!(store.create_briefing(BOB, &draft(), &task(), slots).await.unwrap().is_some());
        let rows = store.active(ALICE, &ActivePage::default()).await.unwrap();
        assert_eq!((rows.briefings, rows.videos), (2, 1), "nothing past the slots: {done:?}");
    }
}

/// A URL only sqlx reads leaves the active list to sqlx; the two paths give the same pages.
#[tokio::test]
async fn the_active_list_through_sqlx_reads_the_same_pages_as_through_tokio_postgres() {
    let db = testing::TestPostgres::new().await.unwrap();
    let store = db.store();
    for status in [VideoStatus::Processing, VideoStatus::Queued] {
        video_in(store, ALICE, status).await;
    }
    briefing_in(store, ALICE, BriefingStatus::Processing).await;
    let through_sqlx =
        ensinalab_store::SqlStore::connect(&format!("{}?statement-cache-capacity=100", db.url()))
            .await
            .unwrap();
    let first = ActivePage {
        limit: 2,
        after: None,
    };
    for page in [ActivePage::default(), first] {
        let ours = store.active(ALICE, &page).await.unwrap();
        assert_eq!(through_sqlx.active(ALICE, &page).await.unwrap(), ours);
        let after = ActivePage {
            limit: 1,
            after: ours.rows.first().map(ensinalab_ports::ActivePosition::of),
        };
        assert_eq!(
            through_sqlx.active(ALICE, &after).await.unwrap(),
            store.active(ALICE, &after).await.unwrap()
        );
    }
    drop(through_sqlx);
    db.cleanup().await.unwrap();
}
