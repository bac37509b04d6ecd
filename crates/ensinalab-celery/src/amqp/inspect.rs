//! Control requests that want replies (`inspect active`) on RabbitMQ: a reply queue of our own,
//! `<oid>.reply.celery.pidbox`, bound to the `reply.celery.pidbox` direct exchange with the
//! routing key `<oid>` the request names, on a connection of its own that is closed afterwards
//! (the queue is exclusive, so it goes with it).

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::ExchangeKind;
use lapin::types::FieldTable;
use serde_json::Value;

use super::{AmqpError, Link, REPLY_PIDBOX, bounded, declare_exchange, wire};

/// Publishes the control request `body` (which names `oid` and `ticket` for its replies) and
/// collects the replies carrying `ticket` until `timeout`: RabbitMQ does not say how many
/// workers heard a fanout message, so the whole window is waited. One JSON object per reply
/// (`{"<worker>": <reply>}`).
///
/// # Errors
/// [`AmqpError`] when the broker cannot be reached.
pub(crate) async fn collect(
    link: &Link,
    body: &Value,
    expires_at: f64,
    oid: &str,
    ticket: &str,
    timeout: Duration,
) -> Result<Vec<Value>, AmqpError> {
    let conn = link.connect().await?;
    let queue = format!("{oid}.reply.celery.pidbox");
    let consumer = bounded(link.limit(), async {
        let channel = conn.create_channel().await?;
        declare_exchange(&channel, REPLY_PIDBOX, ExchangeKind::Direct, false).await?;
        super::consume_own_queue(&channel, &queue, FieldTable::default(), REPLY_PIDBOX, oid).await
    })
    .await;
    let collected = match consumer {
        Ok(mut consumer) => match link.publish(wire::control(body, expires_at)).await {
            Ok(false) => Ok(Vec::new()),
            Ok(true) => {
                let mut replies = Vec::new();
                let deadline = tokio::time::Instant::now() + timeout;
                while let Ok(Some(Ok(delivery))) =
                    tokio::time::timeout_at(deadline, consumer.next()).await
                {
                    let ticket_of = delivery
                        .properties
                        .headers()
                        .as_ref()
                        .and_then(|h| h.inner().get("ticket").map(wire::json_of));
                    if ticket_of.as_ref().and_then(Value::as_str) != Some(ticket) {
                        continue;
                    }
                    if let Ok(reply) = serde_json::from_slice::<Value>(&delivery.data) {
                        replies.push(reply);
                    }
                }
                Ok(replies)
            }
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    let _ = bounded(link.limit(), conn.close(200, "done".into())).await;
    collected
}
