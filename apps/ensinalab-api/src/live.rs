//! The live stream's HTTP side: how a change is written for the wire (`dto::LiveChange`, with
//! hashids), and how a user's [`Subscription`] becomes a `text/event-stream` body
//! (`GET /tasks/events`) or WebSocket messages (`GET /tasks/ws`). Both carry one [`Feed`]: the
//! same snapshot, changes, heartbeat and end. The fan-out, the ids, the replay window and the
//! limits are `ensinalab-live`'s.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream};
use ensinalab_app::Service;
use ensinalab_live::{
    Event, EventId, Hub, Item, LiveSink, OpenError, RelayPublisher, Start, Subscription,
};
use ensinalab_ports::{ActivePage, Caller, DEFAULT_ACTIVE_PAGE, Store, TaskBroker, TaskChange};
use futures_util::stream::{self, Stream, StreamExt as _};
use serde::Deserialize;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use crate::auth::{Authenticator, Session};
use crate::dto::{ActiveTasksResponse, LiveChange};
use crate::error::ApiError;
use crate::ids::Hashids;

/// How long a browser's `EventSource` waits before reconnecting (the `retry:` field).
const RETRY_MS: u32 = 2000;
/// What a client refused by a full server is told to wait (`Retry-After`).
const FULL_RETRY_SECS: u64 = 5;
/// How long a WebSocket client has to send its token.
pub const WS_TOKEN_WITHIN: Duration = Duration::from_secs(10);

/// The WebSocket close codes of `GET /tasks/ws` (docs/api.md).
pub mod close {
    /// A missing, bad or expired token.
    pub const UNAUTHORIZED: u16 = 4401;
    /// No token within [`super::WS_TOKEN_WITHIN`].
    pub const NO_TOKEN: u16 = 4408;
    /// `MAX_STREAMS_PER_USER` streams open already.
    pub const TOO_MANY: u16 = 4429;
}

/// The live streams of this server, as handlers receive them.
#[derive(Debug, Clone)]
pub struct LiveStreams {
    pub hub: Arc<Hub>,
    /// `LIVE_HEARTBEAT_SECS`.
    pub heartbeat: Duration,
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
            OpenError::Full { .. } => Self::StreamsFull {
                retry_after_secs: FULL_RETRY_SECS,
            },
            OpenError::Closed => Self::ShuttingDown,
        }
    }
}

/// What a stream sends, whatever carries it.
enum Out {
    /// The body of `GET /tasks/active`, at this id.
    Snapshot(EventId, String),
    Change(Event),
    Heartbeat,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The token is no longer accepted.
    Expired,
    /// The hub dropped it: its client did not read, or the server is shutting down.
    Dropped,
    /// A fresh snapshot could not be read.
    Unavailable,
}

/// One user's open stream: where it starts, then its changes, a heartbeat, and its end when
/// the token expires.
struct Feed<S: Store, B: TaskBroker> {
    first: VecDeque<Out>,
    sub: Subscription,
    heartbeat: Interval,
    expires: Pin<Box<Sleep>>,
    svc: web::Data<Service<S, B>>,
    caller: Caller,
    ids: web::Data<Hashids>,
}

