//! The per-user hub: every event of a user goes to each of that user's open streams, and to a
//! short log kept for reconnecting clients.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ensinalab_domain::UserId;
use tokio::sync::mpsc;

/// The hub's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubSettings {
    /// Open streams a user may hold on this server; one more is refused.
    pub max_streams_per_user: usize,
    /// Open streams of all users together on this server; one more is refused.
    pub max_streams: usize,
    /// Events a stream may have waiting for its client; past it the stream is ended.
    pub buffer: usize,
    /// Events of a user kept for a reconnecting client, at most.
    pub replay_events: usize,
    /// How long an event is kept for a reconnecting client, at most.
    pub replay_for: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            max_streams_per_user: 5,
            max_streams: 10_000,
            buffer: 256,
            replay_events: 256,
            replay_for: Duration::from_secs(300),
        }
    }
}

/// The id of an event in a user's log: the log's generation and the event's place in it.
///
/// A generation is random and new whenever a user's log starts (a server start, a log dropped
/// after being idle, a resync), so an id from another log, another server or an earlier
/// process never matches and its client gets a snapshot instead of a wrong replay. Places are
/// counted per user, so an id tells nothing of other users' activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId {
    generation: u64,
    seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.generation, self.seq)
    }
}

/// An id that is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an event id")]
pub struct BadEventId;

impl FromStr for EventId {
    type Err = BadEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (generation, seq) = s.split_once('-').ok_or(BadEventId)?;
        Ok(Self {
            generation: u64::from_str_radix(generation, 16).map_err(|_| BadEventId)?,
            seq: seq.parse().map_err(|_| BadEventId)?,
        })
    }
}

/// One event of a user's stream: its id and its rendered data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub data: Arc<str>,
}

/// What a stream receives after its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The next event of the user's log.
    Event(Event),
    /// Events may have been missed (the relay lost its subscription): the stream must send a
    /// fresh snapshot, which carries this id, and go on from there.
    Resync(EventId),
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the user already holds {max} streams")]
    TooMany { max: usize },
    /// The server holds `max` streams of all users already.
    #[error("the server holds {max} streams")]
    Full { max: usize },
    /// The server is shutting down.
    #[error("the live stream is closed")]
    Closed,
}

/// How an opened stream begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The client's last event is still in the log: these events follow it, then the stream.
    Resume(Vec<Event>),
    /// The client must start again from a snapshot, which carries this id (the log's position
    /// when the stream subscribed: a client resuming from it misses nothing).
    Snapshot(EventId),
}

/// One open stream: how it starts, the events after that, and its place among the user's
/// streams (given back when dropped).
pub struct Subscription {
    pub start: Start,
    /// Ends when the hub drops the stream (a client too slow, the shutdown).
    pub events: mpsc::Receiver<Item>,
    _slot: Slot,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

/// Told the number of open streams whenever it changes (the open-stream gauge).
type Observer = Box<dyn Fn(usize) + Send + Sync>;

/// The hub. Every method takes one short lock and never waits on a client: a stream whose
/// buffer is full is dropped and its slot given back at once, so a publish costs the same
/// whether clients read or not.
pub struct Hub {
    settings: HubSettings,
    state: Mutex<State>,
    next_stream: AtomicU64,
    generations: RandomState,
    observer: Option<Observer>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, UserLog>,
    closed: bool,
    publishes: u64,
    /// Every user's `streams`, together.
    open: usize,
}

struct UserLog {
    generation: u64,
    seq: u64,
    recent: VecDeque<(Event, Instant)>,
    /// The open streams: a stream is open exactly while it is here.
    streams: Vec<(u64, mpsc::Sender<Item>)>,
}

/// How many publishes between two prunings of idle users' logs.
const PRUNE_EVERY: u64 = 1024;

impl Hub {
    pub fn new(settings: HubSettings) -> Arc<Self> {
        Self::observed(settings, None)
    }

