//! The HTTP side of a booted test app, shared by the test binaries that include this file with
//! `#[path]` (each uses a subset of it).
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::Value;

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
}
