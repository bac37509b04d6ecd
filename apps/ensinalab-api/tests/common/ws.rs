//! A WebSocket reader of `GET /tasks/ws`: the token message, then the server's JSON messages,
//! its pings and its close.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How long a test waits for a message before it fails (a guard against a hang, not a figure).
const PATIENCE: Duration = Duration::from_secs(20);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One message of the stream: `event`, `id`, `data`.
#[derive(Debug, Clone)]
pub struct WsEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// An open WebSocket.
pub struct Ws {
    socket: Socket,
    /// Ping frames seen so far.
    pub pings: usize,
    /// The close code and reason, once the server closed.
    pub closed: Option<(u16, String)>,
}

impl Ws {
    /// Connects to `base` (`http://127.0.0.1:port`) and sends nothing yet.
    pub async fn connect(base: &str) -> Self {
        let url = format!("{}/tasks/ws", base.replacen("http", "ws", 1));
        let (socket, res) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the upgrade succeeds");
        assert_eq!(res.status(), 101);
        Self {
            socket,
            pings: 0,
            closed: None,
        }
    }

    /// Connects and sends `{"token": …}` (with `last_event_id` when given).
    pub async fn open(base: &str, token: &str, last: Option<&str>) -> Self {
        let mut ws = Self::connect(base).await;
        let mut hello = json!({ "token": token });
        if let Some(last) = last {
            hello["last_event_id"] = json!(last);
        }
        ws.send_text(&hello.to_string()).await;
        ws
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("the message is sent");
    }

    /// The next JSON message, or `None` once the server closed (then `closed` says how).
    pub async fn next(&mut self) -> Option<WsEvent> {
        loop {
            if self.closed.is_some() {
                return None;
            }
            let msg = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the socket sent nothing for too long");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let v: Value =
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                    let keys = v.as_object().expect("an object").len();
                    assert_eq!(keys, 3, "event, id and data only: {v}");
                    return Some(WsEvent {
                        event: v["event"].as_str().expect("event").to_owned(),
                        id: v["id"].as_str().expect("id").to_owned(),
                        data: v["data"].clone(),
                    });
                }
                Some(Ok(Message::Ping(_))) => self.pings += 1,
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    }));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => self.closed = Some((1006, String::new())),
            }
        }
    }

    /// The next message, which must be there.
    pub async fn expect(&mut self) -> WsEvent {
        let closed = self.next().await;
        closed.unwrap_or_else(|| panic!("the socket closed: {:?}", self.closed))
    }

    /// The next `change` whose data satisfies `pred`, skipping others.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> WsEvent {
        loop {
            let e = self.expect().await;
            if e.event == "change" && pred(&e.data) {
                return e;
            }
        }
    }

    /// Reads until the server closes; its close code.
    pub async fn close_code(&mut self) -> u16 {
        while self.next().await.is_some() {}
        self.closed.as_ref().map(|(code, _)| *code).expect("closed")
    }

    /// Closes from the client's side.
    pub async fn close(mut self) {
        let _ = self
            .socket
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}
