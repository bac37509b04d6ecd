//! The daily figures: one entry per UTC day, oldest first, today last, a quiet day all zeros,
//! the store read once; `days` outside 1..=90 refused before any read.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::Ordering;

use ensinalab_app::StatsError;
use ensinalab_app::testing::service;
use ensinalab_domain::{UserId, VideoStatus};
use ensinalab_ports::{DayCounts, MAX_STATS_DAYS};
use time::{Duration, OffsetDateTime};

#[tokio::test]
async fn every_day_of_the_window_has_an_entry_and_only_today_has_the_jobs() {
    let svc = service();
    svc.store()
        .insert_video(UserId(1), VideoStatus::Processing, None);
    svc.store()
        .insert_video(UserId(1), VideoStatus::Failed, None);
    let today = OffsetDateTime::now_utc().date();

    let days = svc.daily_stats(3, today).await.unwrap();
    let dates: Vec<_> = days.iter().map(|d| d.date).collect();
    assert_eq!(
        dates,
        [today - Duration::days(2), today - Duration::days(1), today]
    );
    assert_eq!(days[0], DayCounts::empty(today - Duration::days(2)));
    assert_eq!(days[1], DayCounts::empty(today - Duration::days(1)));
    assert_eq!((days[2].created, days[2].failed), (2, 1));

    assert_eq!(svc.daily_stats(1, today).await.unwrap().len(), 1);
    assert_eq!(
        svc.daily_stats(MAX_STATS_DAYS, today).await.unwrap().len(),
        90
    );
}

#[tokio::test]
async fn days_outside_one_to_ninety_are_refused_without_reading_the_store() {
    let svc = service();
    svc.store().down.store(true, Ordering::SeqCst);
    let today = OffsetDateTime::now_utc().date();
    for days in [0, MAX_STATS_DAYS + 1, u32::MAX] {
        assert!(matches!(
            svc.daily_stats(days, today).await,
            Err(StatsError::DaysOutOfRange { max: 90 })
        ));
    }
    assert!(matches!(
        svc.daily_stats(7, today).await,
        Err(StatsError::Store(_))
    ));
}

#[test]
fn the_cancel_rate_is_every_cancellation_over_the_jobs_created() {
    let today = OffsetDateTime::now_utc().date();
    let day = DayCounts {
        created: 40,
        cancelled_user: 2,
        cancelled_user_all: 1,
        cancelled_timeout: 1,
        ..DayCounts::empty(today)
    };
    assert_eq!(day.cancelled(), 4);
    assert!((day.cancel_rate() - 0.1).abs() < f64::EPSILON);
    assert!(DayCounts::empty(today).cancel_rate().abs() < f64::EPSILON);
}
