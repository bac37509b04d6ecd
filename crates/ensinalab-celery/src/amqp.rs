//! RabbitMQ as the Celery broker (AMQP 0-9-1, over `lapin`): the link that publishes task and
//! control messages with publisher confirms, declaring what a Celery 5.7 worker declares, and
//! comes back by itself after the broker restarts. The result backend stays on Redis.
//!
//! The topology is Celery's own (docs/celery-contract.md, "RabbitMQ"): the task queue `<q>`
//! (durable) bound to the direct exchange `<q>` (durable) with routing key `<q>`; control
//! messages on the fanout `celery.pidbox` (not durable), replies on the direct
//! `reply.celery.pidbox` (not durable); events on the topic `celeryev` (durable). Declaring
//! them with other flags than the workers' would close the channel, so they are written once
//! here.

use std::str::FromStr as _;
use std::time::Duration;

use ensinalab_ports::BrokerError;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::Mutex;

pub(crate) mod events;
pub(crate) mod inspect;
pub(crate) mod wire;

/// The fanout exchange every worker's mailbox queue is bound to.
pub(crate) const PIDBOX: &str = "celery.pidbox";
/// The direct exchange workers publish control replies to.
pub(crate) const REPLY_PIDBOX: &str = "reply.celery.pidbox";
/// The topic exchange of worker and task events.
pub(crate) const CELERYEV: &str = "celeryev";

/// Why an AMQP operation failed, classified at the edge like Redis errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AmqpError {
    #[error("rabbitmq: {0}")]
    Lapin(#[from] lapin::Error),
    #[error("rabbitmq did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("rabbitmq refused the message (basic.nack)")]
    Nacked,
}

impl From<AmqpError> for BrokerError {
    fn from(err: AmqpError) -> Self {
        BrokerError::Unavailable(Box::new(err))
    }
}

/// A `CELERY_BROKER_URL` read the way kombu reads it: `amqp://user:pass@host:port/vhost`,
/// the vhost `/` when the path is empty or `//`.
///
/// # Errors
/// A message saying what is wrong with `url` (`amqps` too: no TLS backend is compiled in).
pub fn parse_broker_url(url: &str) -> Result<AMQPUri, String> {
    let mut uri = AMQPUri::from_str(url)?;
    if uri.scheme == AMQPScheme::AMQPS {
        return Err("amqps:// is not supported: use amqp:// (or a TLS-terminating proxy)".into());
    }
    if uri.vhost.is_empty() {
        "/".clone_into(&mut uri.vhost);
    }
    // The parser keeps a host only when it is a domain name; an address is taken from the text.
    if let Some(host) = literal_address(url) {
        uri.authority.host = host;
    }
    Ok(uri)
}

/// The host of `url` when it is an IP address (`[::1]` without its brackets).
fn literal_address(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    host.parse::<std::net::IpAddr>()
        .ok()
        .map(|_| host.to_owned())
}

/// One message to publish: where, its body and its properties.
pub(crate) struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

/// The publishing connection and its confirm-mode channel, made on first use and again after
/// any failure: a broker restart costs the calls made while it is down, never a server restart.
pub(crate) struct Link {
    uri: AMQPUri,
    queue: String,
    limit: Duration,
    open: Mutex<Option<(Connection, Channel)>>,
}

impl Link {
    pub(crate) fn new(uri: AMQPUri, queue: &str, limit: Duration) -> Self {
        Self {
            uri,
            queue: queue.to_owned(),
            limit,
            open: Mutex::new(None),
        }
    }

