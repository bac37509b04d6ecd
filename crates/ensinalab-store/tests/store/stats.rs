//! The operators' figures: every way a job ends is recorded by the transition that ends it
//! (`finished_at`, `cancel_reason`) and counted on its UTC day in one statement; the census
//! counts what is in flight and what the broker has not taken. The same cases on both backends.

use ensinalab_domain::{BriefingStatus, Cancel, CancelReason, VideoStatus};
use ensinalab_ports::{
    AnyStatus, BriefingUpdate, Briefings, Caller, Census, DayCounts, Statistics, Tasks, Transition,
    VideoUpdate, Videos,
};
use ensinalab_store::testing;
use time::{Duration, OffsetDateTime};

use crate::support::*;

fn caller(user_id: ensinalab_domain::UserId) -> Caller {
    Caller {
        user_id,
        is_admin: false,
        client_ip: None,
    }
}

on_both_backends! {
    async fn every_way_a_job_ends_is_counted_on_the_day_it_ended(store: Store) {
        // Each `video_in` also makes a briefing (options ready: not finished): 2 jobs created.
        let late = video_in(&store, CAROL, VideoStatus::Processing).await;
        testing::execute(&store, &format!("UPDATE videos SET started_at = '2026-01-01T00:00:00Z' WHERE id = {}", late.id)).await.unwrap();
        let cutoff = OffsetDateTime::now_utc() - Duration::hours(1);
        let timeout = Cancel::new(CancelReason::Timeout);
        assert_eq!(store.cancel_expired(&Cancel::new(CancelReason::Timeout), cutoff, &timeout, cutoff).await.unwrap().len(), 1);

        let mine = video_in(&store, ALICE, VideoStatus::Processing).await;
        assert!(matches!(store.cancel(ALICE, mine.id, &by_user()).await.unwrap(), Transition::Done(_)));
        briefing_in(&store, BOB, BriefingStatus::Processing).await;
        video_in(&store, BOB, VideoStatus::Queued).await;
        let all = cancel_all(&store, &caller(BOB)).await.unwrap();
        assert_eq!((all.briefings.len(), all.videos.len()), (1, 1));

        let done = video_in(&store, ALICE, VideoStatus::Processing).await;
        store.apply_video_update(done.id, &VideoUpdate::Finished(VideoStatus::Completed)).await.unwrap().unwrap();
        let broken = briefing_in(&store, ALICE, BriefingStatus::Processing).await;
        store.apply_briefing_update(broken.id, &BriefingUpdate::Failed("boom".into())).await.unwrap().unwrap();
        // Revoked from elsewhere: cancelled, but by none of the three reasons the days count.
        let revoked = video_in(&store, ALICE, VideoStatus::Queued).await;
        store.apply_video_update(revoked.id, &VideoUpdate::Revoked).await.unwrap().unwrap();

        let today = OffsetDateTime::now_utc().date();
        let yesterday = today - Duration::days(1);
        let counts = store.daily_counts(yesterday, today).await.unwrap();
        let expected = DayCounts {
            date: today,
            created: 12,
            cancelled_user: 1,
            cancelled_user_all: 2,
            cancelled_timeout: 1,
            completed: 1,
            failed: 1,
        };
        assert_eq!(counts, [expected]);

        // Created yesterday, finished today: each on its own day; outside the window: nowhere.
        testing::execute(&store, &format!("UPDATE videos SET created_at = '{yesterday}T23:59:59Z' WHERE id = {}", done.id)).await.unwrap();
        testing::execute(&store, &format!("UPDATE briefings SET created_at = '{}T12:00:00Z' WHERE id = {}", yesterday - Duration::days(1), broken.id)).await.unwrap();
        let counts = store.daily_counts(yesterday, today).await.unwrap();
        let mut before = DayCounts::empty(yesterday);
        before.created = 1;
        assert_eq!(counts, [before, DayCounts { created: 10, ..expected }]);
        assert_eq!(store.daily_counts(today, today).await.unwrap(), [DayCounts { created: 10, ..expected }]);
    }
}

on_both_backends! {
    async fn the_census_counts_jobs_in_flight_by_status_and_revokes_not_delivered(store: Store) {
        assert_eq!(store.census().await.unwrap(), Census::default());
        video_in(&store, ALICE, VideoStatus::Queued).await;
        video_in(&store, ALICE, VideoStatus::Processing).await;
        let running = video_in(&store, BOB, VideoStatus::Processing).await;
        briefing_in(&store, BOB, BriefingStatus::Pending).await;
        video_in(&store, BOB, VideoStatus::Completed).await;
        assert!(matches!(store.cancel(BOB, running.id, &by_user()).await.unwrap(), Transition::Done(_)));
        // Counted as soon as the cancel committed: nothing else has read the outbox.
        let mut census = store.census().await.unwrap();
        census.in_flight.sort_by_key(|(status, _)| status.as_str());
        assert_eq!(
            census,
            Census {
                in_flight: vec![
                    (AnyStatus::Briefing(BriefingStatus::Pending), 1),
                    (AnyStatus::Video(VideoStatus::Processing), 1),
                    (AnyStatus::Video(VideoStatus::Queued), 1),
                ],
                revokes_pending: 1,
            }
        );
    }
}
