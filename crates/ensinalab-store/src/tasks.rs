//! The `Tasks` port: reads across briefings and videos (one `UNION ALL` of both tables), and
//! cancel-all.

use std::sync::OnceLock;

use ensinalab_domain::{
    BriefingId, BriefingStatus, Cancel, Lifecycle, ResourceKind, TaskId, UserId, VideoId,
    VideoStatus,
};
use ensinalab_ports::{
    ActivePage, ActiveRows, CancelledAll, ExpiredJob, InFlightTask, ResourceRef, StoreError, Tasks,
};
use sea_orm::sea_query::{Condition, Expr, Order, Query, SelectStatement, UnionType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, FromQueryResult,
    QueryFilter, QueryResult, QueryTrait, Statement, TransactionTrait, UpdateMany, Value,
};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::convert::{self, Moved, UnionRow};
use crate::entity::{briefing, video};
use crate::error::classify;
use crate::guarded::{Table, cancel_write, wire};
use crate::owe::{Owe, owe_revokes};
use crate::postgres;
use crate::slots::literals;

/// A row of [`task_rows`] as sea-orm reads it; [`TaskRow::union`] lends it to the one decoder.
/// Columns are read by position: a by-name read formats and looks up each column's name
/// (docs/benchmarks.md, "reading rows").
#[derive(Debug)]
struct TaskRow {
    kind: String,
    id: i64,
    user_id: i64,
    title: String,
    status: String,
    progress: Option<f64>,
    generator_type: Option<String>,
    task_id: Option<String>,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
}

impl FromQueryResult for TaskRow {
    fn from_query_result(row: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            kind: row.try_get_by_index(0)?,
            id: row.try_get_by_index(1)?,
            user_id: row.try_get_by_index(2)?,
            title: row.try_get_by_index(3)?,
            status: row.try_get_by_index(4)?,
            progress: row.try_get_by_index(5)?,
            generator_type: row.try_get_by_index(6)?,
            task_id: row.try_get_by_index(7)?,
            created_at: row.try_get_by_index(8)?,
            started_at: row.try_get_by_index(9)?,
        })
    }
}

impl TaskRow {
    /// The row as the reconciler's sweep reads it.
    fn in_flight(self) -> Result<Option<InFlightTask>, StoreError> {
        let started = self.started_at.is_some();
        self.union(|row| row.into_in_flight(started))
    }

