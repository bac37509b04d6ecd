//! The port implementations. Every status change is a single conditional statement whose
//! `WHERE` carries the guard (`status IN (...)`), so concurrent writers cannot both win: the
//! database, not a read-then-write in Rust, decides the order.

use std::fmt::Display;
use std::str::FromStr;
use std::sync::OnceLock;

use ensinalab_domain::{
    BriefingDraft, BriefingId, BriefingStatus, OptionId, ResourceKind, TaskId, UserId, VideoId,
    VideoStatus,
};
use ensinalab_ports::{
    ActiveResource, AnyStatus, Briefing, BriefingOption, BriefingUpdate, Briefings,
    CANCELLED_BY_USER, Caller, CancelledAll, InFlightTask, NewVideo, ResourceRef, SecurityEvent,
    SecurityLog, StoreError, Tasks, Transition, Video, VideoUpdate, Videos,
};
use sea_orm::sea_query::{
    Alias, CommonTableExpression, Condition, Expr, Order, Query, SelectStatement,
    SubQueryStatement, UnionType, WithClause,
};
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, FromQueryResult, NotSet, PrimaryKeyTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, QueryTrait, Set, Statement, TransactionTrait, UpdateMany,
    Value,
};
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{self, now};
use crate::entity::{briefing, option, security_event, video};
use crate::error::{classify, classify_sqlx};
use crate::outbox::{Owe, owe_returned, owe_revokes};

/// A cancel whose update matched nothing reads the row once to say why. If that read finds the
/// row cancellable after all (a briefing moved from `pending` to `processing` in between), the
/// cancel is tried again, at most this many times in all.
const CANCEL_ATTEMPTS: usize = 3;

fn wire<S: Copy + Display>(statuses: &[S]) -> Vec<String> {
    statuses.iter().map(ToString::to_string).collect()
}

fn duration_column(minutes: u32) -> Result<i32, StoreError> {
    i32::try_from(minutes)
        .map_err(|_| StoreError::Other(format!("duration_minutes {minutes} out of range").into()))
}

/// A user's cancel of one row. `update` is the guarded cancel already narrowed to the row's id
/// and owner; when it matches nothing, one read of the row's `(owner, status)` columns says why:
/// no row, someone else's, or a status that may not be cancelled. The revoke the moved row owes
/// (`owe`) is recorded in the same transaction as the update.
#[allow(clippy::too_many_arguments)]
async fn cancel_one<E, T, S>(
    db: &DatabaseConnection,
    id: i64,
    user: UserId,
    update: UpdateMany<E>,
    (owner, status): (E::Column, E::Column),
    convert: fn(E::Model) -> Result<T, StoreError>,
    cancellable: fn(S) -> bool,
    owe: fn(&T) -> Option<Owe>,
) -> Result<Transition<T, S>, StoreError>
where
    E: EntityTrait,
    i64: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    S: FromStr + Copy,
    S::Err: Display,
{
    let table = E::default().table_name();
    for _ in 0..CANCEL_ATTEMPTS {
        let txn = db.begin().await.map_err(classify)?;
        let moved = update
            .clone()
            .exec_with_returning(&txn)
            .await
            .map_err(classify)?;
        if let Some(row) = moved.into_iter().next() {
            let row = convert(row)?;
            owe_revokes(&txn, owe(&row).as_slice()).await?;
            txn.commit().await.map_err(classify)?;
            return Ok(Transition::Done(row));
        }
        // Nothing was written: end the transaction before reading (an in-memory SQLite store
        // has a single connection).
        txn.rollback().await.map_err(classify)?;
        let current = E::find_by_id(id)
            .select_only()
            .column(owner)
            .column(status)
            .into_tuple::<(i64, String)>()
            .one(db)
            .await
            .map_err(classify)?;
        let Some((owner, raw)) = current else {
            return Ok(Transition::NotFound);
        };
        if owner != user.get() {
            return Ok(Transition::NotOwned);
        }
        let current: S = convert::status(table, id, &raw)?;
        if !cancellable(current) {
            return Ok(Transition::Refused(current));
        }
        // Cancellable after all: the row moved between the update and the read; try again.
    }
    Err(StoreError::Other(
        format!("{table} {id} kept changing status during a cancel").into(),
    ))
}

