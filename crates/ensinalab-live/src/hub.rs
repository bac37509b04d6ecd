//! The per-user hub: every event of a user goes to each of that user's open streams, and to a
//! short log kept for reconnecting clients.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ensinalab_domain::UserId;
use tokio::sync::mpsc;

mod log;
#[cfg(test)]
mod tests;

use log::UserLog;
pub use log::{BadEventId, Event, EventId, Item};

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