impl LiveStreams {
    /// Opens `session`'s feed: subscribed first, then the snapshot (the body of
    /// `GET /tasks/active`) taken, so no change falls between them; or, when `last` is still in
    /// the replay window, the events after it.
    async fn feed<S: Store, B: TaskBroker>(
        &self,
        session: Session,
        last: Option<EventId>,
        svc: web::Data<Service<S, B>>,
        ids: web::Data<Hashids>,
    ) -> Result<Feed<S, B>, ApiError> {
        let sub = self.hub.open(session.caller.user_id, last)?;
        let mut first = VecDeque::new();
        match &sub.start {
            Start::Snapshot(id) => {
                first.push_back(Out::Snapshot(
                    *id,
                    snapshot(&svc, &session.caller, &ids).await?,
                ));
            }
            Start::Resume(events) => first.extend(events.iter().cloned().map(Out::Change)),
        }
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + self.heartbeat, self.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Feed {
            first,
            sub,
            heartbeat,
            expires: Box::pin(tokio::time::sleep(session.remaining())),
            svc,
            caller: session.caller,
            ids,
        })
    }

    /// `GET /tasks/events`: the feed as Server-Sent Events.
    ///
    /// # Errors
    /// 429 past `MAX_STREAMS_PER_USER`, 503 past `MAX_STREAMS` (with `Retry-After`), while
    /// shutting down, or when the snapshot cannot be read.
    pub async fn sse<S: Store + 'static, B: TaskBroker + 'static>(
        &self,
        session: Session,
        last: LastEventId,
        svc: web::Data<Service<S, B>>,
        ids: web::Data<Hashids>,
    ) -> Result<HttpResponse, ApiError> {
        let feed = self.feed(session, last.0, svc, ids).await?;
        Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            // nginx and the like: pass each event on at once.
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(sse_body(feed)))
    }

    /// `GET /tasks/ws`: upgrades, then serves the feed as WebSocket messages once the client's
    /// first message brought a valid token.
    ///
    /// # Errors
    /// 400 when the request is not a WebSocket handshake.
    pub fn ws<S: Store + 'static, B: TaskBroker + 'static>(
        &self,
        req: HttpRequest,
        body: web::Payload,
        svc: web::Data<Service<S, B>>,
        ids: web::Data<Hashids>,
        auth: web::Data<Authenticator>,
    ) -> Result<HttpResponse, ApiError> {
        let (response, session, messages) = actix_ws::handle(&req, body)
            .map_err(|e| ApiError::BadRequest(format!("Handshake WebSocket inválido: {e}")))?;
        let ws = WsStream {
            live: self.clone(),
            req,
            session,
            messages,
        };
        actix_web::rt::spawn(ws.run(svc, ids, auth));
        Ok(response)
    }
}

/// The body of `GET /tasks/active`, as the snapshot's data.
async fn snapshot<S: Store, B: TaskBroker>(
    svc: &Service<S, B>,
    caller: &Caller,
    ids: &Hashids,
) -> Result<String, ApiError> {
    let page = ActivePage {
        limit: DEFAULT_ACTIVE_PAGE,
        after: None,
    };
    let list = svc
        .list_active(caller, &page, time::OffsetDateTime::now_utc())
        .await?;
    serde_json::to_string(&ActiveTasksResponse::new(list, caller.user_id, ids))
        .map_err(|e| ApiError::Internal(e.into()))
}

impl<S: Store, B: TaskBroker> Feed<S, B> {
    /// What to send next; or why the stream ends.
    async fn next(&mut self) -> Result<Out, End> {
        if let Some(out) = self.first.pop_front() {
            return Ok(out);
        }
        tokio::select! {
            item = self.sub.events.recv() => match item {
                Some(Item::Event(event)) => Ok(Out::Change(event)),
                Some(Item::Resync(at)) => match snapshot(&self.svc, &self.caller, &self.ids).await {
                    Ok(body) => Ok(Out::Snapshot(at, body)),
                    Err(err) => {
                        tracing::warn!(error = %err, "live stream: no fresh snapshot, the stream ends");
                        Err(End::Unavailable)
                    }
                },
                None => Err(End::Dropped),
            },
            _ = self.heartbeat.tick() => Ok(Out::Heartbeat),
            () = &mut self.expires => Err(End::Expired),
        }
    }
}

/// The SSE body: the `retry:` field, then the feed, one event per item and a comment line per
/// heartbeat, until it ends (the client's stream then ends cleanly; with an expired token its
/// reconnect gets the 401 any request would).
fn sse_body<S: Store + 'static, B: TaskBroker + 'static>(
    feed: Feed<S, B>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let retry = Bytes::from(format!("retry: {RETRY_MS}\n\n"));
    stream::once(ready(Ok(retry))).chain(stream::unfold(feed, |mut feed| async move {
        let bytes = match feed.next().await.ok()? {
            Out::Snapshot(id, body) => sse_frame("snapshot", id, &body),
            Out::Change(event) => sse_frame("change", event.id, &event.data),
            Out::Heartbeat => Bytes::from_static(b": keep-alive\n\n"),
        };
        Some((Ok(bytes), feed))
    }))
}

/// One event as SSE has it. The data is one line: compact JSON has no newline.
fn sse_frame(event: &str, id: EventId, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\nid: {id}\ndata: {data}\n\n"))
}

