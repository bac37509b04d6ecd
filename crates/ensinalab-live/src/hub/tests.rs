use super::*;

fn hub(max: usize, buffer: usize, replay: usize) -> Arc<Hub> {
    Hub::new(HubSettings {
        max_streams_per_user: max,
        max_streams: 100,
        buffer,
        replay_events: replay,
        replay_for: Duration::from_secs(300),
    })
}

fn data(s: &str) -> Arc<str> {
    Arc::from(s)
}

fn drain(sub: &mut Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(item) = sub.events.try_recv() {
        out.push(match item {
            Item::Event(e) => e.data.to_string(),
            Item::Resync(at) => format!("resync {at}"),
        });
    }
    out
}

fn event(sub: &mut Subscription) -> Event {
    match sub.events.try_recv() {
        Ok(Item::Event(e)) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stream_gets_its_users_events_only() {
    let hub = hub(5, 16, 16);
    let mut mine = hub.open(UserId(1), None).unwrap();
    let mut theirs = hub.open(UserId(2), None).unwrap();
    hub.publish(UserId(1), data("a"));
    hub.publish(UserId(2), data("b"));
    hub.publish(UserId(1), data("c"));
    assert_eq!(drain(&mut mine), ["a", "c"]);
    assert_eq!(drain(&mut theirs), ["b"]);
}

#[test]
fn every_stream_of_a_user_gets_every_event() {
    let hub = hub(5, 16, 16);
    let mut one = hub.open(UserId(1), None).unwrap();
    let mut two = hub.open(UserId(1), None).unwrap();
    hub.publish(UserId(1), data("a"));
    assert_eq!(drain(&mut one), ["a"]);
    assert_eq!(drain(&mut two), ["a"]);
}

#[test]
fn a_user_past_the_stream_limit_is_refused_until_one_closes() {
    let hub = hub(2, 16, 16);
    let first = hub.open(UserId(1), None).unwrap();
    let _second = hub.open(UserId(1), None).unwrap();
    assert_eq!(
        hub.open(UserId(1), None).unwrap_err(),
        OpenError::TooMany { max: 2 }
    );
    assert!(
        hub.open(UserId(2), None).is_ok(),
        "another user has their own limit"
    );
    drop(first);
    assert!(hub.open(UserId(1), None).is_ok());
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_others_go_on() {
    let hub = hub(5, 2, 16);
    let mut slow = hub.open(UserId(1), None).unwrap();
    let mut fast = hub.open(UserId(1), None).unwrap();
    for i in 0..5 {
        hub.publish(UserId(1), data(&i.to_string()));
        drain(&mut fast);
    }
    assert_eq!(
        drain(&mut slow),
        ["0", "1"],
        "what was buffered is delivered"
    );
    assert!(slow.events.is_closed(), "then the stream ends");
    assert!(!fast.events.is_closed());
}

#[test]
fn the_replay_log_keeps_no_event_older_than_its_window() {
    let hub = Hub::new(HubSettings {
        replay_for: Duration::from_millis(50),
        ..HubSettings::default()
    });
    for s in ["a", "b", "c"] {
        hub.publish(UserId(1), data(s));
    }
    std::thread::sleep(Duration::from_millis(60));
    hub.publish(UserId(1), data("d"));
    let state = hub.lock();
    let kept: Vec<_> = state.users[&UserId(1)]
        .recent
        .iter()
        .map(|(e, _)| e.data.to_string())
        .collect();
    assert_eq!(kept, ["d"]);
}

#[test]
fn a_new_stream_starts_with_a_snapshot_at_the_logs_position() {
    let hub = hub(5, 16, 16);
    hub.publish(UserId(1), data("a"));
    let sub = hub.open(UserId(1), None).unwrap();
    let Start::Snapshot(id) = sub.start else {
        panic!("{:?}", sub.start)
    };
    assert_eq!(id.seq, 1);
}

#[test]
fn a_reconnect_resumes_after_its_last_event() {
    let hub = hub(5, 16, 16);
    let mut sub = hub.open(UserId(1), None).unwrap();
    hub.publish(UserId(1), data("a"));
    let seen = event(&mut sub);
    drop(sub);
    hub.publish(UserId(1), data("b"));
    hub.publish(UserId(1), data("c"));
    let again = hub.open(UserId(1), Some(seen.id)).unwrap();
    let Start::Resume(events) = again.start else {
        panic!("{:?}", again.start)
    };
    let replayed: Vec<_> = events.iter().map(|e| e.data.to_string()).collect();
    assert_eq!(replayed, ["b", "c"]);
}

#[test]
fn a_reconnect_from_the_snapshot_id_gets_what_followed_it() {
    let hub = hub(5, 16, 16);
    let sub = hub.open(UserId(1), None).unwrap();
    let Start::Snapshot(at) = sub.start else {
        panic!()
    };
    drop(sub);
    hub.publish(UserId(1), data("a"));
    let again = hub.open(UserId(1), Some(at)).unwrap();
    assert!(matches!(&again.start, Start::Resume(e) if e.len() == 1));
}

#[test]
fn a_reconnect_past_the_replay_window_gets_a_snapshot() {
    let hub = hub(5, 16, 2);
    let mut sub = hub.open(UserId(1), None).unwrap();
    hub.publish(UserId(1), data("a"));
    let seen = event(&mut sub);
    drop(sub);
    for s in ["b", "c", "d"] {
        hub.publish(UserId(1), data(s));
    }
    let again = hub.open(UserId(1), Some(seen.id)).unwrap();
    assert!(
        matches!(again.start, Start::Snapshot(_)),
        "{:?}",
        again.start
    );
}

#[test]
fn an_id_of_another_log_gets_a_snapshot() {
    let hub = hub(5, 16, 16);
    hub.publish(UserId(1), data("a"));
    let foreign = EventId {
        generation: 7,
        seq: 1,
    };
    let sub = hub.open(UserId(1), Some(foreign)).unwrap();
    assert!(matches!(sub.start, Start::Snapshot(_)));
    let mine = hub.open(UserId(2), None).unwrap();
    let Start::Snapshot(other_user) = mine.start else {
        panic!()
    };
    let sub = hub.open(UserId(1), Some(other_user)).unwrap();
    assert!(
        matches!(sub.start, Start::Snapshot(_)),
        "another user's id never resumes"
    );
}

#[test]
fn close_ends_every_stream_and_refuses_new_ones() {
    let hub = hub(5, 16, 16);
    let mut sub = hub.open(UserId(1), None).unwrap();
    hub.close();
    assert!(sub.events.try_recv().is_err());
    assert!(sub.events.is_closed());
    assert_eq!(hub.open(UserId(1), None).unwrap_err(), OpenError::Closed);
}

#[test]
fn resync_keeps_streams_open_asks_each_for_a_snapshot_and_old_ids_no_longer_resume() {
    let hub = hub(5, 16, 16);
    let mut sub = hub.open(UserId(1), None).unwrap();
    hub.publish(UserId(1), data("a"));
    let seen = event(&mut sub);
    hub.resync();
    let Ok(Item::Resync(at)) = sub.events.try_recv() else {
        panic!("a resync is asked for")
    };
    assert!(!sub.events.is_closed());
    hub.publish(UserId(1), data("b"));
    let after = event(&mut sub);
    assert_eq!((after.id.generation, after.id.seq), (at.generation, 1));
    let again = hub.open(UserId(1), Some(seen.id)).unwrap();
    assert!(matches!(again.start, Start::Snapshot(_)));
    let from_snapshot = hub.open(UserId(1), Some(at)).unwrap();
    assert!(
        matches!(&from_snapshot.start, Start::Resume(e) if e.len() == 1),
        "the resync snapshot's id resumes"
    );
}

#[test]
fn a_stream_dropped_for_not_reading_gives_its_slot_back_at_once() {
    let hub = hub(1, 1, 16);
    let slow = hub.open(UserId(1), None).unwrap();
    hub.publish(UserId(1), data("a"));
    hub.publish(UserId(1), data("b"));
    assert_eq!(
        hub.open_streams(),
        0,
        "dropped while its client still holds it"
    );
    let again = hub.open(UserId(1), None).unwrap();
    drop(slow);
    assert_eq!(
        hub.open_streams(),
        1,
        "the old slot is not given back twice"
    );
    drop(again);
    assert_eq!(hub.open_streams(), 0);
}

#[test]
fn the_server_wide_cap_refuses_any_user_until_a_stream_closes() {
    let hub = Hub::new(HubSettings {
        max_streams: 2,
        ..HubSettings::default()
    });
    let a = hub.open(UserId(1), None).unwrap();
    let _b = hub.open(UserId(2), None).unwrap();
    assert_eq!(
        hub.open(UserId(3), None).unwrap_err(),
        OpenError::Full { max: 2 }
    );
    drop(a);
    assert!(hub.open(UserId(3), None).is_ok());
}

#[test]
fn the_observer_is_told_every_count_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let hub = Hub::observed(
        HubSettings {
            buffer: 1,
            ..HubSettings::default()
        },
        Some(Box::new(move |n| record.lock().unwrap().push(n))),
    );
    let a = hub.open(UserId(1), None).unwrap();
    let b = hub.open(UserId(1), None).unwrap();
    let c = hub.open(UserId(2), None).unwrap();
    hub.publish(UserId(1), data("x"));
    hub.publish(UserId(1), data("y"));
    drop((a, b));
    hub.close();
    drop(c);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 1, 0]);
}

#[test]
fn event_ids_round_trip_and_garbage_is_refused() {
    let id = EventId {
        generation: 0xdead_beef,
        seq: 42,
    };
    assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
    for bad in ["", "42", "x-1", "1-x", "1-"] {
        assert_eq!(bad.parse::<EventId>(), Err(BadEventId), "{bad}");
    }
}

#[test]
fn streams_are_counted_and_given_back() {
    let hub = hub(5, 16, 16);
    let a = hub.open(UserId(1), None).unwrap();
    let b = hub.open(UserId(2), None).unwrap();
    assert_eq!(hub.open_streams(), 2);
    drop((a, b));
    assert_eq!(hub.open_streams(), 0);
}
