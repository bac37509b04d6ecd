//! The active list on PostgreSQL, the one read every dashboard polls, through tokio-postgres
//! on connections of its own (docs/benchmarks.md, "the active list's driver"); sea-orm and its
//! pool serve every other statement, and SQLite reads the list through sea-orm.
//!
//! The common case is the first page, and with the per-user cap it nearly always holds the
//! whole list: one plain `UNION ALL ... ORDER BY ... LIMIT page + 1` ([`first_page_sql`]), whose
//! rows are also the counts. Only when a next page exists is the list counted, by a second
//! statement ([`count_sql`]); a later page is the keyset statement [`crate::active_sql`], which
//! carries the counts itself (docs/benchmarks.md, "the plain statement").

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ensinalab_domain::{BriefingStatus, Lifecycle, ResourceKind, UserId, VideoStatus};
use ensinalab_ports::{ActivePage, ActiveResource, ActiveRows, StoreError};
use sea_orm::DbBackend;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use crate::convert::UnionRow;
use crate::slots::literals;
use crate::tasks::{active_sql, count, page_binds};

/// The first page of a user's active list, newest first: `$1` the user, `$2` how many rows
/// (one more than the page, which says whether a next page exists). Plain: no counts, no
/// keyset, so PostgreSQL runs two index scans, an append and a top-N sort.
pub fn first_page_sql() -> &'static str {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| {
        format!(
            "SELECT 'briefing'::text AS kind, id, title, status, NULL::float8 AS progress, \
             NULL::text AS generator_type, task_id, created_at FROM briefings \
             WHERE user_id = $1 AND status IN ({briefings}) \
             UNION ALL SELECT 'video', id, title, status, progress, generator_type, task_id, \
             created_at FROM videos WHERE user_id = $1 AND status IN ({videos}) \
             ORDER BY created_at DESC, kind DESC, id DESC LIMIT $2",
            briefings = literals(<BriefingStatus as Lifecycle>::CANCELLABLE),
            videos = literals(<VideoStatus as Lifecycle>::CANCELLABLE),
        )
    })
}

/// The counts of a user's whole active list, `$1` the user: briefings, videos.
pub fn count_sql() -> &'static str {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| {
        format!(
            "SELECT (SELECT count(*) FROM briefings WHERE user_id = $1 AND status IN ({briefings})), \
             (SELECT count(*) FROM videos WHERE user_id = $1 AND status IN ({videos}))",
            briefings = literals(<BriefingStatus as Lifecycle>::CANCELLABLE),
            videos = literals(<VideoStatus as Lifecycle>::CANCELLABLE),
        )
    })
}

/// A few connections, each shared by every request that lands on it: tokio-postgres pipelines
/// the statements of concurrent requests on one connection, so a request takes no connection
/// out of a pool and gives none back (no checkout, no ping on return). Each thread keeps to one
/// connection, opened from that thread at its first use (and again after it closed), so the
/// connection's task runs on the thread whose requests it carries and a reply wakes no other
/// thread (as the Redis reads: docs/benchmarks.md, "per-thread read connections"); threads past
/// the number of connections share them.
pub(crate) struct ActiveReads {
    config: Config,
    slots: Box<[Slot]>,
}

/// This thread's place among the threads that read the list, in order of their first read.
fn home() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    HOME.with(|home| *home)
}

/// A connection's place: the open session, and a lock taken only to open it, so requests
/// arriving together on a closed slot open one connection, not one each.
#[derive(Default)]
struct Slot {
    open: Mutex<Option<Arc<Session>>>,
    opening: tokio::sync::Mutex<()>,
}

/// One connection and its three statements, prepared when it opened.
struct Session {
    client: Client,
    first: Statement,
    count: Statement,
    paged: Statement,
}

