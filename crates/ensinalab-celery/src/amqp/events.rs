//! Worker events on RabbitMQ: a queue of the service's own (exclusive, so it goes away with
//! the connection) bound to the `celeryev` topic exchange, consumed without acks. Reconnects
//! with backoff, like the Redis feeds, and says so after every (re)subscription: workers that
//! came online while it was away would otherwise go unseen.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ExchangeKind};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{CELERYEV, Link, bounded, declare_exchange};

/// Follows the events whose routing key matches `binding` (e.g. `worker.online`) until `tx`
/// is closed: `on_subscribed` after every (re)subscription, `map` for each event's JSON body.
pub(crate) async fn follow<T: Clone>(
    link: &Link,
    binding: &'static str,
    name: &'static str,
    on_subscribed: T,
    map: impl Fn(&Value) -> Option<T>,
    tx: mpsc::Sender<T>,
) {
    let mut backoff = Duration::from_millis(100);
    while !tx.is_closed() {
        let subscribed = subscribe(link, binding).await;
        let (conn, mut consumer) = match subscribed {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(error = %err, "{name}: cannot subscribe");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if tx.send(on_subscribed.clone()).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                delivery = consumer.next() => {
                    let Some(Ok(delivery)) = delivery else { break };
                    let Ok(body) = serde_json::from_slice::<Value>(&delivery.data) else {
                        continue;
                    };
                    let Some(item) = map(&body) else { continue };
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
                () = tx.closed() => {
                    let _ = conn.close(200, "done".into()).await;
                    return;
                }
            }
        }
        // A consumer can end with its connection still open (its channel closed by the
        // broker): close it, so every subscription holds one connection at most.
        let _ = bounded(link.limit(), conn.close(200, "resubscribing".into())).await;
        tracing::warn!("{name}: connection lost, resubscribing");
        tokio::time::sleep(backoff).await;
    }
}

/// A connection with the exchange declared as Celery declares it and a queue of our own bound.
async fn subscribe(
    link: &Link,
    binding: &str,
) -> Result<(Connection, lapin::Consumer), super::AmqpError> {
    let conn = link.connect().await?;
    let consumer = bounded(link.limit(), async {
        let channel = conn.create_channel().await?;
        declare_exchange(&channel, CELERYEV, ExchangeKind::Topic, true).await?;
        let queue = format!("ensinalab.celeryev.{}", uuid::Uuid::new_v4().simple());
        // Events are only worth their moment: a backlog of them is dropped, not replayed.
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(5_000));
        super::consume_own_queue(&channel, &queue, args, CELERYEV, binding).await
    })
    .await?;
    Ok((conn, consumer))
}
