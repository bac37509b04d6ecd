//! The security trail: reading it back (filters, newest first, keyset pages) and pruning it.

use std::time::Duration;

use ensinalab_domain::{ResourceKind, UserId};
use ensinalab_ports::{EventOutcome, SecurityEvent, SecurityEventQuery, SecurityLog};

use ensinalab_store::testing;

use crate::support::{ALICE, BOB, CAROL, on_both_backends, task};

fn event(name: &str, user: Option<UserId>) -> SecurityEvent {
    SecurityEvent {
        event: name.parse().unwrap(),
        user_id: user,
        resource: None,
        task_id: None,
        outcome: EventOutcome::Refused,
        client_ip: Some("10.0.0.1".to_owned()),
        details: serde_json::json!({"n": 1}),
    }
}

fn query(limit: u32) -> SecurityEventQuery {
    SecurityEventQuery {
        limit,
        ..SecurityEventQuery::default()
    }
}

on_both_backends! {
    async fn events_come_back_newest_first_with_every_field(store: Store) {
        let full = SecurityEvent {
            resource: Some((ResourceKind::Video, 42)),
            task_id: Some(task()),
            ..event("cancel_refused", Some(ALICE))
        };
        store.record(&event("auth_failed", None)).await.unwrap();
        store.record(&full).await.unwrap();
        let page = store.security_events(&query(10)).await.unwrap();
        let names: Vec<_> = page.events.iter().map(|e| e.event.event.as_str()).collect();
        assert_eq!(names, ["cancel_refused", "auth_failed"]);
        assert_eq!(page.events[0].event, full);
        assert!(page.events[0].id > page.events[1].id);
        assert_eq!(page.next_before_id, None);
    }
}

on_both_backends! {
    async fn filters_by_user_and_event_combine(store: Store) {
        for (name, user) in [
            ("cancel_refused", Some(ALICE)),
            ("video_cancelled", Some(ALICE)),
            ("cancel_refused", Some(BOB)),
            ("auth_failed", None),
        ] {
            store.record(&event(name, user)).await.unwrap();
        }
        let by_user = SecurityEventQuery { user_id: Some(ALICE), ..query(10) };
        let page = store.security_events(&by_user).await.unwrap();
        assert_eq!(page.events.len(), 2);
        assert!(page.events.iter().all(|e| e.event.user_id == Some(ALICE)));

        let by_event = SecurityEventQuery { event: Some("cancel_refused".parse().unwrap()), ..query(10) };
        let page = store.security_events(&by_event).await.unwrap();
        let users: Vec<_> = page.events.iter().map(|e| e.event.user_id).collect();
        assert_eq!(users, [Some(BOB), Some(ALICE)]);

        let both = SecurityEventQuery { user_id: Some(BOB), ..by_event };
        assert_eq!(store.security_events(&both).await.unwrap().events.len(), 1);
        let nobody = SecurityEventQuery { user_id: Some(CAROL), ..query(10) };
        assert!(store.security_events(&nobody).await.unwrap().events.is_empty());
    }
}

on_both_backends! {
    async fn a_time_range_includes_since_and_excludes_until(store: Store) {
        for name in ["auth_failed", "rate_limited", "admin_refused"] {
            store.record(&event(name, Some(ALICE))).await.unwrap();
            // Distinct timestamps, whatever the clock's resolution.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all = store.security_events(&query(10)).await.unwrap().events;
        let second = all[1].created_at;
        let third = all[0].created_at;
        assert!(all[2].created_at < second && second < third);

        let since = SecurityEventQuery { since: Some(second), ..query(10) };
        let names: Vec<_> = store.security_events(&since).await.unwrap().events
            .into_iter().map(|e| e.event.event.as_str()).collect();
        assert_eq!(names, ["admin_refused", "rate_limited"]);

        let window = SecurityEventQuery { since: Some(second), until: Some(third), ..query(10) };
        let names: Vec<_> = store.security_events(&window).await.unwrap().events
            .into_iter().map(|e| e.event.event.as_str()).collect();
        assert_eq!(names, ["rate_limited"]);

        let before = SecurityEventQuery { until: Some(second), ..query(10) };
        let names: Vec<_> = store.security_events(&before).await.unwrap().events
            .into_iter().map(|e| e.event.event.as_str()).collect();
        assert_eq!(names, ["auth_failed"]);
    }
}

on_both_backends! {
    async fn keyset_pages_cover_every_event_once_even_while_events_arrive(store: Store) {
        for _ in 0..5 {
            store.record(&event("rate_limited", Some(ALICE))).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut q = SecurityEventQuery { user_id: Some(ALICE), ..query(2) };
        let mut pages = 0;
        loop {
            let page = store.security_events(&q).await.unwrap();
            pages += 1;
            assert!(page.events.len() <= 2);
            seen.extend(page.events.iter().map(|e| e.id));
            // A newer event does not shift the pages already being walked.
            store.record(&event("rate_limited", Some(ALICE))).await.unwrap();
            match page.next_before_id {
                Some(cursor) => q.before_id = Some(cursor),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 5);
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    }
}

on_both_backends! {
    async fn a_page_size_is_clamped(store: Store) {
        store.record(&event("auth_failed", None)).await.unwrap();
        store.record(&event("auth_failed", None)).await.unwrap();
        let page = store.security_events(&query(0)).await.unwrap();
        assert_eq!(page.events.len(), 1);
        assert!(page.next_before_id.is_some());
    }
}

on_both_backends! {
    async fn a_bound_on_a_whole_second_compares_as_time_not_as_text(store: Store) {
        store.record(&event("auth_failed", None)).await.unwrap();
        let at = store.security_events(&query(1)).await.unwrap().events[0].created_at;
        let second = at.replace_nanosecond(0).unwrap();
        let next = second + Duration::from_secs(1);
        let since = SecurityEventQuery { since: Some(second), until: Some(next), ..query(10) };
        assert_eq!(store.security_events(&since).await.unwrap().events.len(), 1, "{at}");
        let after = SecurityEventQuery { since: Some(next), ..query(10) };
        assert!(store.security_events(&after).await.unwrap().events.is_empty());
    }
}

on_both_backends! {
    async fn pruning_deletes_only_events_before_the_cutoff_oldest_first_in_bounded_batches(store: Store) {
        for name in ["auth_failed", "rate_limited", "admin_refused", "cancel_refused"] {
            store.record(&event(name, Some(ALICE))).await.unwrap();
        }
        // Three of them happened long ago (the same literal works on both backends).
        for (id_rank, day) in [(1, "01"), (2, "02"), (3, "03")] {
            testing::execute(
                &store,
                &format!(
                    "UPDATE security_events SET created_at = '2026-01-{day}T12:00:00Z' \
                     WHERE id = (SELECT id FROM security_events ORDER BY id LIMIT 1 OFFSET {})",
                    id_rank - 1
                ),
            )
            .await
            .unwrap();
        }
        let cutoff = time::OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap(); // 2026-05-28
        assert_eq!(store.prune_security_events(cutoff, 2).await.unwrap(), 2);
        let left: Vec<String> = testing::security_events(&store)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event.as_str().to_owned())
            .collect();
        assert_eq!(left, ["admin_refused", "cancel_refused"], "the two oldest went first");
        assert_eq!(store.prune_security_events(cutoff, 2).await.unwrap(), 1);
        assert_eq!(store.prune_security_events(cutoff, 2).await.unwrap(), 0);
        assert_eq!(testing::security_events(&store).await.unwrap().len(), 1);
    }
}
