//! Fresh databases for tests, behind the `testing` feature (enable it in `[dev-dependencies]`
//! only). Tests run against real servers; nothing here skips when one is missing.
//!
//! - [`TestPostgres::new`] creates a uniquely named database on the server at
//!   `TEST_DATABASE_URL` (default [`DEFAULT_TEST_DATABASE_URL`]), migrates it, and drops it
//!   again: call [`TestPostgres::cleanup`] at the end of the test, and if the test panics first
//!   the guard's `Drop` drops the database anyway. `scripts/ensure-postgres.sh` (run by
//!   `scripts/test.sh`) makes sure the server is up.
//! - [`sqlite_memory`] gives a migrated store on a private in-memory SQLite database.
//! - [`security_events`] reads the trail back; [`execute`] runs raw SQL (to break a row);
//!   [`row_count`] counts a table's rows.
//!
//! ```no_run
//! use ensinalab_store::testing::TestPostgres;
//!
//! # async fn example() {
//! let db = TestPostgres::new().await.expect("PostgreSQL for tests");
//! let store = db.store().clone(); // or boot the app on `db.url()`
//! // ... the test ...
//! db.cleanup().await.expect("drop the test database");
//! # }
//! ```

use std::time::Duration;

use ensinalab_ports::{SecurityEvent, StoreError};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryOrder,
    Statement,
};

use crate::SqlStore as Store;
use crate::audit::stored_event;
use crate::entity::security_event;
use crate::error::classify;

/// The server the test databases are created on when `TEST_DATABASE_URL` is not set: the local
/// PostgreSQL that `scripts/ensure-postgres.sh` provides.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Every test database's name starts with this, so strays are easy to find:
/// `SELECT datname FROM pg_database WHERE datname LIKE 'ensinalab_test_%'`.
pub const TEST_DATABASE_PREFIX: &str = "ensinalab_test_";

/// A migrated store on a fresh in-memory SQLite database of its own.
///
/// # Errors
/// [`StoreError`] if SQLite or a migration fails.
pub async fn sqlite_memory() -> Result<Store, StoreError> {
    let store = Store::connect("sqlite::memory:").await?;
    store.migrate().await?;
    Ok(store)
}

/// Runs raw SQL on the store's database, for tests that must break a row on purpose (an
/// unknown status, say) or inspect what the ports do not expose.
///
/// # Errors
/// [`StoreError`] if the statement fails.
pub async fn execute(store: &Store, sql: &str) -> Result<(), StoreError> {
    store.db.execute_unprepared(sql).await.map_err(classify)?;
    Ok(())
}

/// How many rows `table` holds, for tests of what the ports do not expose (how a cancel's
/// revokes are written, say).
///
/// # Errors
/// [`StoreError`] if the query fails.
pub async fn row_count(store: &Store, table: &str) -> Result<i64, StoreError> {
    let backend = store.db.get_database_backend();
    let row = store
        .db
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT count(*) FROM {table}"),
        ))
        .await
        .map_err(classify)?
        .ok_or_else(|| StoreError::Other("count(*) returned no row".into()))?;
    row.try_get_by_index(0).map_err(classify)
}

/// The security trail, oldest first (the ports only append to it).
///
/// # Errors
/// [`StoreError`] on database failure; `Corrupt` for a row the ports could not have written.
pub async fn security_events(store: &Store) -> Result<Vec<SecurityEvent>, StoreError> {
    security_event::Entity::find()
        .order_by_asc(security_event::Column::Id)
        .all(&store.db)
        .await
        .map_err(classify)?
        .into_iter()
        .map(|row| Ok(stored_event(row)?.event))
        .collect()
}

/// A fresh, migrated PostgreSQL database that exists for one test.
#[derive(Debug)]
pub struct TestPostgres {
    store: Store,
    url: String,
    admin_url: String,
    name: String,
    /// Set once [`TestPostgres::cleanup`] has dropped the database, so `Drop` does nothing.
    dropped: bool,
}

impl TestPostgres {
    /// Creates `ensinalab_test_<uuid>` on the `TEST_DATABASE_URL` server and migrates it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server is not running (run
    /// `scripts/ensure-postgres.sh`), [`StoreError`] if creating or migrating fails.
    pub async fn new() -> Result<Self, StoreError> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned());
        let name = format!("{TEST_DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let url = with_database(&admin_url, &name);
        let admin = admin(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(classify)?;
        let _ = admin.close().await;
        // From here on the guard owns the database, so a failed migration still drops it.
        let mut guard = Self {
            store: Store::connect(&url).await?,
            url,
            admin_url,
            name,
            dropped: false,
        };
        if let Err(e) = guard.store.migrate().await {
            guard.dropped = drop_database(&guard.admin_url, &guard.name).await.is_ok();
            return Err(e);
        }
        Ok(guard)
    }

    /// The store on the test database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The test database's URL, e.g. for booting the application on it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now (terminating any connection still open to it). Prefer this at
    /// the end of a test: errors surface, and nothing blocks in `Drop`.
    ///
    /// # Errors
    /// [`StoreError`] if the database cannot be dropped.
    pub async fn cleanup(mut self) -> Result<(), StoreError> {
        drop_database(&self.admin_url, &self.name).await?;
        self.dropped = true;
        Ok(())
    }
}

impl Drop for TestPostgres {
    /// The fallback for a test that panicked before [`TestPostgres::cleanup`]: drops the database
    /// from a thread with its own runtime (a runtime cannot be blocked on from inside another),
    /// and waits for it so the process does not exit first.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(drop_database(&admin_url, &name)),
                Err(e) => Err(StoreError::Other(Box::new(e))),
            }
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: dropper panicked",
                self.name
            ),
        }
    }
}

async fn admin(url: &str) -> Result<DatabaseConnection, StoreError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(options).await.map_err(classify)
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    let admin = admin(admin_url).await?;
    // FORCE (PostgreSQL 13+) ends the pools still connected to it, e.g. a clone of the store
    // held by a server the test booted.
    let result = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .map_err(classify);
    let _ = admin.close().await;
    result.map(|_| ())
}

/// `url` with its database (the path) replaced by `name`, query string kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_replaces_the_path_and_keeps_the_query() {
        for (url, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/t",
            ),
            (
                "postgres://u:p@localhost/postgres?sslmode=disable",
                "postgres://u:p@localhost/t?sslmode=disable",
            ),
            ("postgres://localhost:5432", "postgres://localhost:5432/t"),
        ] {
            assert_eq!(with_database(url, "t"), expected);
        }
    }
}