impl Briefings for Store {
    #[tracing::instrument(skip(self, draft), err)]
    async fn create_briefing(
        &self,
        user: UserId,
        draft: &BriefingDraft,
        task_id: &TaskId,
    ) -> Result<Briefing, StoreError> {
        let now = now();
        let row = briefing::ActiveModel {
            id: NotSet,
            user_id: Set(user.get()),
            title: Set(draft.title().to_owned()),
            description: Set(draft.description().to_owned()),
            duration_minutes: Set(duration_column(draft.duration_minutes())?),
            status: Set(BriefingStatus::Processing.as_str().to_owned()),
            task_id: Set(Some(task_id.as_str().to_owned())),
            error_message: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .map_err(classify)?;
        convert::briefing(row)
    }

    #[tracing::instrument(skip(self), err)]
    async fn briefing(
        &self,
        user: UserId,
        id: BriefingId,
    ) -> Result<Option<(Briefing, Vec<BriefingOption>)>, StoreError> {
        let Some(row) = briefing::Entity::find_by_id(id.get())
            .filter(briefing::Column::UserId.eq(user.get()))
            .one(&self.db)
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let options = option::Entity::find()
            .filter(option::Column::BriefingId.eq(row.id))
            .order_by_asc(option::Column::Id)
            .all(&self.db)
            .await
            .map_err(classify)?;
        Ok(Some((
            convert::briefing(row)?,
            options.into_iter().map(convert::option).collect(),
        )))
    }

    #[tracing::instrument(skip(self), err)]
    async fn option(
        &self,
        user: UserId,
        id: OptionId,
    ) -> Result<Option<(Briefing, BriefingOption)>, StoreError> {
        let row = option::Entity::find_by_id(id.get())
            .find_also_related(briefing::Entity)
            .filter(briefing::Column::UserId.eq(user.get()))
            .one(&self.db)
            .await
            .map_err(classify)?;
        match row {
            Some((option, Some(briefing))) => Ok(Some((
                convert::briefing(briefing)?,
                convert::option(option),
            ))),
            _ => Ok(None),
        }
    }

    #[tracing::instrument(skip(self), err)]
    async fn cancel_briefing(
        &self,
        user: UserId,
        id: BriefingId,
    ) -> Result<Transition<Briefing, BriefingStatus>, StoreError> {
        let update = cancel_briefings()
            .filter(briefing::Column::Id.eq(id.get()))
            .filter(briefing::Column::UserId.eq(user.get()));
        let columns = (briefing::Column::UserId, briefing::Column::Status);
        cancel_one(
            &self.db,
            id.get(),
            user,
            update,
            columns,
            convert::briefing,
            BriefingStatus::is_cancellable,
            |b| {
                let task_id = b.task_id.clone()?;
                Some(Owe {
                    task_id,
                    resource: (ResourceKind::Briefing, b.id.get()),
                })
            },
        )
        .await
    }

    #[tracing::instrument(skip(self), err)]
    async fn apply_briefing_update(
        &self,
        id: BriefingId,
        update: &BriefingUpdate,
    ) -> Result<bool, StoreError> {
        let guarded = |status: BriefingStatus| {
            briefing::Entity::update_many()
                .col_expr(briefing::Column::Status, Expr::value(status.as_str()))
                .col_expr(briefing::Column::UpdatedAt, Expr::value(now()))
                .filter(briefing::Column::Id.eq(id.get()))
                .filter(briefing::Column::Status.is_in(wire(BriefingStatus::IN_FLIGHT)))
        };
        let update = match update {
            BriefingUpdate::Running => guarded(BriefingStatus::Processing),
            BriefingUpdate::Failed(message) => guarded(BriefingStatus::Failed)
                .col_expr(briefing::Column::ErrorMessage, Expr::value(message.clone())),
            BriefingUpdate::Revoked => guarded(BriefingStatus::Cancelled),
            BriefingUpdate::OptionsReady(options) => {
                // The status and the options land together or not at all.
                let txn = self.db.begin().await.map_err(classify)?;
                let changed = guarded(BriefingStatus::OptionsReady)
                    .exec(&txn)
                    .await
                    .map_err(classify)?
                    .rows_affected
                    == 1;
                if changed && !options.is_empty() {
                    let created_at = now();
                    let rows = options.iter().map(|o| option::ActiveModel {
                        id: NotSet,
                        briefing_id: Set(id.get()),
                        title: Set(o.title.clone()),
                        description: Set(o.description.clone()),
                        generator_type: Set(o.generator_type.clone()),
                        created_at: Set(created_at),
                    });
                    option::Entity::insert_many(rows)
                        .exec(&txn)
                        .await
                        .map_err(classify)?;
                }
                txn.commit().await.map_err(classify)?;
                return Ok(changed);
            }
        };
        let result = update.exec(&self.db).await.map_err(classify)?;
        Ok(result.rows_affected == 1)
    }
}

impl Videos for Store {
    #[tracing::instrument(skip(self), err)]
    async fn create_video(&self, new: &NewVideo) -> Result<Video, StoreError> {
        let now = now();
        let row = video::ActiveModel {
            id: NotSet,
            user_id: Set(new.user_id.get()),
            briefing_id: Set(new.briefing_id.get()),
            option_id: Set(new.option_id.get()),
            title: Set(new.title.clone()),
            generator_type: Set(new.generator_type.clone()),
            status: Set(VideoStatus::Queued.as_str().to_owned()),
            progress: Set(0.0),
            task_id: Set(Some(new.task_id.as_str().to_owned())),
            error_message: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .map_err(classify)?;
        convert::video(row)
    }

    #[tracing::instrument(skip(self), err)]
    async fn video(&self, user: UserId, id: VideoId) -> Result<Option<Video>, StoreError> {
        video::Entity::find_by_id(id.get())
            .filter(video::Column::UserId.eq(user.get()))
            .one(&self.db)
            .await
            .map_err(classify)?
            .map(convert::video)
            .transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn cancel_video(
        &self,
        user: UserId,
        id: VideoId,
    ) -> Result<Transition<Video, VideoStatus>, StoreError> {
        let update = cancel_videos()
            .filter(video::Column::Id.eq(id.get()))
            .filter(video::Column::UserId.eq(user.get()));
        let columns = (video::Column::UserId, video::Column::Status);
        cancel_one(
            &self.db,
            id.get(),
            user,
            update,
            columns,
            convert::video,
            VideoStatus::is_cancellable,
            |v| {
                let task_id = v.task_id.clone()?;
                Some(Owe {
                    task_id,
                    resource: (ResourceKind::Video, v.id.get()),
                })
            },
        )
        .await
    }

    #[tracing::instrument(skip(self), err)]
    async fn apply_video_update(
        &self,
        id: VideoId,
        update: &VideoUpdate,
    ) -> Result<bool, StoreError> {
        let guarded = |status: VideoStatus| {
            video::Entity::update_many()
                .col_expr(video::Column::Status, Expr::value(status.as_str()))
                .col_expr(video::Column::UpdatedAt, Expr::value(now()))
                .filter(video::Column::Id.eq(id.get()))
                .filter(video::Column::Status.is_in(wire(VideoStatus::IN_FLIGHT)))
        };
        let update = match update {
            VideoUpdate::Running { progress } => guarded(VideoStatus::Processing)
                .col_expr(video::Column::Progress, Expr::value(*progress)),
            VideoUpdate::Finished(status) => {
                guarded(*status).col_expr(video::Column::Progress, Expr::value(1.0))
            }
            VideoUpdate::Failed(message) => guarded(VideoStatus::Failed)
                .col_expr(video::Column::ErrorMessage, Expr::value(message.clone())),
            VideoUpdate::Revoked => guarded(VideoStatus::Cancelled),
        };
        let result = update.exec(&self.db).await.map_err(classify)?;
        Ok(result.rows_affected == 1)
    }
}

/// A moved row of a cancel of many rows: `(id, task_id)`, the only two columns the revokes need
/// (`RETURNING *` of 1,000 rows cost more to decode than the update took to build).
type Moved = (i64, Option<TaskId>);

/// The [`Moved`] whose `id` is column `first` of `row` and `task_id` the next.
fn moved_row(table: &str, row: &QueryResult, first: usize) -> Result<Moved, StoreError> {
    let id: i64 = row.try_get_by_index(first).map_err(classify)?;
    let task: Option<String> = row.try_get_by_index(first + 1).map_err(classify)?;
    Ok((id, convert::task_id(table, id, task.as_deref())?))
}

/// Runs a cancel of many rows and returns the rows it moved, sorted by id.
async fn moved<E: EntityTrait>(
    txn: &DatabaseTransaction,
    update: UpdateMany<E>,
    (id, task_id): (E::Column, E::Column),
) -> Result<Vec<Moved>, StoreError> {
    let table = E::default().table_name();
    let mut query = update.into_query();
    query.returning(Query::returning().columns([id, task_id]));
    let rows = txn
        .query_all_raw(txn.get_database_backend().build(&query))
        .await
        .map_err(classify)?;
    let mut moved = rows
        .iter()
        .map(|row| moved_row(table, row, 0))
        .collect::<Result<Vec<_>, StoreError>>()?;
    moved.sort_by_key(|(id, _)| *id);
    Ok(moved)
}

/// The revokes owed for the moved rows of one kind that have a task.
fn owes(moved: &[Moved], kind: ResourceKind) -> impl Iterator<Item = Owe> + '_ {
    moved.iter().filter_map(move |(id, task)| {
        Some(Owe {
            task_id: task.clone()?,
            resource: (kind, *id),
        })
    })
}

/// PostgreSQL: cancel-all's two cancels and the revokes they owe as one data-modifying `WITH`
/// (`briefings` and `videos` moved, sorted by id). The generic path sends the moved rows back as
/// JSON for the revoke batch, which PostgreSQL took 3.5 ms to read for 1,000 jobs, plus two
/// round trips; here they never leave the database. SQLite has no `UPDATE` inside `WITH`.
async fn cancel_all_owing(
    txn: &DatabaseTransaction,
    user: i64,
) -> Result<(Vec<Moved>, Vec<Moved>), StoreError> {
    let mut briefings = cancel_briefings()
        .filter(briefing::Column::UserId.eq(user))
        .into_query();
    briefings
        .returning(Query::returning().columns([briefing::Column::Id, briefing::Column::TaskId]));
    let mut videos = cancel_videos()
        .filter(video::Column::UserId.eq(user))
        .into_query();
    videos.returning(Query::returning().columns([video::Column::Id, video::Column::TaskId]));
    let owe = owe_returned(&[("b", ResourceKind::Briefing), ("v", ResourceKind::Video)])?;
    let cte = |name: &str, query: SubQueryStatement| {
        CommonTableExpression::new()
            .query(query)
            .table_name(Alias::new(name))
            .to_owned()
    };
    let returned = |name: &str, kind: ResourceKind| {
        Query::select()
            .expr(Expr::val(kind.as_str()))
            .columns([Alias::new("id"), Alias::new("task_id")])
            .from(Alias::new(name))
            .to_owned()
    };
    let mut select = returned("b", ResourceKind::Briefing);
    select.union(UnionType::All, returned("v", ResourceKind::Video));
    let query = WithClause::new()
        .cte(cte("b", briefings.into()))
        .cte(cte("v", videos.into()))
        .cte(cte("owed", owe.into()))
        .to_owned()
        .query(select);
    let rows = txn
        .query_all_raw(DbBackend::Postgres.build(&query))
        .await
        .map_err(classify)?;
    let (mut briefings, mut videos) = (Vec::new(), Vec::new());
    for row in &rows {
        let kind: String = row.try_get_by_index(0).map_err(classify)?;
        if kind == ResourceKind::Briefing.as_str() {
            briefings.push(moved_row("briefings", row, 1)?);
        } else {
            videos.push(moved_row("videos", row, 1)?);
        }
    }
    briefings.sort_by_key(|(id, _)| *id);
    videos.sort_by_key(|(id, _)| *id);
    Ok((briefings, videos))
}

/// The owner's cancel of videos, guarded by [`VideoStatus::CANCELLABLE`]; callers narrow it.
fn cancel_videos() -> sea_orm::UpdateMany<video::Entity> {
    video::Entity::update_many()
        .col_expr(
            video::Column::Status,
            Expr::value(VideoStatus::Cancelled.as_str()),
        )
        .col_expr(video::Column::ErrorMessage, Expr::value(CANCELLED_BY_USER))
        .col_expr(video::Column::Progress, Expr::value(0.0))
        .col_expr(video::Column::UpdatedAt, Expr::value(now()))
        .filter(video::Column::Status.is_in(wire(VideoStatus::CANCELLABLE)))
}

/// The owner's cancel of briefings, guarded by [`BriefingStatus::CANCELLABLE`].
fn cancel_briefings() -> sea_orm::UpdateMany<briefing::Entity> {
    briefing::Entity::update_many()
        .col_expr(
            briefing::Column::Status,
            Expr::value(BriefingStatus::Cancelled.as_str()),
        )
        .col_expr(briefing::Column::UpdatedAt, Expr::value(now()))
        .filter(briefing::Column::Status.is_in(wire(BriefingStatus::CANCELLABLE)))
}

/// One row of the briefings-and-videos union behind the cross-table reads, in the column order
/// of [`task_rows`].
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
}

/// Columns are read by position, not by name: sea-orm's by-name read formats each column's name
/// and sqlx then looks it up, which was 8% of the server's time for a 50-row list.
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
        })
    }
}

