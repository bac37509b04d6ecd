//! The live stream of task changes: what `GET /tasks/events` serves.
//!
//! This crate owns the fan-out, not the wire: a [`LiveSink`] is one more
//! [`ChangeSink`] of the service, which renders each change with a function the HTTP layer
//! gives it (the JSON of an event, hashids included) and hands the text to the [`Hub`] and,
//! when several servers share a Redis, to the [`Relay`]. The hub keeps, per user, the open
//! streams (at most `max_streams_per_user`, and `max_streams` for all users together, each with
//! a bounded buffer: a client that does not read is dropped and its slot given back, never
//! buffered without end), event ids and a short replay log for clients that reconnect. A change reaches only its owner's streams: the hub is keyed by
//! [`TaskChange::user_id`](ensinalab_ports::TaskChange) and nothing else.

mod hub;
mod relay;

use std::fmt;
use std::sync::Arc;

use ensinalab_ports::{ChangeSink, TaskChange};

pub use hub::{BadEventId, Event, EventId, Hub, HubSettings, Item, OpenError, Start, Subscription};
pub use relay::{Relay, RelayError, RelayPublisher};

/// The change stream's consumer that feeds the live streams.
pub struct LiveSink<R> {
    hub: Arc<Hub>,
    relay: Option<RelayPublisher>,
    render: R,
}

impl<R> fmt::Debug for LiveSink<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSink")
            .field("hub", &self.hub)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl<R> LiveSink<R>
where
    R: Fn(&TaskChange) -> Option<String> + Send + Sync,
{
    /// `render` turns a change into an event's data, or `None` for a change the stream does
    /// not carry.
    pub fn new(hub: Arc<Hub>, relay: Option<RelayPublisher>, render: R) -> Self {
        Self { hub, relay, render }
    }
}

impl<R> ChangeSink for LiveSink<R>
where
    R: Fn(&TaskChange) -> Option<String> + Send + Sync,
{
    fn publish(&self, change: &TaskChange) {
        let Some(data) = (self.render)(change) else {
            return;
        };
        let data: Arc<str> = Arc::from(data);
        if let Some(relay) = &self.relay {
            relay.send(change.user_id, Arc::clone(&data));
        }
        self.hub.publish(change.user_id, data);
    }
}
