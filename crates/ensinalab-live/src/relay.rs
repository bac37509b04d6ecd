//! The relay between servers: each server publishes the events it makes on one Redis PUB/SUB
//! channel and hands every other server's events to its own hub.
//!
//! A server's own events reach its hub directly (not through Redis), so its streams go on when
//! Redis is down. PUB/SUB does not keep messages: after each (re)subscription every open stream
//! of this server sends a fresh snapshot in-band ([`Hub::resync`]), so a client never silently
//! misses a change made elsewhere, and its stream stays open.

use std::sync::Arc;
use std::time::Duration;

use ensinalab_domain::UserId;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::hub::Hub;

/// How many events may wait for the publisher; past it they are not relayed (and logged).
const QUEUE: usize = 4096;
/// Most events in one message: a burst (a cancel-all) costs one PUBLISH per this many, not one
/// per change.
const BATCH: usize = 512;
/// Bound on a connect, a subscribe or a ping.
const LIMIT: Duration = Duration::from_secs(5);
/// How often an idle subscription is checked with a ping.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Why the relay could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL for the live relay")]
pub struct RelayError(#[source] redis::RedisError);

/// The sending side, held by the change sink: never waits.
#[derive(Debug, Clone)]
pub struct RelayPublisher {
    tx: mpsc::Sender<(UserId, Arc<str>)>,
}

impl RelayPublisher {
    /// Queues one event for the other servers.
    pub fn send(&self, user: UserId, data: Arc<str>) {
        if self.tx.try_send((user, data)).is_err() {
            tracing::warn!("live relay: queue full or closed, an event is not relayed");
        }
    }
}

/// The relay's two tasks (publisher and subscriber), stopped together.
#[derive(Debug)]
pub struct Relay {
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying `hub`'s events through `channel` at `redis_url`. Connects lazily: a
    /// Redis that is down at start is retried with backoff. Must be called inside a tokio
    /// runtime.
    ///
    /// # Errors
    /// [`RelayError`] when the URL is not a Redis URL.
    pub fn start(
        redis_url: &str,
        channel: String,
        hub: Arc<Hub>,
    ) -> Result<(Self, RelayPublisher), RelayError> {
        let client = redis::Client::open(redis_url).map_err(RelayError)?;
        // Distinguishes this server's own messages, which its hub already has.
        let instance = format!("{:016x}", {
            use std::hash::BuildHasher as _;
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let tasks = vec![
            tokio::spawn(publish(
                client.clone(),
                channel.clone(),
                instance.clone(),
                rx,
            )),
            tokio::spawn(subscribe(client, channel, instance, hub)),
        ];
        Ok((Self { tasks }, RelayPublisher { tx }))
    }

    /// Stops both tasks.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A relayed message: `<instance>\n`, then per event `<user id> <byte length>\n<data>\n`.
fn encode(instance: &str, events: &[(UserId, Arc<str>)]) -> String {
    let mut out = format!("{instance}\n");
    for (user, data) in events {
        out.push_str(&format!("{} {}\n{data}\n", user.get(), data.len()));
    }
    out
}

/// The sender and the events of a message; `None` for a message not of ours.
fn decode(payload: &str) -> Option<(&str, Vec<(UserId, &str)>)> {
    let (instance, mut rest) = payload.split_once('\n')?;
    let mut events = Vec::new();
    while !rest.is_empty() {
        let (head, tail) = rest.split_once('\n')?;
        let (user, len) = head.split_once(' ')?;
        let len: usize = len.parse().ok()?;
        let data = tail.get(..len)?;
        rest = tail.get(len..)?.strip_prefix('\n')?;
        events.push((UserId(user.parse().ok()?), data));
    }
    Some((instance, events))
}

async fn publish(
    client: redis::Client,
    channel: String,
    instance: String,
    mut rx: mpsc::Receiver<(UserId, Arc<str>)>,
) {
    let mut conn = None;
    let mut backoff = Duration::from_millis(100);
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if conn.is_none() {
            match tokio::time::timeout(LIMIT, client.get_multiplexed_async_connection()).await {
                Ok(Ok(c)) => conn = Some(c),
                _ => {
                    tracing::warn!(
                        events = batch.len(),
                        "live relay: cannot reach Redis, events not relayed"
                    );
                    batch.clear();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let message = encode(&instance, &batch);
        let events = batch.len();
        batch.clear();
        let sent: Result<Result<(), _>, _> = tokio::time::timeout(
            LIMIT,
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(message)
                .query_async(c),
        )
        .await;
        if let Ok(Ok(())) = sent {
            backoff = Duration::from_millis(100);
        } else {
            tracing::warn!(events, "live relay: publish failed, events not relayed");
            conn = None;
        }
    }
}

async fn subscribe(client: redis::Client, channel: String, instance: String, hub: Arc<Hub>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let subscribed = tokio::time::timeout(LIMIT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let Ok(Ok(pubsub)) = subscribed else {
            tracing::warn!("live relay: cannot subscribe");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        };
        backoff = Duration::from_millis(100);
        // Streams opened before this subscription may have missed other servers' events:
        // the first one included, since streams open as soon as the server listens.
        hub.resync();
        let (mut sink, mut stream) = pubsub.split();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Ok(payload) = msg.get_payload::<String>() else { continue };
                    match decode(&payload) {
                        Some((from, _)) if from == instance => {}
                        Some((_, events)) => {
                            for (user, data) in events {
                                hub.publish(user, Arc::from(data));
                            }
                        }
                        None => tracing::warn!("live relay: a message not of ours"),
                    }
                }
                _ = keepalive.tick() => {
                    // Subscribed, Redis answers a PING with `["pong", ""]`, not `PONG`.
                    let alive = tokio::time::timeout(LIMIT, sink.ping::<redis::Value>()).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        tracing::warn!("live relay: subscription lost, resubscribing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_decodes_to_what_was_encoded_whatever_the_data_holds() {
        let events: Vec<(UserId, Arc<str>)> = vec![
            (UserId(42), Arc::from("{\"a\":1}")),
            (UserId(7), Arc::from("two\nlines 3 9\n")),
            (UserId(42), Arc::from("")),
        ];
        let m = encode("abc", &events);
        let (from, decoded) = decode(&m).unwrap();
        assert_eq!(from, "abc");
        let expected: Vec<(UserId, &str)> = events.iter().map(|(u, d)| (*u, &**d)).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn garbage_is_not_a_message() {
        for bad in ["abc", "abc\nx 2\n{}\n", "abc\n1 9\n{}\n", "abc\n1 2\n{}"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