    /// A hub that tells `observer` the number of open streams (under its lock, so in order)
    /// whenever it changes.
    pub fn observed(settings: HubSettings, observer: Option<Observer>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            state: Mutex::new(State::default()),
            next_stream: AtomicU64::new(0),
            generations: RandomState::new(),
            observer,
        })
    }

    pub fn settings(&self) -> HubSettings {
        self.settings
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock leaves consistent data (each step is a push or a retain).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn new_log(&self, user: UserId) -> UserLog {
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        UserLog {
            generation: self
                .generations
                .hash_one((user.get(), stream, Instant::now())),
            seq: 0,
            recent: VecDeque::new(),
            streams: Vec::new(),
        }
    }

    /// `state.open` after `removed` streams left and `added` opened; the observer is told
    /// when it changed.
    fn counted(&self, state: &mut State, removed: usize, added: usize) {
        state.open = state.open + added - removed;
        if removed != added
            && let Some(observer) = &self.observer
        {
            observer(state.open);
        }
    }

    /// Opens a stream of `user`'s events. `last` is the id of the last event the client saw
    /// (`Last-Event-ID`): when the log still holds every event after it, the stream resumes
    /// there; otherwise it starts with a snapshot. Subscribed before returning, so no event
    /// published after this call is missed.
    ///
    /// # Errors
    /// [`OpenError::TooMany`] past `max_streams_per_user`, [`OpenError::Full`] past
    /// `max_streams`; [`OpenError::Closed`] once [`Hub::close`] was called.
    pub fn open(
        self: &Arc<Self>,
        user: UserId,
        last: Option<EventId>,
    ) -> Result<Subscription, OpenError> {
        let mut state = self.lock();
        if state.closed {
            return Err(OpenError::Closed);
        }
        if state.open >= self.settings.max_streams {
            return Err(OpenError::Full {
                max: self.settings.max_streams,
            });
        }
        let log = state
            .users
            .entry(user)
            .or_insert_with(|| self.new_log(user));
        let max = self.settings.max_streams_per_user;
        if log.streams.len() >= max {
            return Err(OpenError::TooMany { max });
        }
        let now = Instant::now();
        let replay_for = self.settings.replay_for;
        log.recent
            .retain(|(_, at)| now.saturating_duration_since(*at) <= replay_for);
        let start = match last {
            Some(last) if log.can_resume_after(last) => Start::Resume(
                log.recent
                    .iter()
                    .filter(|(e, _)| e.id.seq > last.seq)
                    .map(|(e, _)| e.clone())
                    .collect(),
            ),
            _ => Start::Snapshot(EventId {
                generation: log.generation,
                seq: log.seq,
            }),
        };
        let (tx, rx) = mpsc::channel(self.settings.buffer.max(1));
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        log.streams.push((stream, tx));
        self.counted(&mut state, 0, 1);
        Ok(Subscription {
            start,
            events: rx,
            _slot: Slot {
                hub: Arc::clone(self),
                user,
                stream,
            },
        })
    }

    /// Hands `data` to every open stream of `user` and keeps it for reconnecting clients.
    /// Never waits: a stream whose buffer is full is dropped (its client reconnects).
    pub fn publish(&self, user: UserId, data: Arc<str>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.publishes += 1;
        if state.publishes.is_multiple_of(PRUNE_EVERY) {
            self.prune(&mut state);
        }
        let log = state
            .users
            .entry(user)
            .or_insert_with(|| self.new_log(user));
        log.seq += 1;
        let event = Event {
            id: EventId {
                generation: log.generation,
                seq: log.seq,
            },
            data,
        };
        let dropped = log.offer(user, &Item::Event(event.clone()));
        // Bounded in count and in age: a busy user's log holds the window's events, not the
        // count's worth of the last hours.
        let now = Instant::now();
        while log.recent.len() >= self.settings.replay_events.max(1)
            || log.recent.front().is_some_and(|(_, at)| {
                now.saturating_duration_since(*at) > self.settings.replay_for
            })
        {
            log.recent.pop_front();
        }
        if self.settings.replay_events > 0 {
            log.recent.push_back((event, now));
        }
        self.counted(&mut state, dropped, 0);
    }

    /// Drops the logs of users with no open stream and nothing recent to replay.
    fn prune(&self, state: &mut State) {
        let now = Instant::now();
        let replay_for = self.settings.replay_for;
        state.users.retain(|_, log| {
            !log.streams.is_empty()
                || log
                    .recent
                    .back()
                    .is_some_and(|(_, at)| now.saturating_duration_since(*at) <= replay_for)
        });
    }

    /// Starts every log anew and tells each open stream to send a fresh snapshot, which carries
    /// the new log's first id: for when events may have been missed (a relay that lost its
    /// subscription). Streams stay open; ids from before no longer resume.
    pub fn resync(&self) {
        let mut state = self.lock();
        let mut dropped = 0;
        for (user, log) in &mut state.users {
            log.generation = self.new_log(*user).generation;
            log.seq = 0;
            log.recent.clear();
            let at = EventId {
                generation: log.generation,
                seq: 0,
            };
            dropped += log.offer(*user, &Item::Resync(at));
        }
        self.counted(&mut state, dropped, 0);
    }

    /// Ends every open stream and refuses new ones (graceful shutdown).
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let mut dropped = 0;
        for log in state.users.values_mut() {
            dropped += log.streams.len();
            log.streams.clear();
        }
        self.counted(&mut state, dropped, 0);
    }

    /// Whether [`Hub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Open streams, for all users together.
    pub fn open_streams(&self) -> usize {
        self.lock().open
    }
}

impl UserLog {
    /// Hands `item` to every stream; drops the streams whose buffer is full and returns how
    /// many it dropped.
    fn offer(&mut self, user: UserId, item: &Item) -> usize {
        let before = self.streams.len();
        self.streams
            .retain(|(_, tx)| match tx.try_send(item.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(
                        user_id = user.get(),
                        "live stream dropped: its client is not reading"
                    );
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        before - self.streams.len()
    }

    /// Whether every event after `last` is still in the log.
    fn can_resume_after(&self, last: EventId) -> bool {
        if last.generation != self.generation || last.seq > self.seq {
            return false;
        }
        if last.seq == self.seq {
            return true;
        }
        self.recent
            .front()
            .is_some_and(|(first, _)| first.id.seq <= last.seq + 1)
    }
}

/// A stream's place among its user's streams.
struct Slot {
    hub: Arc<Hub>,
    user: UserId,
    stream: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        // The log stays (the client may come back with its last id); `prune` drops it once
        // idle. A stream the hub dropped already gave its slot back then.
        let removed = state.users.get_mut(&self.user).map_or(0, |log| {
            let before = log.streams.len();
            log.streams.retain(|(id, _)| *id != self.stream);
            before - log.streams.len()
        });
        self.hub.counted(&mut state, removed, 0);
    }
}

#[cfg(test)]
mod tests {
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
}
