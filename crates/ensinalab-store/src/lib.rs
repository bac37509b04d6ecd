//! The repository ports of `ensinalab-ports` on sea-orm, for PostgreSQL (production) and SQLite
//! (the embedded default), from the same code and the same migrations (`ensinalab-migration`).
//!
//! This crate owns how rows become domain records and how status transitions are made safe
//! against races: every transition is one conditional `UPDATE ... WHERE status IN (allowed)
//! RETURNING ...`, so a user's cancel racing a worker's completion ends in exactly one terminal
//! state and the loser is told. It decides no rule: the guard and the write of a cancel come
//! from the domain's decision (`ensinalab_domain::Cancel`), which [`guarded`] carries out for
//! either kind of row. `docs/schema.md` describes the tables, indexes and guards.
//! Database errors are classified here: connection trouble is `StoreError::Unavailable`,
//! everything else `StoreError::Other`, an impossible stored value `StoreError::Corrupt`.
//! Each repository call has a `debug` span with its arguments and logs its error at `ERROR`:
//! at the default `info` the span costs nothing (docs/benchmarks.md, "spans"), and the
//! request's own log line, which names the caller, follows the error's (a background job logs
//! its own failures).
//!
//! One file, one concern: `briefings`, `videos` and `tasks` implement the repository ports,
//! `guarded` the transitions they share, `owe` and `outbox` the revoke outbox, `cleanup` the
//! cleanup outbox, `owed` what the two outboxes share, `mail` the alert e-mail slots, `audit` the security trail, `stats` the operators' figures
//! (jobs per day, the census in flight), `convert` every
//! decoder of a row shape, `active` the active list's read on PostgreSQL (through
//! tokio-postgres, the one read not through sea-orm), and `postgres` the statements that
//! PostgreSQL runs its own faster way (each tested on both backends against the same cases).
//!
//! ```no_run
//! # async fn run() -> Result<(), ensinalab_ports::StoreError> {
//! let store = ensinalab_store::SqlStore::connect("sqlite://ensinalab.db?mode=rwc").await?;
//! store.migrate().await?;
//! store.ping().await?;
//! # Ok(()) }
//! ```

mod active;
mod audit;
mod briefings;
mod cleanup;
mod convert;
mod entity;
mod error;
mod guarded;
mod mail;
mod outbox;
mod owe;
mod owed;
mod postgres;
mod slots;
mod stats;
mod tasks;
mod videos;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use ensinalab_migration::{Migrator, MigratorTrait};
use ensinalab_ports::StoreError;
use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection};

use crate::error::classify;

pub use active::{count_sql, first_page_sql};
pub use tasks::active_sql;

/// How long a request waits for a connection (or for a new one to open) before the store
/// reports `Unavailable`: a dead database must give a fast 503, not a hung request.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle time after which a pooled connection is pinged before use.
const STALE_AFTER: Duration = Duration::from_secs(30);
/// Pool size on PostgreSQL and SQLite files; each connection is one backend process. sqlx pings
/// every connection as it returns to the pool, so each query holds its connection for two round
/// trips; a pool of 10 left the CPU waiting for connections under load (docs/benchmarks.md,
/// "pool size"). Five API instances fit PostgreSQL's default `max_connections` of 100.
const MAX_CONNECTIONS: u32 = 20;
/// Connections of the active list's own reads on PostgreSQL, each shared by the requests that
/// land on it (docs/benchmarks.md, "the active list's driver").
const ACTIVE_CONNECTIONS: usize = 4;

/// All repositories on one connection pool. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct SqlStore {
    db: DatabaseConnection,
    /// The active list's reads on PostgreSQL; `None` on SQLite, and for a URL only sqlx reads.
    active: Option<Arc<active::ActiveReads>>,
}

impl ensinalab_ports::Store for SqlStore {}

impl SqlStore {
    /// Connects to `url`: `postgres://user@host:port/db`, `sqlite://path.db?mode=rwc`, or
    /// `sqlite::memory:`. An in-memory SQLite database lives as long as its connection, so the
    /// store then keeps exactly one connection for its whole life (and callers share it).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached within about 5 s;
    /// [`StoreError::Other`] for an unusable URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_timeout(ACQUIRE_TIMEOUT)
            // A ping on every checkout would double the round trips of every query; only a
            // connection idle long enough to have been dropped by the server is checked.
            .test_before_acquire_if_idle_for(STALE_AFTER)
            .sqlx_logging(false)
            // sqlx prepares every statement. Each one here is keyed by an indexed id, user_id or
            // task_id, so one generic plan is right for all; PostgreSQL's default (`auto`) kept
            // re-planning the active list per request (docs/benchmarks.md, "generic plans").
            // Sent in the startup packet: no extra round trip.
            .map_sqlx_postgres_opts(|pg| pg.options([("plan_cache_mode", "force_generic_plan")]));
        if is_sqlite_memory(url) {
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            options.max_connections(MAX_CONNECTIONS).min_connections(0);
        }
        let db = Database::connect(options).await.map_err(classify)?;
        let active = (db.get_database_backend() == sea_orm::DbBackend::Postgres)
            .then(|| active::ActiveReads::new(url, ACTIVE_CONNECTIONS, ACQUIRE_TIMEOUT))
            .flatten()
            .map(Arc::new);
        Ok(Self { db, active })
    }

    /// Applies every pending migration of `ensinalab-migration`.
    ///
    /// # Errors
    /// [`StoreError`] when a migration fails or the database is unreachable.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await.map_err(classify)
    }

    /// Checks that the database answers (readiness probe).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(classify)
    }

    /// Runs one statement written for this store's backend; the rows it touched.
    pub(crate) async fn execute(
        &self,
        sql: impl Into<String>,
        values: impl IntoIterator<Item = sea_orm::Value>,
    ) -> Result<u64, StoreError> {
        let backend = self.db.get_database_backend();
        self.db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await
            .map(|done| done.rows_affected())
            .map_err(classify)
    }
}

fn is_sqlite_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    #[tokio::test]
    async fn postgres_sessions_use_one_generic_plan_per_statement() {
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let store = SqlStore::connect(&url).await.unwrap();
        let show = Statement::from_string(DbBackend::Postgres, "SHOW plan_cache_mode");
        let row = store.db.query_one_raw(show).await.unwrap().unwrap();
        let mode: String = row.try_get("", "plan_cache_mode").unwrap();
        assert_eq!(mode, "force_generic_plan");
    }

    #[test]
    fn only_in_memory_sqlite_urls_are_treated_as_in_memory() {
        for (url, memory) in [
            ("sqlite::memory:", true),
            ("sqlite://file:x?mode=memory&cache=shared", true),
            ("sqlite://ensinalab.db?mode=rwc", false),
            ("postgres://postgres@127.0.0.1:5432/postgres", false),
        ] {
            assert_eq!(is_sqlite_memory(url), memory, "{url}");
        }
    }
}
