//! The daily figures: one entry per UTC day, oldest first, today last, a quiet day all zeros,
//! the store read once; `days` outside 1..=90 refused before any read.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::Ordering;

use ensinalab_app::AdminError;
use ensinalab_app::testing::{service, wired, write_trail};
use ensinalab_app::{Admin, RefusalGate, Service, Settings};
use ensinalab_domain::{UserId, VideoStatus};
use ensinalab_ports::{Caller, DayCounts, EventOutcome, MAX_STATS_DAYS, SecurityEventKind};
use time::{Duration, OffsetDateTime};

const ROUTE: &str = "/admin/stats";

fn operator() -> Caller {
    Caller {
        user_id: UserId(99),
        is_admin: true,
        client_ip: None,
    }
}

fn admin<S, B>(svc: &Service<S, B>) -> Admin {
    svc.admin(&operator(), ROUTE).unwrap()
}

#[tokio::test]
async fn every_day_of_the_window_has_an_entry_and_only_today_has_the_jobs() {
    let svc = service();
    svc.store()
        .insert_video(UserId(1), VideoStatus::Processing, None);
    svc.store()
        .insert_video(UserId(1), VideoStatus::Failed, None);
    let today = OffsetDateTime::now_utc().date();

    let days = svc.daily_stats(&admin(&svc), 3, today).await.unwrap();
    let dates: Vec<_> = days.iter().map(|d| d.date).collect();
    assert_eq!(
        dates,
        [today - Duration::days(2), today - Duration::days(1), today]
    );
    assert_eq!(days[0], DayCounts::empty(today - Duration::days(2)));
    assert_eq!(days[1], DayCounts::empty(today - Duration::days(1)));
    assert_eq!((days[2].created, days[2].failed), (2, 1));

    assert_eq!(
        svc.daily_stats(&admin(&svc), 1, today).await.unwrap().len(),
        1
    );
    assert_eq!(
        svc.daily_stats(&admin(&svc), MAX_STATS_DAYS, today)
            .await
            .unwrap()
            .len(),
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
            svc.daily_stats(&admin(&svc), days, today).await,
            Err(AdminError::DaysOutOfRange { max: 90 })
        ));
    }
    assert!(matches!(
        svc.daily_stats(&admin(&svc), 7, today).await,
        Err(AdminError::Store(_))
    ));
}

#[tokio::test]
async fn anyone_but_an_admin_is_refused_and_leaves_one_row_per_window() {
    let (svc, mut drains, _) = wired(Settings::default());
    let user = Caller {
        is_admin: false,
        ..operator()
    };
    for route in [ROUTE, "/admin/security-events", ROUTE] {
        assert!(matches!(svc.admin(&user, route), Err(AdminError::NotAdmin)));
    }
    write_trail(&svc, &mut drains, &mut RefusalGate::default()).await;
    let events = svc.store().events();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.event, e.outcome, e.user_id, e.details["route"].as_str()))
        .collect();
    assert_eq!(
        seen,
        [(
            SecurityEventKind::AdminRefused,
            EventOutcome::NotAdmin,
            Some(UserId(99)),
            Some(ROUTE)
        )],
        "one row per caller per window, naming the first route"
    );
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