    /// A new connection to the broker, within the command timeout.
    pub(crate) async fn connect(&self) -> Result<Connection, AmqpError> {
        let props = ConnectionProperties::default().with_connection_name("ensinalab".into());
        bounded(self.limit, Connection::connect_uri(self.uri.clone(), props)).await
    }

    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// The channel publishes go through: the open one, or a new connection with the task queue
    /// and the control exchange declared and confirms selected.
    async fn channel(&self) -> Result<Channel, AmqpError> {
        let mut open = self.open.lock().await;
        if let Some((conn, channel)) = open.as_ref()
            && conn.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *open = None;
        let conn = self.connect().await?;
        let channel = bounded(self.limit, async {
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            declare_task_queue(&channel, &self.queue).await?;
            declare_exchange(&channel, PIDBOX, ExchangeKind::Fanout, false).await?;
            Ok::<_, lapin::Error>(channel)
        })
        .await?;
        *open = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Forgets the open connection (after a failure), so the next call makes a new one.
    async fn forget(&self) {
        if let Some((conn, _)) = self.open.lock().await.take() {
            tokio::spawn(async move {
                let _ = conn.close(320, "reconnecting".into()).await;
            });
        }
    }

    /// Publishes `msg` as `mandatory` and waits for RabbitMQ's confirmation: `Ok(true)` once it
    /// was routed to at least one queue and confirmed, `Ok(false)` when no queue was bound (the
    /// broker returned it). Bounded by the command timeout; a failure drops the connection.
    ///
    /// # Errors
    /// [`AmqpError`] when the broker cannot be reached, did not answer in time, or refused it.
    pub(crate) async fn publish(&self, msg: Outgoing<'_>) -> Result<bool, AmqpError> {
        let outcome = bounded(self.limit, async {
            let channel = self.channel().await?;
            let confirm = channel
                .basic_publish(
                    msg.exchange.into(),
                    msg.routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &msg.body,
                    msg.properties,
                )
                .await?
                .await?;
            match confirm {
                Confirmation::Ack(returned) => Ok(returned.is_none()),
                Confirmation::Nack(_) => Err(AmqpError::Nacked),
                Confirmation::NotRequested => Ok(true),
            }
        })
        .await;
        match outcome {
            Ok(routed) => Ok(routed),
            Err(err) => {
                self.forget().await;
                Err(err)
            }
        }
    }

    /// Checks that the broker answers (a channel is open or can be opened).
    pub(crate) async fn ping(&self) -> Result<(), AmqpError> {
        match bounded(self.limit, self.channel()).await {
            Ok(_) => Ok(()),
            Err(err) => {
                self.forget().await;
                Err(err)
            }
        }
    }
}

/// `fut`, or [`AmqpError::TimedOut`] after `limit`.
pub(crate) async fn bounded<T, E: Into<AmqpError>>(
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, AmqpError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(AmqpError::TimedOut(limit)),
    }
}

/// The task queue as a Celery worker declares it (`task_default_queue`): a durable queue bound
/// to a durable direct exchange of the same name with the same routing key, so a task published
/// before any worker started waits in it.
async fn declare_task_queue(channel: &Channel, queue: &str) -> Result<(), lapin::Error> {
    declare_exchange(channel, queue, ExchangeKind::Direct, true).await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.into(),
            queue.into(),
            queue.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

pub(crate) async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    durable: bool,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                durable,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Declares a queue of the service's own (exclusive and auto-delete: it goes away with the
/// connection, with `args`), binds it to `exchange` with `key`, and consumes it without acks.
pub(crate) async fn consume_own_queue(
    channel: &Channel,
    queue: &str,
    args: FieldTable,
    exchange: &str,
    key: &str,
) -> Result<lapin::Consumer, lapin::Error> {
    let own = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(queue.into(), own, args).await?;
    let bind = QueueBindOptions::default();
    let no_args = FieldTable::default;
    channel
        .queue_bind(queue.into(), exchange.into(), key.into(), bind, no_args())
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    channel
        .basic_consume(queue.into(), "".into(), no_ack, no_args())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_url_is_read_as_kombu_reads_it() {
        let uri = parse_broker_url("amqp://u:p@10.0.0.5:5673//").unwrap();
        assert_eq!(uri.authority.host, "10.0.0.5");
        assert_eq!(uri.authority.port, 5673);
        assert_eq!(uri.authority.userinfo.username, "u");
        assert_eq!(uri.vhost, "/");
        let uri = parse_broker_url("amqp://guest:guest@rabbit.internal/ensinalab").unwrap();
        assert_eq!(uri.authority.host, "rabbit.internal");
        assert_eq!(uri.authority.port, 5672);
        assert_eq!(uri.vhost, "ensinalab");
        assert_eq!(
            parse_broker_url("amqp://[::1]:5672")
                .unwrap()
                .authority
                .host,
            "::1"
        );
        assert_eq!(parse_broker_url("amqp://localhost").unwrap().vhost, "/");
    }

    #[test]
    fn a_url_that_is_not_plain_amqp_is_refused() {
        assert!(parse_broker_url("redis://127.0.0.1:6379/0").is_err());
        assert!(parse_broker_url("amqps://rabbit.internal").is_err());
        assert!(parse_broker_url("not a url").is_err());
    }
}