impl TaskRow {
    fn status(&self) -> Result<AnyStatus, StoreError> {
        any_status(&self.kind, self.id, &self.status)
    }

    fn task_id(&self) -> Result<Option<TaskId>, StoreError> {
        union_task_id(&self.kind, self.id, self.task_id.as_deref())
    }

    fn resource(&self, status: AnyStatus) -> ResourceRef {
        ResourceRef {
            kind: status.kind(),
            id: self.id,
            user_id: UserId(self.user_id),
        }
    }
}

/// The status of a row of the briefings-and-videos union, by its `kind` column.
fn any_status(kind: &str, id: i64, status: &str) -> Result<AnyStatus, StoreError> {
    match kind {
        "briefing" => Ok(AnyStatus::Briefing(convert::status(
            "briefings",
            id,
            status,
        )?)),
        "video" => Ok(AnyStatus::Video(convert::status("videos", id, status)?)),
        other => Err(StoreError::Corrupt(format!(
            "unknown resource kind {other:?}"
        ))),
    }
}

fn union_task_id(kind: &str, id: i64, task_id: Option<&str>) -> Result<Option<TaskId>, StoreError> {
    let table = if kind == "briefing" {
        "briefings"
    } else {
        "videos"
    };
    convert::task_id(table, id, task_id)
}

