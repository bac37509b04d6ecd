use std::time::Duration;

use ensinalab_domain::{BriefingStatus, CancelReason, ResourceKind, UserId, VideoStatus};
use ensinalab_ports::{
    AnyStatus, Census, CensusSink, ChangeKind, ChangeSink, Overdue, RevokeOutcome, RevokeStatus,
    TaskChange,
};
use time::OffsetDateTime;

use super::*;

fn change(resource: ResourceKind, kind: ChangeKind, status: AnyStatus) -> TaskChange {
    TaskChange {
        user_id: UserId(1),
        resource: (resource, 7),
        task_id: None,
        kind,
        status,
        progress: None,
        at: OffsetDateTime::now_utc(),
    }
}

/// The value of the sample `line` (name and labels as exposed), if exposed.
fn sample(text: &str, line: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_change_stream_counts_creations_cancellations_finishes_and_revokes() {
    let metrics = Metrics::new();
    let video = |kind, status| change(ResourceKind::Video, kind, AnyStatus::Video(status));
    let briefing = |kind, status| change(ResourceKind::Briefing, kind, AnyStatus::Briefing(status));
    for c in [
        video(ChangeKind::Created, VideoStatus::Queued),
        video(ChangeKind::Created, VideoStatus::Queued),
        briefing(ChangeKind::Created, BriefingStatus::Pending),
        video(ChangeKind::Started, VideoStatus::Processing),
        video(ChangeKind::Progress, VideoStatus::Processing),
        video(ChangeKind::PendingApproval, VideoStatus::PendingApproval),
        video(
            ChangeKind::Cancelled(CancelReason::User),
            VideoStatus::Cancelled,
        ),
        briefing(
            ChangeKind::Cancelled(CancelReason::Timeout),
            BriefingStatus::Cancelled,
        ),
        video(ChangeKind::Completed, VideoStatus::Completed),
        briefing(ChangeKind::Failed, BriefingStatus::Failed),
        video(
            ChangeKind::Revoke(RevokeStatus::Pending),
            VideoStatus::Cancelled,
        ),
        video(
            ChangeKind::Revoke(RevokeStatus::Done(RevokeOutcome::Signalled)),
            VideoStatus::Cancelled,
        ),
        video(
            ChangeKind::RevokeOverdue(Overdue::StillRunning),
            VideoStatus::Cancelled,
        ),
    ] {
        metrics.publish(&c);
    }
    let text = metrics.encode().unwrap();
    assert_samples(
        &text,
        r#"
        ensinalab_jobs_created_total{kind="video"} 2
        ensinalab_jobs_created_total{kind="briefing"} 1
        ensinalab_cancellations_total{kind="video",reason="user"} 1
        ensinalab_cancellations_total{kind="briefing",reason="timeout"} 1
        ensinalab_jobs_finished_total{kind="video",status="cancelled"} 1
        ensinalab_jobs_finished_total{kind="video",status="completed"} 1
        ensinalab_jobs_finished_total{kind="briefing",status="failed"} 1
        ensinalab_revokes_total{outcome="pending"} 1
        ensinalab_revokes_total{outcome="signalled"} 1
        ensinalab_revokes_overdue_total{problem="still_running"} 1
        "#,
    );
    assert!(
        !text.contains(r#"status="pending_approval""#),
        "waiting for a human is not finished:\n{text}"
    );
}

#[test]
fn job_series_are_exposed_at_zero_before_anything_happened() {
    let text = Metrics::new().encode().unwrap();
    for line in [
        r#"ensinalab_jobs_created_total{kind="video"}"#,
        r#"ensinalab_cancellations_total{kind="briefing",reason="user_all"}"#,
        r#"ensinalab_jobs_finished_total{kind="video",status="failed"}"#,
        r#"ensinalab_revokes_overdue_total{problem="undelivered"}"#,
    ] {
        assert_eq!(
            sample(&text, line),
            Some(0.0),
            "{line} in
{text}"
        );
    }
}

#[test]
fn requests_are_counted_and_timed_by_route_template_method_and_status() {
    let metrics = Metrics::new();
    let route = "/videos/{video_hash}/cancel";
    metrics.observe_request(route.to_owned(), "POST", 200, Duration::from_millis(3));
    metrics.observe_request(route.to_owned(), "POST", 200, Duration::from_millis(30));
    metrics.observe_request(UNMATCHED_ROUTE.to_owned(), "GET", 404, Duration::ZERO);
    metrics.auth_failed();
    metrics.rate_limited("cancel");
    let text = metrics.encode().unwrap();
    assert_samples(
        &text,
        r#"
        ensinalab_http_requests_total{route="/videos/{video_hash}/cancel",method="POST",status="200"} 2
        ensinalab_http_requests_total{route="unmatched",method="GET",status="404"} 1
        ensinalab_http_request_duration_seconds_count{route="/videos/{video_hash}/cancel",method="POST"} 2
        ensinalab_http_request_duration_seconds_bucket{le="0.005",route="/videos/{video_hash}/cancel",method="POST"} 1
        ensinalab_auth_failures_total 1
        ensinalab_rate_limited_total{policy="cancel"} 1
        "#,
    );
}

#[test]
fn the_census_sets_every_in_flight_status_and_zeroes_the_emptied_ones() {
    let metrics = Metrics::new();
    metrics.record(&Census {
        in_flight: vec![
            (AnyStatus::Video(VideoStatus::Processing), 3),
            (AnyStatus::Briefing(BriefingStatus::Pending), 1),
        ],
        revokes_pending: 2,
    });
    metrics.record(&Census {
        in_flight: vec![(AnyStatus::Video(VideoStatus::Queued), 5)],
        revokes_pending: 0,
    });
    let text = metrics.encode().unwrap();
    assert_samples(
        &text,
        r#"
        ensinalab_jobs_in_flight{kind="video",status="queued"} 5
        ensinalab_jobs_in_flight{kind="video",status="processing"} 0
        ensinalab_jobs_in_flight{kind="briefing",status="pending"} 0
        ensinalab_jobs_in_flight{kind="briefing",status="generating_options"} 0
        ensinalab_revoke_outbox_pending 0
        "#,
    );
}

#[test]
fn the_stream_gauge_shows_the_count_it_was_last_given() {
    let metrics = Metrics::new();
    let streams = metrics.event_streams();
    streams.set(2);
    assert_eq!(
        sample(&metrics.encode().unwrap(), "ensinalab_event_streams"),
        Some(2.0)
    );
    streams.set(0);
    assert_eq!(
        sample(&metrics.encode().unwrap(), "ensinalab_event_streams"),
        Some(0.0)
    );
}

#[test]
fn every_family_has_help_and_the_process_is_measured() {
    let metrics = Metrics::new();
    // Families whose labels come from what happens are exposed once something happened.
    metrics.observe_request("/healthz".to_owned(), "GET", 200, Duration::ZERO);
    metrics.rate_limited("general");
    metrics.publish(&change(
        ResourceKind::Video,
        ChangeKind::Revoke(RevokeStatus::NoTask),
        AnyStatus::Video(VideoStatus::Cancelled),
    ));
    metrics.record(&Census::default());
    let text = metrics.encode().unwrap();
    for name in [
        "ensinalab_jobs_created",
        "ensinalab_cancellations",
        "ensinalab_jobs_finished",
        "ensinalab_revokes",
        "ensinalab_revokes_overdue",
        "ensinalab_http_requests",
        "ensinalab_http_request_duration_seconds",
        "ensinalab_auth_failures",
        "ensinalab_rate_limited",
        "ensinalab_jobs_in_flight",
        "ensinalab_revoke_outbox_pending",
        "ensinalab_event_streams",
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        let help = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# HELP {name} ")));
        assert!(
            help.is_some_and(|h| h.len() > 10),
            "{name} without help in\n{text}"
        );
    }
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
    assert!(sample(&text, "process_open_fds").is_some_and(|v| v >= 1.0));
    assert!(text.ends_with("# EOF\n"));
}

/// Asserts every `name value` line of `expected` is a sample of `text`.
fn assert_samples(text: &str, expected: &str) {
    for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line.rsplit_once(' ').expect("a name and a value");
        let value: f64 = value.parse().expect("a number");
        assert_eq!(sample(text, name), Some(value), "{name} in\n{text}");
    }
}