impl fmt::Debug for ActiveReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveReads")
            .field("connections", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl ActiveReads {
    /// For `url`, `connections` of them, every session on generic plans (docs/benchmarks.md,
    /// "generic plans"); `None` when tokio-postgres cannot read the URL (a URL only sqlx
    /// understands), and the list then goes through sqlx.
    pub(crate) fn new(url: &str, connections: usize, timeout: Duration) -> Option<Self> {
        let mut config: Config = url.parse().ok()?;
        let options = match config.get_options() {
            Some(given) => format!("{given} -c plan_cache_mode=force_generic_plan"),
            None => "-c plan_cache_mode=force_generic_plan".to_owned(),
        };
        config.options(options);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        Some(Self {
            config,
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
        })
    }

    /// A page of `user`'s active list, as [`ensinalab_ports::Tasks::active`] returns it.
    pub(crate) async fn page(
        &self,
        user: UserId,
        page: &ActivePage,
    ) -> Result<ActiveRows, StoreError> {
        let session = self.session().await?;
        let (at, kind, id, limit) = page_binds(page);
        let user_id = user.get();
        if page.after.is_some() {
            let rows = session
                .client
                .query(&session.paged, &[&user_id, &at, &kind, &id, &limit])
                .await
                .map_err(classify)?;
            let mut out = ActiveRows::default();
            for row in &rows {
                out.briefings = count(row.try_get(9).map_err(classify)?);
                out.videos = count(row.try_get(10).map_err(classify)?);
                if row
                    .try_get::<_, Option<&str>>(0)
                    .map_err(classify)?
                    .is_some()
                {
                    out.rows.push(decode(row, user_id, 3)?);
                }
            }
            return Ok(out);
        }
        let rows = session
            .client
            .query(&session.first, &[&user_id, &limit])
            .await
            .map_err(classify)?;
        let mut out = ActiveRows {
            rows: Vec::with_capacity(rows.len()),
            ..ActiveRows::default()
        };
        for row in &rows {
            out.rows.push(decode(row, user_id, 2)?);
        }
        if rows.len() > page.limit as usize {
            // A next page exists: the page is not the whole list.
            let counts = session
                .client
                .query_one(&session.count, &[&user_id])
                .await
                .map_err(classify)?;
            out.briefings = count(counts.try_get(0).map_err(classify)?);
            out.videos = count(counts.try_get(1).map_err(classify)?);
        } else {
            for row in &out.rows {
                match row.status.kind() {
                    ResourceKind::Briefing => out.briefings += 1,
                    ResourceKind::Video => out.videos += 1,
                }
            }
        }
        Ok(out)
    }

    /// This thread's connection, opened (again) if it is not open.
    async fn session(&self) -> Result<Arc<Session>, StoreError> {
        let slot = &self.slots[home() % self.slots.len()];
        if let Some(session) = slot.get() {
            return Ok(session);
        }
        let _opening = slot.opening.lock().await;
        // Opened by another request while this one waited.
        if let Some(session) = slot.get() {
            return Ok(session);
        }
        let session = Arc::new(self.open().await?);
        *lock(&slot.open) = Some(Arc::clone(&session));
        Ok(session)
    }

    async fn open(&self) -> Result<Session, StoreError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(classify)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "active list connection closed");
            }
        });
        let (first, count, paged) = tokio::try_join!(
            client.prepare(first_page_sql()),
            client.prepare(count_sql()),
            client.prepare(active_sql(DbBackend::Postgres)),
        )
        .map_err(classify)?;
        Ok(Session {
            client,
            first,
            count,
            paged,
        })
    }
}

impl Slot {
    fn get(&self) -> Option<Arc<Session>> {
        lock(&self.open)
            .as_ref()
            .filter(|s| !s.client.is_closed())
            .map(Arc::clone)
    }
}

fn lock(slot: &Mutex<Option<Arc<Session>>>) -> std::sync::MutexGuard<'_, Option<Arc<Session>>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One row whose columns from `title` on start at `title` (the first-page statement has no
/// `user_id` column; the keyset one has it at 2): kind, id, then title, status, progress,
/// generator type, task id, created at. Text is read borrowed.
fn decode(row: &Row, user_id: i64, title: usize) -> Result<ActiveResource, StoreError> {
    let get = |e| classify(e);
    UnionRow {
        kind: row.try_get(0).map_err(get)?,
        id: row.try_get(1).map_err(get)?,
        user_id,
        title: row.try_get::<_, &str>(title).map_err(get)?.to_owned(),
        status: row.try_get(title + 1).map_err(get)?,
        progress: row.try_get(title + 2).map_err(get)?,
        generator_type: row
            .try_get::<_, Option<&str>>(title + 3)
            .map_err(get)?
            .map(str::to_owned),
        task_id: row.try_get(title + 4).map_err(get)?,
        created_at: row.try_get(title + 5).map_err(get)?,
    }
    .into_active()
}

/// Connection trouble is `Unavailable`: a closed connection, a failed connect, I/O or a connect
/// timeout, and the server's connection exceptions (08), shutdowns (57P) and too many
/// connections (53300); the rest is `Other`.
fn classify(err: tokio_postgres::Error) -> StoreError {
    let server_unavailable = err.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("08") || c.starts_with("57P") || c == "53300"
    });
    let io = std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>());
    let timeout = err.as_db_error().is_none() && err.to_string().starts_with("timeout");
    if err.is_closed() || server_unavailable || io || timeout {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Other(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_active_lists_sessions_use_generic_plans() {
        let db = crate::testing::TestPostgres::new().await.unwrap();
        let reads = ActiveReads::new(db.url(), 1, Duration::from_secs(5)).unwrap();
        let session = reads.session().await.unwrap();
        let row = session
            .client
            .query_one("SHOW plan_cache_mode", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "force_generic_plan");
        drop((session, reads));
        db.cleanup().await.unwrap();
    }

    #[test]
    fn a_url_only_sqlx_reads_leaves_the_list_to_sqlx() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres?statement-cache-capacity=10";
        assert!(ActiveReads::new(url, 1, Duration::from_secs(5)).is_none());
    }
}
