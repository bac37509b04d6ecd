//! The statements PostgreSQL runs its own way, each because the generic form measured slower
//! on the hot path (docs/benchmarks.md); each is tested on both backends against the same cases
//! as the generic one it replaces.

use ensinalab_domain::{BriefingStatus, Cancel, ResourceKind, UserId, VideoStatus};
use ensinalab_ports::{ActivePage, ActiveRows, FIRST_ATTEMPT_GRACE, StoreError};
use sea_orm::sea_query::{
    Alias, CommonTableExpression, Expr, ExprTrait, InsertStatement, OnConflict, Query,
    SelectStatement, SubQueryStatement, UnionType, WithClause,
};
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, QueryFilter, QueryTrait,
};

use crate::convert::{self, Moved, UnionRow};
use crate::entity::{briefing, revoke_outbox, video};
use crate::error::{classify, classify_sqlx};
use crate::guarded::{Table, cancel_write};
use crate::owe::OWED_COLUMNS;
use crate::tasks::{active_sql, count, page_binds};

/// The active list through sqlx itself, its text columns read borrowed: sea-orm's per-column
/// read (an owned `String`, a type check, error mapping per column) was most of the server's
/// time for a long list (docs/benchmarks.md, "the active list").
pub(crate) async fn active(
    pool: &sqlx::PgPool,
    user: UserId,
    page: &ActivePage,
) -> Result<ActiveRows, StoreError> {
    let (at, kind, id, limit) = page_binds(page);
    let rows = sqlx::query(active_sql(DbBackend::Postgres))
        .bind(user.get())
        .bind(at)
        .bind(kind)
        .bind(id)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(classify_sqlx)?;
    let mut out = ActiveRows::default();
    for row in &rows {
        let column = |e| classify_sqlx(e);
        out.briefings = count(row.try_get(9).map_err(column)?);
        out.videos = count(row.try_get(10).map_err(column)?);
        let Some(kind) = row.try_get::<Option<&str>, _>(0).map_err(column)? else {
            continue;
        };
        out.rows.push(
            UnionRow {
                kind,
                id: row.try_get(1).map_err(column)?,
                user_id: row.try_get(2).map_err(column)?,
                title: row.try_get(3).map_err(column)?,
                status: row.try_get(4).map_err(column)?,
                progress: row.try_get(5).map_err(column)?,
                generator_type: row.try_get(6).map_err(column)?,
                task_id: row.try_get(7).map_err(column)?,
                created_at: row.try_get(8).map_err(column)?,
            }
            .into_active()?,
        );
    }
    Ok(out)
}

/// Cancel-all's two guarded writes and the revokes they owe as ONE data-modifying `WITH`, so
/// the moved rows never leave the database to be written back (SQLite has no `UPDATE` inside
/// `WITH`; docs/benchmarks.md, "cancel-all"). Returns the moved briefings and videos, sorted
/// by id.
pub(crate) async fn cancel_all(
    txn: &DatabaseTransaction,
    user: i64,
    briefings: &Cancel<BriefingStatus>,
    videos: &Cancel<VideoStatus>,
) -> Result<(Vec<Moved>, Vec<Moved>), StoreError> {
    let b = returning_moved::<briefing::Entity>(cancel_write(briefings), user);
    let v = returning_moved::<video::Entity>(cancel_write(videos), user);
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
        .cte(cte("b", b.into()))
        .cte(cte("v", v.into()))
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
        let id: i64 = row.try_get_by_index(1).map_err(classify)?;
        let task: Option<String> = row.try_get_by_index(2).map_err(classify)?;
        let kind: ResourceKind = convert::parsed("briefings/videos union", id, &kind)?;
        let moved = convert::moved(kind, id, task.as_deref())?;
        match kind {
            ResourceKind::Briefing => briefings.push(moved),
            ResourceKind::Video => videos.push(moved),
        }
    }
    briefings.sort_by_key(|(id, _)| *id);
    videos.sort_by_key(|(id, _)| *id);
    Ok((briefings, videos))
}

/// `update` narrowed to `user`, returning `id, task_id`.
fn returning_moved<T: Table>(
    update: sea_orm::UpdateMany<T>,
    user: i64,
) -> sea_orm::sea_query::UpdateStatement {
    let mut query = update.filter(T::USER_ID.eq(user)).into_query();
    query.returning(Query::returning().columns([T::ID, T::TASK_ID]));
    query
}

/// The revokes owed for the rows the cancels `moved` return, for a data-modifying `WITH` in
/// which each `(name, kind)` names a cancel's `RETURNING id, task_id`: one `revoke_outbox` row
/// per task, as `owe::owe_revokes` writes them, fed straight from the `RETURNING`.
fn owe_returned(moved: &[(&str, ResourceKind)]) -> Result<InsertStatement, StoreError> {
    let now = convert::now();
    let mut rows = moved.iter().map(|(name, kind)| -> SelectStatement {
        Query::select()
            .column(Alias::new("task_id"))
            .expr(Expr::val(kind.as_str()))
            .column(Alias::new("id"))
            .expr(Expr::val(now))
            .expr(Expr::val(0))
            .expr(Expr::val(now + FIRST_ATTEMPT_GRACE))
            .from(Alias::new(*name))
            .and_where(Expr::col(Alias::new("task_id")).is_not_null())
            .to_owned()
    });
    let mut owed = rows
        .next()
        .ok_or_else(|| StoreError::Other("no cancel to owe".into()))?;
    for other in rows {
        owed.union(UnionType::All, other);
    }
    let mut insert = Query::insert();
    insert
        .into_table(revoke_outbox::Entity)
        .columns(OWED_COLUMNS)
        .select_from(owed)
        .map_err(|e| StoreError::Other(e.into()))?
        // A task owed twice (two rows naming it, or owed before) keeps one row.
        .on_conflict(
            OnConflict::column(revoke_outbox::Column::TaskId)
                .do_nothing()
                .to_owned(),
        );
    Ok(insert)
}
