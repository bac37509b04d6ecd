//! Redis and pool errors classified at the edge: nothing Redis-specific crosses the port.

use std::time::Duration;

use ensinalab_ports::BrokerError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// A lost/refused connection, a timeout, or a server that cannot serve now is `Unavailable`;
/// anything else (a script or type error) is `Protocol`.
pub(crate) fn classify(err: RedisError) -> BrokerError {
    let unavailable = err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
        || matches!(
            err.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    if unavailable {
        BrokerError::Unavailable(Box::new(err))
    } else {
        BrokerError::Protocol(format!("redis: {err}"))
    }
}

pub(crate) fn pool_error(err: deadpool_redis::PoolError) -> BrokerError {
    match err {
        deadpool_redis::PoolError::Backend(e) => classify(e),
        other => BrokerError::Unavailable(Box::new(other)),
    }
}

/// A Redis call that took longer than its bound.
#[derive(Debug, thiserror::Error)]
#[error("redis did not answer within {0:?}")]
pub(crate) struct TimedOut(pub Duration);

pub(crate) fn timed_out(after: Duration) -> BrokerError {
    BrokerError::Unavailable(Box::new(TimedOut(after)))
}
