//! The store carries out the domain's cancel, whatever its reason, without deciding again: for
//! every status × reason, the row moves exactly when `Cancel::new(reason)` allows its status,
//! and writes what that cancel says. The same cases on both backends.

use ensinalab_domain::{BriefingStatus, Cancel, CancelReason, Lifecycle, VideoStatus};
use ensinalab_ports::{Briefings, Transition, Videos};

use ensinalab_store::testing;

use crate::support::*;

on_both_backends! {
    async fn every_video_status_and_reason_moves_exactly_as_the_domain_decides(store: Store) {
        for reason in CancelReason::ALL {
            for &status in <VideoStatus as Lifecycle>::ALL {
                let v = video_in(&store, ALICE, status).await;
                let cancel = Cancel::new(reason);
                let outcome = store.cancel(ALICE, v.id, &cancel).await.unwrap();
                let after = store.video(v.id).await.unwrap().unwrap();
                if cancel.allows(status) {
                    assert_eq!(outcome, Transition::Done(after.clone()), "{status} {reason}");
                    assert_eq!(after.status, cancel.to);
                    assert_eq!(after.error_message.as_deref(), cancel.error_message);
                    assert_eq!(after.progress, cancel.progress.unwrap_or(v.progress));
                } else {
                    assert_eq!(outcome, Transition::Refused(status), "{status} {reason}");
                    assert_eq!(after, v, "{status} {reason}: untouched");
                }
            }
        }
    }
}

on_both_backends! {
    async fn every_briefing_status_and_reason_moves_exactly_as_the_domain_decides(store: Store) {
        for reason in CancelReason::ALL {
            for &status in <BriefingStatus as Lifecycle>::ALL {
                let b = briefing_in(&store, ALICE, status).await;
                let cancel = Cancel::new(reason);
                let outcome = store.cancel(ALICE, b.id, &cancel).await.unwrap();
                let after = store.briefing(b.id).await.unwrap().unwrap().0;
                if cancel.allows(status) {
                    assert_eq!(outcome, Transition::Done(after.clone()), "{status} {reason}");
                    assert_eq!(after.status, cancel.to);
                    assert_eq!(after.error_message.as_deref(), cancel.error_message);
                } else {
                    assert_eq!(outcome, Transition::Refused(status), "{status} {reason}");
                    assert_eq!(after, b, "{status} {reason}: untouched");
                }
            }
        }
    }
}

on_both_backends! {
    async fn cancel_all_moves_exactly_the_rows_the_domain_allows_for_its_reasons(store: Store) {
        // Cancel-all for the timeout: only running rows move, with the timeout's message.
        let running = video_in(&store, ALICE, VideoStatus::Processing).await;
        let queued = video_in(&store, ALICE, VideoStatus::Queued).await;
        let pending = briefing_in(&store, ALICE, BriefingStatus::Pending).await;
        let generating = briefing_in(&store, ALICE, BriefingStatus::GeneratingOptions).await;
        let timeout = CancelReason::Timeout;
        let moved = ensinalab_ports::Tasks::cancel_all(
            &store,
            ALICE,
            &Cancel::new(timeout),
            &Cancel::new(timeout),
        )
        .await
        .unwrap();
        assert_eq!(moved.videos, vec![(running.id, running.task_id.clone())]);
        assert_eq!(moved.briefings, vec![(generating.id, generating.task_id.clone())]);
        let after = store.video(running.id).await.unwrap().unwrap();
        assert_eq!(after.error_message.as_deref(), Cancel::<VideoStatus>::new(timeout).error_message);
        assert_eq!(store.video(queued.id).await.unwrap().unwrap(), queued);
        assert_eq!(store.briefing(pending.id).await.unwrap().unwrap().0, pending);
    }
}

on_both_backends! {
    async fn the_timeout_moves_running_rows_started_before_their_cutoff_once(store: Store) {
        use ensinalab_ports::{BriefingUpdate, Tasks, VideoUpdate};

        let late = video_in(&store, ALICE, VideoStatus::Processing).await;
        let fresh = video_in(&store, BOB, VideoStatus::Processing).await;
        let queued = video_in(&store, ALICE, VideoStatus::Queued).await;
        let briefing = briefing_in(&store, BOB, BriefingStatus::Processing).await;
        // A worker's first report records the start; a second one does not move it.
        let running = VideoUpdate::Running { progress: 0.3 };
        for v in [&late, &fresh] {
            assert!(store.apply_video_update(v.id, &running).await.unwrap().is_some());
        }
        assert!(store.apply_briefing_update(briefing.id, &BriefingUpdate::Running).await.unwrap().is_some());
        assert!(store.apply_briefing_update(briefing.id, &BriefingUpdate::Running).await.unwrap().is_none(), "started once");
        let first = store.video(late.id).await.unwrap().unwrap().started_at.unwrap();
        store.apply_video_update(late.id, &running).await.unwrap();
        assert_eq!(store.video(late.id).await.unwrap().unwrap().started_at, Some(first));
        testing::execute(&store, &format!("UPDATE videos SET started_at = '2026-01-01T00:00:00Z' WHERE id = {}", late.id)).await.unwrap();
        testing::execute(&store, &format!("UPDATE briefings SET started_at = '2026-01-01T00:00:00Z' WHERE id = {}", briefing.id)).await.unwrap();

        let cutoff = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let (b_timeout, timeout) = (Cancel::new(CancelReason::Timeout), Cancel::new(CancelReason::Timeout));
        let expired = store.cancel_expired(&b_timeout, cutoff, &timeout, cutoff).await.unwrap();
        let moved: Vec<_> = expired.iter().map(|j| (j.resource.kind, j.resource.id, j.resource.user_id)).collect();
        assert_eq!(
            moved,
            vec![
                (ensinalab_domain::ResourceKind::Briefing, briefing.id.get(), BOB),
                (ensinalab_domain::ResourceKind::Video, late.id.get(), ALICE),
            ]
        );
        assert_eq!(expired[1].task_id, late.task_id);
        assert_eq!(expired[1].started_at.year(), 2026);
        let after = store.video(late.id).await.unwrap().unwrap();
        assert_eq!(after.status, VideoStatus::Cancelled);
        assert_eq!(after.error_message.as_deref(), timeout.error_message);
        for (untouched, status) in [(&fresh, VideoStatus::Processing), (&queued, VideoStatus::Queued)] {
            assert_eq!(store.video(untouched.id).await.unwrap().unwrap().status, status);
        }
        // Swept again: nothing moves twice.
        assert!(store.cancel_expired(&b_timeout, cutoff, &timeout, cutoff).await.unwrap().is_empty());
        assert_eq!(testing::row_count(&store, "revoke_outbox").await.unwrap(), 2, "one row per task, owed once");
    }
}
