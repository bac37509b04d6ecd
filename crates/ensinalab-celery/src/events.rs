//! Worker lifecycle events: a feed of workers coming online.
//!
//! Every Celery worker PUBLISHes `worker-online` on `/<db>.celeryev/worker.online` when it
//! starts (even without `-E`). A new worker knows none of the revokes sent before it started
//! (revoked ids live in worker memory only), so the service re-broadcasts its open revokes when
//! this feed fires. On RabbitMQ the same event comes from the `celeryev` topic exchange with
//! the routing key `worker.online` (`crate::amqp::events`). The feed also fires when its own subscription is (re)established: workers
//! that came online while it was disconnected (a Redis restart) would otherwise go unseen.

use serde_json::Value;
use tokio::sync::mpsc;

use crate::broker::CeleryBroker;
use crate::feed::{self, Subscription};
use crate::message::envelope_body;

/// A reason to tell workers the open revokes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerOnline {
    /// A worker announced itself (`hostname`, e.g. `celery@host`, when the event carried it).
    Worker(Option<String>),
    /// The feed (re)subscribed: workers may have come online unseen.
    Subscribed,
}

impl CeleryBroker {
    /// The `worker.online` channel of this broker's Redis DB (`/<db>.celeryev/worker.online`).
    pub fn worker_online_channel(&self) -> String {
        let db = self
            .pidbox_channel()
            .trim_start_matches('/')
            .split('.')
            .next()
            .unwrap_or("0")
            .to_owned();
        format!("/{db}.celeryev/worker.online")
    }

    /// A feed of [`WorkerOnline`] events. Reconnects by itself (and says so with
    /// [`WorkerOnline::Subscribed`]); stops when the receiver is dropped. Needs a tokio runtime.
    pub fn workers_online(&self) -> mpsc::Receiver<WorkerOnline> {
        let (tx, rx) = mpsc::channel(64);
        if self.amqp().is_some() {
            let broker = self.clone();
            let online = |body: &Value| {
                Some(WorkerOnline::Worker(
                    body.get("hostname")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                ))
            };
            tokio::spawn(async move {
                if let Some(link) = broker.amqp() {
                    crate::amqp::events::follow(
                        link,
                        "worker.online",
                        "worker events",
                        WorkerOnline::Subscribed,
                        online,
                        tx,
                    )
                    .await;
                }
            });
            return rx;
        }
        let online =
            |msg: &redis::Msg| Some(WorkerOnline::Worker(hostname(msg.get_payload_bytes())));
        tokio::spawn(feed::follow(
            self.client().clone(),
            Subscription::Channel(self.worker_online_channel()),
            self.config().command_timeout,
            "worker events",
            Some(WorkerOnline::Subscribed),
            online,
            tx,
        ));
        rx
    }
}

/// The `hostname` of a kombu-wrapped event.
fn hostname(payload: &[u8]) -> Option<String> {
    let envelope: Value = serde_json::from_slice(payload).ok()?;
    let body = envelope_body(&envelope)?;
    body.get("hostname")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CeleryConfig;

    #[test]
    fn the_channel_carries_the_db_number() {
        let broker = CeleryBroker::new(CeleryConfig::new("redis://127.0.0.1:6379/3")).unwrap();
        assert_eq!(broker.worker_online_channel(), "/3.celeryev/worker.online");
    }

    #[test]
    fn the_hostname_is_read_from_a_base64_event() {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD
            .encode(br#"{"hostname": "w1@lab", "type": "worker-online"}"#);
        let envelope = serde_json::json!({
            "body": body,
            "properties": {"body_encoding": "base64"},
        });
        assert_eq!(
            hostname(envelope.to_string().as_bytes()).as_deref(),
            Some("w1@lab")
        );
        assert_eq!(hostname(b"not json"), None);
    }
}
