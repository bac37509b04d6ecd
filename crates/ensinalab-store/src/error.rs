//! Classifies database errors at the edge: what a retry may fix is `Unavailable` (503), the rest
//! is `Other` (500). No `DbErr` crosses the port.

use ensinalab_ports::StoreError;
use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr};

/// The port's error for a database error.
pub(crate) fn classify(err: DbErr) -> StoreError {
    if is_unavailable(&err) {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Other(Box::new(err))
    }
}

/// [`classify`] for an error of sqlx used directly (the active list on PostgreSQL).
pub(crate) fn classify_sqlx(err: sqlx::Error) -> StoreError {
    classify(DbErr::Query(RuntimeErr::SqlxError(err.into())))
}

fn is_unavailable(err: &DbErr) -> bool {
    match err {
        // Pool exhausted past the acquire timeout, or closed.
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_unavailable(e),
        _ => false,
    }
}

fn sqlx_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended codes included: another
                // writer held the file past the busy timeout.
                return db
                    .code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6));
            }
            // PostgreSQL: connection exceptions (08), operator intervention such as a shutdown
            // (57P), too many connections (53300).
            db.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnAcquireErr;

    #[test]
    fn pool_timeouts_and_refused_connections_are_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for err in [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::Io(refused).into())),
            DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut.into())),
        ] {
            assert!(matches!(classify(err), StoreError::Unavailable(_)));
        }
        assert!(matches!(
            classify_sqlx(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn other_database_errors_are_not_unavailable() {
        for err in [
            DbErr::Type("bad".into()),
            DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::RowNotFound.into())),
            DbErr::Conn(RuntimeErr::Internal("no driver for mysql://".into())),
        ] {
            assert!(matches!(classify(err), StoreError::Other(_)));
        }
    }
}