/// `SELECT` briefings `UNION ALL` videos in the shape of [`TaskRow`], each side filtered by its
/// own condition; the caller orders and limits the whole.
fn task_rows(briefings: Condition, videos: Condition) -> SelectStatement {
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
        .from(video::Entity)
        .cond_where(videos);
    b.union(UnionType::All, v);
    b
}

/// Marks the user's binds in [`active_statement`].
const ACTIVE_USER: i64 = i64::MIN;

/// The statement of [`Tasks::active`], its user's binds [`ACTIVE_USER`]. It is built once per
/// backend and only the user's binds change per request: building it through sea-query cost
/// more of the server's time than decoding the rows (about 8% of a one-row list's).
fn active_statement(backend: DbBackend) -> &'static Statement {
    static BUILT: [OnceLock<Statement>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[usize::from(backend == DbBackend::Postgres)].get_or_init(|| {
        let mut query = task_rows(
            Condition::all()
                .add(briefing::Column::UserId.eq(ACTIVE_USER))
                .add(briefing::Column::Status.is_in(wire(BriefingStatus::CANCELLABLE))),
            Condition::all()
                .add(video::Column::UserId.eq(ACTIVE_USER))
                .add(video::Column::Status.is_in(wire(VideoStatus::CANCELLABLE))),
        );
        query
            .order_by("created_at", Order::Desc)
            .order_by("id", Order::Desc);
        backend.build(&query)
    })
}

