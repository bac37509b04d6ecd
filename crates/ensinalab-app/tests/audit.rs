//! The in-memory security trail answers queries like the store does (the store's own tests
//! run the same shapes on PostgreSQL and SQLite).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use ensinalab_app::testing::InMemoryStore;
use ensinalab_domain::UserId;
use ensinalab_ports::{
    EventOutcome, SecurityEvent, SecurityEventKind, SecurityEventQuery, SecurityLog,
};

const A: SecurityEventKind = SecurityEventKind::CancelRefused;
const B: SecurityEventKind = SecurityEventKind::AuthFailed;

fn event(kind: SecurityEventKind, user: i64) -> SecurityEvent {
    SecurityEvent {
        event: kind,
        user_id: Some(UserId(user)),
        resource: None,
        task_id: None,
        outcome: EventOutcome::Refused,
        client_ip: None,
        details: serde_json::Value::Null,
    }
}

#[tokio::test]
async fn the_fake_filters_and_pages_newest_first() {
    let store = InMemoryStore::default();
    for (name, user) in [(A, 1), (B, 1), (A, 2), (A, 1), (A, 1)] {
        store.record(&event(name, user)).await.unwrap();
    }
    let mut q = SecurityEventQuery {
        user_id: Some(UserId(1)),
        event: Some(A),
        limit: 2,
        ..SecurityEventQuery::default()
    };
    let first = store.security_events(&q).await.unwrap();
    assert_eq!(first.events.len(), 2);
    assert!(first.events[0].id > first.events[1].id);
    q.before_id = first.next_before_id;
    let second = store.security_events(&q).await.unwrap();
    assert_eq!(second.events.len(), 1);
    assert_eq!(second.next_before_id, None);
    assert!(second.events[0].id < first.events[1].id);
}
