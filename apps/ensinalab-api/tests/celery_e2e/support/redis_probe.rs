//! Looking at Redis from the side, as an operator would: what is waiting in the queue, and what
//! is PUBLISHed on a channel. Synchronous connections from plain threads, so a subscriber never
//! competes with the app for the test's runtime.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use serde_json::Value;

use super::redis_url;

fn connection(db: u8) -> redis::Connection {
    redis::Client::open(redis_url(db))
        .and_then(|c| c.get_connection())
        .expect("Redis at 127.0.0.1:6379 (scripts/ensure-redis.sh)")
}

/// kombu's lists of one queue: priority 0 is the queue's own name, the others carry a suffix.
pub fn queue_keys(queue: &str) -> [String; 4] {
    ["", "\x06\x163", "\x06\x166", "\x06\x169"].map(|suffix| format!("{queue}{suffix}"))
}

/// The ids of the generation task messages waiting in `queue` (every priority list); the
/// cleanups and sweeps the app sends after cancels are left out.
pub fn queued_task_ids(db: u8, queue: &str) -> Vec<String> {
    let mut conn = connection(db);
    let mut ids = Vec::new();
    for key in queue_keys(queue) {
        let messages: Vec<String> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .expect("LRANGE");
        ids.extend(messages.iter().filter_map(|raw| {
            let message: Value = serde_json::from_str(raw).ok()?;
            let name = message["headers"]["task"].as_str()?;
            name.starts_with("ensinalab.generate_")
                .then(|| message["headers"]["id"].as_str().map(str::to_owned))?
        }));
    }
    ids
}

/// Removes the queue's lists: the queue is unique to a test, and Redis is shared.
pub fn delete_queue(db: u8, queue: &str) {
    let mut conn = connection(db);
    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(&queue_keys(queue)[..])
        .query(&mut conn);
}

/// One PUBLISH seen by a [`Subscription`].
#[derive(Debug, Clone)]
pub struct Published {
    pub channel: String,
    pub payload: Vec<u8>,
}

impl Published {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }

    /// The decoded body of a kombu control message (the pidbox carries base64 JSON).
    pub fn control_body(&self) -> Value {
        let envelope = self.json();
        envelope["body"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }
}

/// Every message PUBLISHed on channels matching a pattern (PSUBSCRIBE; PUB/SUB is server-wide),
/// from [`Subscription::start`] until [`Subscription::stop`].
pub struct Subscription {
    stop_channel: String,
    seen: Arc<Mutex<Vec<Published>>>,
    handle: JoinHandle<()>,
}

impl Subscription {
    /// Returns once the subscription is in place: nothing PUBLISHed afterwards is missed.
    pub fn start(pattern: &str) -> Self {
        // A private channel on the same connection ends the subscription: Redis delivers a
        // connection's messages in PUBLISH order, so everything published before the stop
        // message has been received when it arrives. No sleeps, no read timeouts.
        let stop_channel = format!("ensinalab-e2e-stop-{}", uuid::Uuid::new_v4().simple());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = {
            let (pattern, stop_channel, seen) =
                (pattern.to_owned(), stop_channel.clone(), Arc::clone(&seen));
            std::thread::spawn(move || {
                let mut conn = connection(0);
                let mut pubsub = conn.as_pubsub();
                pubsub.psubscribe(&pattern).expect("PSUBSCRIBE");
                pubsub.subscribe(&stop_channel).expect("SUBSCRIBE");
                ready_tx.send(()).expect("test waits for the subscription");
                loop {
                    let msg = pubsub.get_message().expect("pub/sub message");
                    let channel = msg.get_channel_name().to_owned();
                    if channel == stop_channel {
                        return;
                    }
                    let published = Published {
                        channel,
                        payload: msg.get_payload_bytes().to_vec(),
                    };
                    seen.lock().expect("subscription lock").push(published);
                }
            })
        };
        ready_rx.recv().expect("subscriber thread subscribed");
        Self {
            stop_channel,
            seen,
            handle,
        }
    }

    /// Ends the subscription and returns everything published up to now.
    pub fn stop(self) -> Vec<Published> {
        let mut conn = connection(0);
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&self.stop_channel)
            .arg("stop")
            .query(&mut conn)
            .expect("PUBLISH stop");
        self.handle.join().expect("subscriber thread");
        std::mem::take(&mut *self.seen.lock().expect("subscription lock"))
    }
}

/// The states written for task `id`, in order, among `seen` (the result backend PUBLISHes every
/// write of `celery-task-meta-<id>` on that channel).
pub fn backend_states(seen: &[Published], id: &str) -> Vec<String> {
    let channel = format!("celery-task-meta-{id}");
    seen.iter()
        .filter(|p| p.channel == channel)
        .filter_map(|p| p.json()["status"].as_str().map(str::to_owned))
        .collect()
}
