//! A Server-Sent Events reader of `GET /tasks/events`.

use std::time::Duration;

use serde_json::Value;

/// One event: its name, id and JSON data.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// An open stream.
pub struct Sse {
    res: reqwest::Response,
    buf: String,
    /// Comment lines seen so far (`: keep-alive`).
    pub comments: usize,
    /// Set once the server ended the stream.
    pub ended: bool,
}

/// How long a test waits for an event before it fails (a guard against a hang, not a figure).
const PATIENCE: Duration = Duration::from_secs(20);

impl Sse {
    /// Opens the stream of `token` at `base` (`http://127.0.0.1:port`), after `last` when given.
    pub async fn open(
        client: &reqwest::Client,
        base: &str,
        token: &str,
        last: Option<&str>,
    ) -> Result<Self, (reqwest::StatusCode, Value)> {
        let mut req = client
            .get(format!("{base}/tasks/events"))
            .bearer_auth(token);
        if let Some(last) = last {
            req = req.header("Last-Event-ID", last);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        if status != reqwest::StatusCode::OK {
            let body = res.text().await.unwrap_or_default();
            return Err((status, serde_json::from_str(&body).unwrap_or(Value::Null)));
        }
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Ok(Self {
            res,
            buf: String::new(),
            comments: 0,
            ended: false,
        })
    }

    /// The next event, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
            }
            if self.ended {
                return None;
            }
            let chunk = tokio::time::timeout(PATIENCE, self.res.chunk())
                .await
                .expect("the stream sent nothing for too long");
            match chunk {
                Ok(Some(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => self.ended = true,
            }
        }
    }

    /// The next event, which must be there.
    pub async fn expect(&mut self) -> SseEvent {
        self.next().await.expect("the stream ended")
    }

    /// The next `change` event whose data satisfies `pred`, skipping others.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> SseEvent {
        loop {
            let e = self.expect().await;
            if e.event == "change" && pred(&e.data) {
                return e;
            }
        }
    }

    /// Reads until the server ends the stream; the events read meanwhile.
    pub async fn read_to_end(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let (mut event, mut id, mut data) = (None, None, Vec::new());
        for line in block.lines() {
            if line.starts_with(':') {
                self.comments += 1;
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v.to_owned());
            }
        }
        let event = event?;
        let data = data.join("\n");
        Some(SseEvent {
            id: id.unwrap_or_else(|| panic!("event {event} without an id")),
            data: serde_json::from_str(&data).unwrap_or_else(|e| panic!("{data}: {e}")),
            event,
        })
    }
}
