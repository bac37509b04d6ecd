//! A user's log: the ids of its events, the events kept for a reconnecting client, and the
//! open streams each event is handed to.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use ensinalab_domain::UserId;
use tokio::sync::mpsc;

/// The id of an event in a user's log: the log's generation and the event's place in it.
///
/// A generation is random and new whenever a user's log starts (a server start, a log dropped
/// after being idle, a resync), so an id from another log, another server or an earlier
/// process never matches and its client gets a snapshot instead of a wrong replay. Places are
/// counted per user, so an id tells nothing of other users' activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId {
    pub(super) generation: u64,
    pub(super) seq: u64,
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

/// A user's log: its generation, its last place, the events kept for reconnecting clients.
pub(super) struct UserLog {
    pub(super) generation: u64,
    pub(super) seq: u64,
    pub(super) recent: VecDeque<(Event, Instant)>,
    /// The open streams: a stream is open exactly while it is here.
    pub(super) streams: Vec<(u64, mpsc::Sender<Item>)>,
}

impl UserLog {
    /// Hands `item` to every stream; drops the streams whose buffer is full and returns how
    /// many it dropped.
    pub(super) fn offer(&mut self, user: UserId, item: &Item) -> usize {
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
    pub(super) fn can_resume_after(&self, last: EventId) -> bool {
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