/// A bind of the active list's statement for `user`.
fn active_bind(value: &Value, user: UserId) -> Value {
    if *value == Value::BigInt(Some(ACTIVE_USER)) {
        Value::BigInt(Some(user.get()))
    } else {
        value.clone()
    }
}

/// PostgreSQL: the active list through sqlx itself, its text columns read borrowed. Through
/// sea-orm each of the 9 columns of a row cost about 700 instructions to read (a by-index
/// read, its type check, an owned `String`, error mapping): 22% of the server's time for a
/// 50-row list.
async fn active_on_postgres(
    pool: &sqlx::PgPool,
    user: UserId,
) -> Result<Vec<ActiveResource>, StoreError> {
    let statement = active_statement(DbBackend::Postgres);
    let mut query = sqlx::query(statement.sql.as_str());
    // the statement lives as long as the server: its text binds are borrowed, not cloned
    for value in statement.values.iter().flat_map(|v| &v.0) {
        query = match value {
            Value::BigInt(Some(ACTIVE_USER)) => query.bind(user.get()),
            Value::BigInt(i) => query.bind(*i),
            Value::String(s) => query.bind(s.as_deref()),
            Value::Double(d) => query.bind(*d),
            other => {
                return Err(StoreError::Other(
                    format!("active list: unexpected bind {other:?}").into(),
                ));
            }
        };
    }
    let rows = query.fetch_all(pool).await.map_err(classify_sqlx)?;
    rows.iter()
        .map(|row| {
            let kind: &str = row.try_get(0).map_err(classify_sqlx)?;
            let id: i64 = row.try_get(1).map_err(classify_sqlx)?;
            let status: &str = row.try_get(4).map_err(classify_sqlx)?;
            Ok(ActiveResource {
                status: any_status(kind, id, status)?,
                task_id: union_task_id(kind, id, row.try_get(7).map_err(classify_sqlx)?)?,
                id,
                title: row.try_get(3).map_err(classify_sqlx)?,
                progress: row.try_get(5).map_err(classify_sqlx)?,
                generator_type: row.try_get(6).map_err(classify_sqlx)?,
                created_at: convert::utc(row.try_get(8).map_err(classify_sqlx)?),
            })
        })
        .collect()
}

