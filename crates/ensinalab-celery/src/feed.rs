//! PUB/SUB feeds that survive Redis restarts: subscribe (bounded in time), hand each message
//! to the caller, ping every 15 s so a half-open connection is noticed, and resubscribe with
//! backoff when the connection is lost. Messages published while disconnected are not replayed.

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::{Client, Msg};
use tokio::sync::mpsc;

/// What to subscribe to.
pub(crate) enum Subscription {
    /// `PSUBSCRIBE` a glob pattern.
    Pattern(String),
    /// `SUBSCRIBE` one channel.
    Channel(String),
}

/// Follows `what` until `tx` is closed. `on_subscribed`, when given, is sent after every
/// (re)subscription; `map` turns a message into an item (or skips it). `name` labels the logs.
pub(crate) async fn follow<T: Clone>(
    client: Client,
    what: Subscription,
    limit: Duration,
    name: &'static str,
    on_subscribed: Option<T>,
    map: impl Fn(&Msg) -> Option<T>,
    tx: mpsc::Sender<T>,
) {
    let mut backoff = Duration::from_millis(100);
    while !tx.is_closed() {
        let subscribed = tokio::time::timeout(limit, async {
            let mut pubsub = client.get_async_pubsub().await?;
            match &what {
                Subscription::Pattern(p) => pubsub.psubscribe(p).await?,
                Subscription::Channel(c) => pubsub.subscribe(c).await?,
            }
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let pubsub = match subscribed {
            Ok(Ok(pubsub)) => pubsub,
            failed => {
                match failed {
                    Ok(Err(err)) => tracing::warn!(error = %err, "{name}: cannot subscribe"),
                    _ => tracing::warn!("{name}: subscribe timed out"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if let Some(item) = &on_subscribed
            && tx.send(item.clone()).await.is_err()
        {
            return;
        }
        let (mut sink, mut stream) = pubsub.split();
        let mut keepalive = tokio::time::interval(Duration::from_secs(15));
        keepalive.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Some(item) = map(&msg) else { continue };
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
                _ = keepalive.tick() => {
                    // A half-open connection shows up here, not in the stream. Subscribed, Redis
                    // answers a PING with `["pong", ""]`, not `PONG`.
                    let alive = tokio::time::timeout(limit, sink.ping::<redis::Value>()).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        tracing::warn!("{name}: connection lost, resubscribing");
        tokio::time::sleep(backoff).await;
    }
}
