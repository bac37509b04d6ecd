//! The live stream's HTTP side: how a change is written for the wire (`dto::LiveChange`, with
//! hashids) and how a user's [`Subscription`] becomes a `text/event-stream` body. The fan-out,
//! the ids, the replay window and the limits are `ensinalab-live`'s.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use ensinalab_live::{EventId, Hub, LiveSink, OpenError, RelayPublisher, Start, Subscription};
use ensinalab_metrics::{StreamGauge, StreamOpen};
use ensinalab_ports::{
    ActivePage, Caller, DEFAULT_ACTIVE_PAGE, Service, Store, TaskBroker, TaskChange,
};
use futures_util::stream::{self, Stream};
use tokio::time::{Instant, Interval};

use crate::dto::{ActiveTasksResponse, LiveChange};
use crate::error::ApiError;
use crate::ids::Hashids;

/// How long a browser's `EventSource` waits before reconnecting (the `retry:` field).
const RETRY_MS: u32 = 2000;

/// The live streams of this server, as handlers receive them.
#[derive(Debug, Clone)]
pub struct LiveStreams {
    pub hub: Arc<Hub>,
    /// `LIVE_HEARTBEAT_SECS`.
    pub heartbeat: Duration,
    /// `ensinalab_event_streams`: each open stream holds one count of it.
    pub open: StreamGauge,
}

/// The service's consumer that feeds the streams: each change rendered once, as its wire
/// JSON, for the hub of this server and (through `relay`) the other servers'.
pub fn sink(
    hub: Arc<Hub>,
    relay: Option<RelayPublisher>,
    ids: Hashids,
) -> LiveSink<impl Fn(&TaskChange) -> Option<String> + Send + Sync> {
    LiveSink::new(hub, relay, move |change| {
        serde_json::to_string(&LiveChange::new(change, &ids)).ok()
    })
}

/// The `Last-Event-ID` header: the last event a reconnecting client saw. One that is not ours
/// is no id at all (the client gets a snapshot).
#[derive(Debug, Clone, Copy)]
pub struct LastEventId(pub Option<EventId>);

impl FromRequest for LastEventId {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(
            req.headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        )))
    }
}

impl From<OpenError> for ApiError {
    fn from(err: OpenError) -> Self {
        match err {
            OpenError::TooMany { max } => Self::TooManyStreams { max },
            OpenError::Closed => Self::ShuttingDown,
        }
    }
}

impl LiveStreams {
    /// Opens `caller`'s stream: subscribed first, then the snapshot (the body of
    /// `GET /tasks/active`) taken, so no change falls between them; or, when `last` is still in
    /// the replay window, the events after it.
    ///
    /// # Errors
    /// 429 past `MAX_STREAMS_PER_USER`, 503 while shutting down or when the snapshot cannot be
    /// read.
    pub async fn open<S: Store, B: TaskBroker>(
        &self,
        caller: &Caller,
        last: LastEventId,
        svc: &Service<S, B>,
        ids: &Hashids,
    ) -> Result<HttpResponse, ApiError> {
        let sub = self.hub.open(caller.user_id, last.0)?;
        let mut first = VecDeque::new();
        first.push_back(Bytes::from(format!("retry: {RETRY_MS}\n\n")));
        match &sub.start {
            Start::Snapshot(id) => {
                let page = ActivePage {
                    limit: DEFAULT_ACTIVE_PAGE,
                    after: None,
                };
                let list = svc
                    .list_active(caller, &page, time::OffsetDateTime::now_utc())
                    .await?;
                let body =
                    serde_json::to_string(&ActiveTasksResponse::new(list, caller.user_id, ids))
                        .map_err(|e| ApiError::Internal(e.into()))?;
                first.push_back(frame("snapshot", *id, &body));
            }
            Start::Resume(events) => {
                first.extend(events.iter().map(|e| frame("change", e.id, &e.data)));
            }
        }
        Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            // nginx and the like: pass each event on at once.
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(body(first, sub, self.heartbeat, self.open.opened())))
    }
}

/// One event as the wire has it. The data is one line: compact JSON has no newline.
fn frame(event: &str, id: EventId, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\nid: {id}\ndata: {data}\n\n"))
}

struct Body {
    first: VecDeque<Bytes>,
    sub: Subscription,
    heartbeat: Interval,
    /// Counted open as long as the body lives.
    _open: StreamOpen,
}

/// The stream's body: what it starts with, then each event, with a comment line every
/// `heartbeat`; it ends when the hub drops the stream (a client too slow, a resync, the
/// shutdown), and the subscription ends with it when the client goes.
fn body(
    first: VecDeque<Bytes>,
    sub: Subscription,
    heartbeat: Duration,
    open: StreamOpen,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let state = Body {
        first,
        sub,
        heartbeat: tokio::time::interval_at(Instant::now() + heartbeat, heartbeat),
        _open: open,
    };
    stream::unfold(state, |mut st| async move {
        if let Some(bytes) = st.first.pop_front() {
            return Some((Ok(bytes), st));
        }
        tokio::select! {
            event = st.sub.events.recv() => {
                let event = event?;
                Some((Ok(frame("change", event.id, &event.data)), st))
            }
            _ = st.heartbeat.tick() => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), st)),
        }
    })
}