/// One event as a WebSocket text message: `data` is JSON already, so it is written as it is.
fn ws_message(event: &str, id: EventId, data: &str) -> String {
    format!(r#"{{"event":"{event}","id":"{id}","data":{data}}}"#)
}

/// The client's first WebSocket message.
#[derive(Debug, Deserialize)]
struct Hello {
    token: String,
    #[serde(default)]
    last_event_id: Option<String>,
}

/// One upgraded connection of `GET /tasks/ws`.
struct WsStream {
    live: LiveStreams,
    /// The upgrade request: the client's address and the route, for the trail.
    req: HttpRequest,
    session: actix_ws::Session,
    messages: MessageStream,
}

impl WsStream {
    async fn run<S: Store, B: TaskBroker>(
        mut self,
        svc: web::Data<Service<S, B>>,
        ids: web::Data<Hashids>,
        auth: web::Data<Authenticator>,
    ) {
        let hello = match tokio::time::timeout(WS_TOKEN_WITHIN, self.first_text()).await {
            Err(_) => return self.close(close::NO_TOKEN, "token não recebido").await,
            Ok(None) => return,
            Ok(Some(text)) => text,
        };
        let Ok(hello) = serde_json::from_str::<Hello>(&hello) else {
            return self
                .refuse(crate::auth::AuthError::Missing, close::UNAUTHORIZED)
                .await;
        };
        let identity = match auth.verify(&hello.token) {
            Ok(identity) => identity,
            Err(err) => return self.refuse(err, close::UNAUTHORIZED).await,
        };
        let session = Session {
            caller: Caller {
                user_id: identity.user_id,
                is_admin: identity.is_admin,
                client_ip: crate::client::ip(&self.req).map(|ip| ip.to_string()),
            },
            until: identity.until,
        };
        let last = hello.last_event_id.and_then(|id| id.trim().parse().ok());
        let mut feed = match self.live.feed(session, last, svc, ids).await {
            Ok(feed) => feed,
            Err(err) => {
                let (code, reason) = match err {
                    ApiError::TooManyStreams { .. } => (close::TOO_MANY, "limite de conexões"),
                    ApiError::ShuttingDown => (u16::from(CloseCode::Away), "reiniciando"),
                    _ => (u16::from(CloseCode::Again), "tente novamente"),
                };
                return self.close(code, reason).await;
            }
        };
        loop {
            tokio::select! {
                out = feed.next() => {
                    let sent = match out {
                        Ok(Out::Snapshot(id, body)) => self.session.text(ws_message("snapshot", id, &body)).await,
                        Ok(Out::Change(e)) => self.session.text(ws_message("change", e.id, &e.data)).await,
                        Ok(Out::Heartbeat) => self.session.ping(b"").await,
                        Err(end) => return self.end(end).await,
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                msg = self.messages.recv() => match msg {
                    Some(Ok(Message::Ping(bytes))) => {
                        if self.session.pong(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        let _ = self.session.close(None).await;
                        return;
                    }
                    // After the token, what the client says is not read.
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// The first text message, answering pings meanwhile; `None` when the client left first.
    /// A binary message stands for text that cannot be a token.
    async fn first_text(&mut self) -> Option<String> {
        loop {
            match self.messages.recv().await? {
                Ok(Message::Text(text)) => return Some(text.to_string()),
                Ok(Message::Binary(_)) => return Some(String::new()),
                Ok(Message::Ping(bytes)) => self.session.pong(&bytes).await.ok()?,
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// A refused token: recorded like any failed authentication, then the connection closed.
    async fn refuse(self, err: crate::auth::AuthError, code: u16) {
        let ip = crate::client::ip(&self.req).map(|ip| ip.to_string());
        crate::auth::refused(&self.req, &err, ip);
        self.close(code, "token inválido").await;
    }

    async fn end(self, end: End) {
        let (code, reason) = match end {
            End::Expired => (close::UNAUTHORIZED, "token expirado"),
            End::Dropped if self.live.hub.is_closed() => {
                (u16::from(CloseCode::Away), "reiniciando")
            }
            End::Dropped | End::Unavailable => (u16::from(CloseCode::Again), "reconecte"),
        };
        self.close(code, reason).await;
    }

    async fn close(self, code: u16, reason: &str) {
        let _ = self
            .session
            .close(Some(CloseReason {
                code: CloseCode::from(code),
                description: Some(reason.to_owned()),
            }))
            .await;
    }
}