    /// Decodes through `decode`, which gets the row as a [`UnionRow`].
    fn union<T>(self, decode: impl FnOnce(UnionRow<'_>) -> T) -> T {
        let Self {
            kind,
            id,
            user_id,
            title,
            status,
            progress,
            generator_type,
            task_id,
            created_at,
            started_at: _,
        } = self;
        decode(UnionRow {
            kind: &kind,
            id,
            user_id,
            title,
            status: &status,
            progress,
            generator_type,
            task_id: task_id.as_deref(),
            created_at,
        })
    }
}

/// `SELECT` briefings `UNION ALL` videos in the shape of [`UnionRow`], each side filtered by its
/// own condition; the caller orders and limits the whole.
pub(crate) fn task_rows(briefings: Condition, videos: Condition) -> SelectStatement {
    let mut b = Query::select();
    b.expr_as(Expr::val(ResourceKind::Briefing.as_str()), "kind")
        .column(briefing::Column::Id)
        .column(briefing::Column::UserId)
        .column(briefing::Column::Title)
        .column(briefing::Column::Status)
        .expr_as(Expr::val(Option::<f64>::None), "progress")
        .expr_as(Expr::val(Option::<String>::None), "generator_type")
        .column(briefing::Column::TaskId)
        .column(briefing::Column::CreatedAt)
        .column(briefing::Column::StartedAt)
        .from(briefing::Entity)
        .cond_where(briefings);
    let mut v = Query::select();
    v.expr_as(Expr::val(ResourceKind::Video.as_str()), "kind")
        .column(video::Column::Id)
        .column(video::Column::UserId)
        .column(video::Column::Title)
        .column(video::Column::Status)
        .column(video::Column::Progress)
        .column(video::Column::GeneratorType)
        .column(video::Column::TaskId)
        .column(video::Column::CreatedAt)
        .column(video::Column::StartedAt)
        .from(video::Entity)
        .cond_where(videos);
    b.union(UnionType::All, v);
    b
}

/// The statement of [`Tasks::active`] on `backend`, built once (building it per request cost
/// more than decoding its rows: docs/benchmarks.md, "the active list"). Binds: `$1` the user,
/// `$2, $3, $4` the position the page starts after (`created_at`, kind, id; all null for the
/// first page), `$5` how many rows. Every row carries the whole list's counts, and an empty
/// page is one row of counts whose other columns are null. The statuses are the domain's
/// cancellable sets, written as literals.
pub fn active_sql(backend: DbBackend) -> &'static str {
    static BUILT: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    let postgres = backend == DbBackend::Postgres;
    BUILT[usize::from(postgres)].get_or_init(|| {
        // SQLite keeps timestamps as RFC 3339 text, whose order is not time order within a
        // second (`05Z` after `05.5Z`): it orders and compares by julianday() instead.
        let (kind, none_f64, none_text, time, after_time, first_page) = if postgres {
            (
                "'briefing'::text",
                "NULL::float8",
                "NULL::text",
                "created_at",
                "$2",
                "$2::timestamptz IS NULL",
            )
        } else {
            (
                "'briefing'",
                "NULL",
                "NULL",
                "julianday(created_at)",
                "julianday($2)",
                "$2 IS NULL",
            )
        };
        format!(
            "WITH a AS (\
             SELECT {kind} AS kind, id, user_id, title, status, {none_f64} AS progress, \
             {none_text} AS generator_type, task_id, created_at, {time} AS t FROM briefings \
             WHERE user_id = $1 AND status IN ({briefings}) \
             UNION ALL SELECT 'video', id, user_id, title, status, progress, generator_type, \
             task_id, created_at, {time} FROM videos \
             WHERE user_id = $1 AND status IN ({videos})), \
             n AS (SELECT count(*) FILTER (WHERE kind = 'briefing') AS briefings, \
             count(*) FILTER (WHERE kind = 'video') AS videos FROM a) \
             SELECT a.kind, a.id, a.user_id, a.title, a.status, a.progress, a.generator_type, \
             a.task_id, a.created_at, n.briefings, n.videos \
             FROM n LEFT JOIN a ON {first_page} OR (a.t, a.kind, a.id) < ({after_time}, $3, $4) \
             ORDER BY a.t DESC, a.kind DESC, a.id DESC LIMIT $5",
            briefings = literals(<BriefingStatus as Lifecycle>::CANCELLABLE),
            videos = literals(<VideoStatus as Lifecycle>::CANCELLABLE),
        )
    })
}

/// The binds of [`active_sql`] after the user: the page's start and size (one more row than
/// asked, which says whether a next page exists).
pub(crate) fn page_binds(
    page: &ActivePage,
) -> (
    Option<OffsetDateTime>,
    Option<&'static str>,
    Option<i64>,
    i64,
) {
    let after = page.after;
    (
        after.map(|p| p.created_at),
        after.map(|p| p.kind.as_str()),
        after.map(|p| p.id),
        i64::from(page.limit) + 1,
    )
}

