//! The HTTP side of a booted test app, in-process or a process of its own: requests, the
//! briefing every flow starts with, and polling a route until a state shows.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::sse::Sse;

/// The string at `key` of a JSON object, which must be there.
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Where the app listens, and a client to talk to it.
pub struct Http {
    pub address: String,
    pub client: reqwest::Client,
}

impl Http {
    /// The app on `127.0.0.1:port`.
    pub fn new(port: u16, client: reqwest::Client) -> Self {
        Self {
            address: format!("http://127.0.0.1:{port}"),
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends a request and returns the status and the JSON body (`Null` if empty or not JSON).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body read");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn post(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// `GET /readyz`.
    pub async fn readyz(&self) -> (StatusCode, Value) {
        self.send(self.client.get(self.url("/readyz"))).await
    }

    /// `POST /briefings`; returns the 201 body.
    pub async fn create_briefing(&self, token: &str, title: &str) -> Value {
        let (status, body) = self
            .post_json(
                "/briefings",
                token,
                &json!({"title": title, "description": "...", "duration_minutes": 10}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["status"], "processing", "{body}");
        body
    }

    /// Creates a briefing and waits for its options (20 s at most); returns the briefing's body.
    pub async fn briefing_with_options(&self, token: &str, title: &str) -> Value {
        let created = self.create_briefing(token, title).await;
        let hash = str_of(&created, "briefing_id");
        self.wait_within(
            &format!("/briefings/{hash}"),
            token,
            Duration::from_secs(20),
            |b| b["status"] == "options_ready",
        )
        .await
    }

    /// `POST /options/{hash}/select`; returns the 202 body.
    pub async fn select(&self, token: &str, option: &str) -> Value {
        let (status, video) = self.post(&format!("/options/{option}/select"), token).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{video}");
        assert_eq!(video["status"], "queued", "{video}");
        video
    }

    /// Polls `GET /briefings/{hash}` until `done` holds (10 s at most).
    pub async fn wait_briefing(
        &self,
        token: &str,
        hash: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait(&format!("/briefings/{hash}"), token, done).await
    }

    /// Polls a GET route until `done` holds on its body (10 s at most).
    pub async fn wait(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.wait_within(path, token, Duration::from_secs(10), done)
            .await
    }

    /// Polls a GET route (200 expected) until `done` holds on its body; panics after `within`.
    pub async fn wait_within(
        &self,
        path: &str,
        token: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.get(path, token).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            if done(&body) {
                return body;
            }
            assert!(
                started.elapsed() < within,
                "{path} never reached the expected state within {within:?}; last: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /briefings` of a small briefing, whatever the answer.
    pub async fn try_create_briefing(&self, token: &str) -> (StatusCode, Value) {
        let body = json!({"title": "t", "description": "", "duration_minutes": 5});
        self.post_json("/briefings", token, &body).await
    }

    /// Waits (10 s at most) until video `hash` is processing with progress reported.
    pub async fn wait_progressing(&self, hash: &str, token: &str) -> Value {
        let path = format!("/videos/{hash}/status");
        self.wait_within(&path, token, Duration::from_secs(10), |v| {
            v["status"] == "processing" && v["progress"].as_f64().is_some_and(|p| p > 0.0)
        })
        .await
    }

    /// `GET /tasks/events` for `token`, after `last` when given.
    pub async fn stream(
        &self,
        token: &str,
        last: Option<&str>,
    ) -> Result<Sse, (StatusCode, Value)> {
        Sse::open(&self.client, &self.address, token, last).await
    }
}