impl Store {
    async fn task_rows(&self, query: &SelectStatement) -> Result<Vec<TaskRow>, StoreError> {
        let statement = self.db.get_database_backend().build(query);
        TaskRow::find_by_statement(statement)
            .all(&self.db)
            .await
            .map_err(classify)
    }
}

impl Tasks for Store {
    #[tracing::instrument(skip(self), err)]
    async fn active(&self, user: UserId) -> Result<Vec<ActiveResource>, StoreError> {
        let backend = self.db.get_database_backend();
        let mut active = if backend == DbBackend::Postgres {
            active_on_postgres(self.db.get_postgres_connection_pool(), user).await?
        } else {
            let mut statement = active_statement(backend).clone();
            if let Some(values) = statement.values.as_mut() {
                for value in &mut values.0 {
                    *value = active_bind(value, user);
                }
            }
            TaskRow::find_by_statement(statement)
                .all(&self.db)
                .await
                .map_err(classify)?
                .into_iter()
                .map(|row| {
                    Ok(ActiveResource {
                        status: row.status()?,
                        task_id: row.task_id()?,
                        id: row.id,
                        title: row.title,
                        progress: row.progress,
                        generator_type: row.generator_type,
                        created_at: convert::utc(row.created_at),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?
        };
        // SQLite compares its RFC 3339 text, which misorders rows within one second (`05Z`
        // sorts after `05.5Z`); the list is one user's active rows, so sort it again here.
        active.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(active)
    }

    #[tracing::instrument(skip(self), err)]
    async fn resource_for_task(&self, task_id: &TaskId) -> Result<Option<ResourceRef>, StoreError> {
        let mut query = task_rows(
            Condition::all().add(briefing::Column::TaskId.eq(task_id.as_str())),
            Condition::all().add(video::Column::TaskId.eq(task_id.as_str())),
        );
        query.order_by("kind", Order::Asc).limit(1);
        match self.task_rows(&query).await?.into_iter().next() {
            Some(row) => Ok(Some(row.resource(row.status()?))),
            None => Ok(None),
        }
    }

    #[tracing::instrument(skip(self), err)]
    async fn cancel_all(&self, caller: &Caller) -> Result<CancelledAll, StoreError> {
        let user = caller.user_id.get();
        let txn = self.db.begin().await.map_err(classify)?;
        let (briefings, videos) = match txn.get_database_backend() {
            DbBackend::Postgres => cancel_all_owing(&txn, user).await?,
            _ => {
                let briefings = moved(
                    &txn,
                    cancel_briefings().filter(briefing::Column::UserId.eq(user)),
                    (briefing::Column::Id, briefing::Column::TaskId),
                )
                .await?;
                let videos = moved(
                    &txn,
                    cancel_videos().filter(video::Column::UserId.eq(user)),
                    (video::Column::Id, video::Column::TaskId),
                )
                .await?;
                let owed: Vec<Owe> = owes(&briefings, ResourceKind::Briefing)
                    .chain(owes(&videos, ResourceKind::Video))
                    .collect();
                owe_revokes(&txn, &owed).await?;
                (briefings, videos)
            }
        };
        let out = CancelledAll {
            briefings: briefings
                .into_iter()
                .map(|(id, task)| (BriefingId(id), task))
                .collect(),
            videos: videos
                .into_iter()
                .map(|(id, task)| (VideoId(id), task))
                .collect(),
        };
        let event = SecurityEvent {
            event: "tasks_cancelled_all".into(),
            user_id: Some(caller.user_id),
            resource: None,
            task_id: None,
            outcome: "cancelled".into(),
            client_ip: caller.client_ip.clone(),
            details: serde_json::json!({
                "briefings": out.briefings.len(),
                "videos": out.videos.len(),
            }),
        };
        insert_event(&txn, &event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(out)
    }

    #[tracing::instrument(skip(self), err)]
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
        let rows = self.task_rows(&query).await?;
        let mut tasks = Vec::with_capacity(rows.len());
        for row in rows {
            let status = row.status()?;
            // Never `None`: the query asks for `task_id IS NOT NULL`.
            let Some(task_id) = row.task_id()? else {
                continue;
            };
            tasks.push(InFlightTask {
                resource: row.resource(status),
                task_id,
                status,
                progress: row.progress,
            });
        }
        Ok(tasks)
    }
}

async fn insert_event<C: ConnectionTrait>(db: &C, event: &SecurityEvent) -> Result<(), StoreError> {
    security_event::ActiveModel {
        id: NotSet,
        event: Set(event.event.clone()),
        user_id: Set(event.user_id.map(UserId::get)),
        resource_kind: Set(event.resource.map(|(kind, _)| kind.as_str().to_owned())),
        resource_id: Set(event.resource.map(|(_, id)| id)),
        task_id: Set(event.task_id.as_ref().map(|t| t.as_str().to_owned())),
        outcome: Set(event.outcome.clone()),
        client_ip: Set(event.client_ip.clone()),
        details: Set(event.details.clone()),
        created_at: Set(now()),
    }
    .insert(db)
    .await
    .map_err(classify)?;
    Ok(())
}

impl SecurityLog for Store {
    #[tracing::instrument(skip(self), err)]
    async fn record(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        insert_event(&self.db, event).await
    }

    async fn security_events(
        &self,
        query: &ensinalab_ports::SecurityEventQuery,
    ) -> Result<ensinalab_ports::SecurityEventPage, StoreError> {
        self.query_security_events(query).await
    }
}