impl SqlStore {
    /// The rows of a union query, each decoded by `decode`.
    async fn union_rows<T>(
        &self,
        statement: Statement,
        decode: impl Fn(TaskRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        TaskRow::find_by_statement(statement)
            .all(&self.db)
            .await
            .map_err(classify)?
            .into_iter()
            .map(decode)
            .collect()
    }
}

/// A row a cancel of many moved.
struct MovedRow {
    resource: ResourceRef,
    task_id: Option<TaskId>,
    started_at: Option<OffsetDateTime>,
}

/// The rows `cancel`, narrowed by `which`, moves in `T`, sorted by id.
async fn cancel_rows<T: Table>(
    txn: &DatabaseTransaction,
    cancel: &Cancel<T::Status>,
    which: Condition,
) -> Result<Vec<MovedRow>, StoreError> {
    let kind = <T::Status as Lifecycle>::KIND;
    let update: UpdateMany<T> = cancel_write::<T>(cancel).filter(which);
    let mut query = update.into_query();
    query.returning(Query::returning().columns([T::ID, T::TASK_ID, T::USER_ID, T::STARTED_AT]));
    let rows = txn
        .query_all_raw(txn.get_database_backend().build(&query))
        .await
        .map_err(classify)?;
    let mut moved = rows
        .iter()
        .map(|row| {
            let id: i64 = row.try_get_by_index(0).map_err(classify)?;
            let task: Option<String> = row.try_get_by_index(1).map_err(classify)?;
            let user_id: i64 = row.try_get_by_index(2).map_err(classify)?;
            let started_at: Option<OffsetDateTime> = row.try_get_by_index(3).map_err(classify)?;
            let (id, task_id) = convert::moved(kind, id, task.as_deref())?;
            Ok(MovedRow {
                resource: ResourceRef {
                    kind,
                    id,
                    user_id: UserId(user_id),
                },
                task_id,
                started_at: started_at.map(convert::utc),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    moved.sort_by_key(|m| m.resource.id);
    Ok(moved)
}

/// The revokes `moved` owe.
fn owed(moved: &[MovedRow]) -> Vec<Owe> {
    moved
        .iter()
        .filter_map(|m| {
            Some(Owe::new(
                m.task_id.clone()?,
                (m.resource.kind, m.resource.id),
            ))
        })
        .collect()
}

/// Rows of `T` a worker started before `before`.
fn started_before<T: Table>(backend: DbBackend, before: OffsetDateTime) -> Condition {
    let condition = Condition::all();
    if backend == DbBackend::Sqlite {
        // SQLite keeps RFC 3339 text, whose order is not time order within a second.
        return condition.add(Expr::cust_with_values(
            "julianday(started_at) < julianday(?)",
            [before],
        ));
    }
    condition.add(T::STARTED_AT.lt(before))
}

impl Tasks for SqlStore {
    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn active(&self, user: UserId, page: &ActivePage) -> Result<ActiveRows, StoreError> {
        if let Some(reads) = &self.active {
            return reads.page(user, page).await;
        }
        let backend = self.db.get_database_backend();
        if backend == DbBackend::Postgres {
            return postgres::active(self.db.get_postgres_connection_pool(), user, page).await;
        }
        let (at, kind, id, limit) = page_binds(page);
        let values: [Value; 5] = [
            user.get().into(),
            at.into(),
            kind.into(),
            id.into(),
            limit.into(),
        ];
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                active_sql(backend),
                values,
            ))
            .await
            .map_err(classify)?;
        let mut out = ActiveRows::default();
        for row in &rows {
            let column = |e| classify(e);
            out.briefings = count(row.try_get_by_index(9).map_err(column)?);
            out.videos = count(row.try_get_by_index(10).map_err(column)?);
            let Some(kind) = row.try_get_by_index::<Option<String>>(0).map_err(column)? else {
                continue;
            };
            let status: String = row.try_get_by_index(4).map_err(column)?;
            let task_id: Option<String> = row.try_get_by_index(7).map_err(column)?;
            out.rows.push(
                UnionRow {
                    kind: &kind,
                    id: row.try_get_by_index(1).map_err(column)?,
                    user_id: row.try_get_by_index(2).map_err(column)?,
                    title: row.try_get_by_index(3).map_err(column)?,
                    status: &status,
                    progress: row.try_get_by_index(5).map_err(column)?,
                    generator_type: row.try_get_by_index(6).map_err(column)?,
                    task_id: task_id.as_deref(),
                    created_at: row.try_get_by_index(8).map_err(column)?,
                }
                .into_active()?,
            );
        }
        Ok(out)
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn resource_for_task(&self, task_id: &TaskId) -> Result<Option<ResourceRef>, StoreError> {
        let mut query = task_rows(
            Condition::all().add(briefing::Column::TaskId.eq(task_id.as_str())),
            Condition::all().add(video::Column::TaskId.eq(task_id.as_str())),
        );
        query.order_by("kind", Order::Asc).limit(1);
        let statement = self.db.get_database_backend().build(&query);
        let rows = self
            .union_rows(statement, |row| row.union(|u| u.resource()))
            .await?;
        Ok(rows.into_iter().next())
    }

    #[tracing::instrument(level = "debug", skip(self, briefings, videos), err)]
    async fn cancel_all(
        &self,
        user: UserId,
        briefings: &Cancel<BriefingStatus>,
        videos: &Cancel<VideoStatus>,
    ) -> Result<CancelledAll, StoreError> {
        let user = user.get();
        let txn = self.db.begin().await.map_err(classify)?;
        let (briefings, videos) = match txn.get_database_backend() {
            DbBackend::Postgres => postgres::cancel_all(&txn, user, briefings, videos).await?,
            _ => {
                let b = Condition::all().add(briefing::Column::UserId.eq(user));
                let v = Condition::all().add(video::Column::UserId.eq(user));
                let b = cancel_rows::<briefing::Entity>(&txn, briefings, b).await?;
                let v = cancel_rows::<video::Entity>(&txn, videos, v).await?;
                owe_revokes(&txn, &[owed(&b), owed(&v)].concat()).await?;
                let pairs = |rows: Vec<MovedRow>| -> Vec<Moved> {
                    rows.into_iter()
                        .map(|m| (m.resource.id, m.task_id))
                        .collect()
                };
                (pairs(b), pairs(v))
            }
        };
        txn.commit().await.map_err(classify)?;
        Ok(CancelledAll {
            briefings: briefings
                .into_iter()
                .map(|(id, task)| (BriefingId(id), task))
                .collect(),
            videos: videos
                .into_iter()
                .map(|(id, task)| (VideoId(id), task))
                .collect(),
        })
    }

    #[tracing::instrument(level = "debug", skip(self, briefings, videos), err)]
    async fn cancel_expired(
        &self,
        briefings: &Cancel<BriefingStatus>,
        briefings_started_before: OffsetDateTime,
        videos: &Cancel<VideoStatus>,
        videos_started_before: OffsetDateTime,
    ) -> Result<Vec<ExpiredJob>, StoreError> {
        let backend = self.db.get_database_backend();
        let txn = self.db.begin().await.map_err(classify)?;
        let b = started_before::<briefing::Entity>(backend, briefings_started_before);
        let v = started_before::<video::Entity>(backend, videos_started_before);
        let mut moved = cancel_rows::<briefing::Entity>(&txn, briefings, b).await?;
        moved.extend(cancel_rows::<video::Entity>(&txn, videos, v).await?);
        owe_revokes(&txn, &owed(&moved)).await?;
        txn.commit().await.map_err(classify)?;
        moved
            .into_iter()
            .map(|m| {
                let started_at = m.started_at.ok_or_else(|| {
                    StoreError::Corrupt(format!("{:?} expired without a start", m.resource))
                })?;
                Ok(ExpiredJob {
                    resource: m.resource,
                    task_id: m.task_id,
                    started_at,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn in_flight(&self, limit: u32) -> Result<Vec<InFlightTask>, StoreError> {
        let mut query = task_rows(
            Condition::all()
                .add(briefing::Column::Status.is_in(wire(BriefingStatus::IN_FLIGHT)))
                .add(briefing::Column::TaskId.is_not_null()),
            Condition::all()
                .add(video::Column::Status.is_in(wire(VideoStatus::IN_FLIGHT)))
                .add(video::Column::TaskId.is_not_null()),
        );
        query
            .order_by("created_at", Order::Asc)
            .order_by("id", Order::Asc)
            .limit(u64::from(limit));
        let statement = self.db.get_database_backend().build(&query);
        let rows = self.union_rows(statement, TaskRow::in_flight).await?;
        Ok(rows.into_iter().flatten().collect())
    }
}

/// A count as the database returns it (never negative).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
