//! The dispatcher's side of the revoke outbox: the [`RevokeOutbox`] port, one `revoke_outbox`
//! row per owed task, spread first from the batches cancels wrote (`owe`). Every mark is an
//! idempotent conditional update: delivering twice (the cancel's own attempt racing the
//! dispatcher) changes nothing the first delivery did not.

use ensinalab_domain::TaskId;
use ensinalab_ports::{OwedRevoke, RevokeOutbox, RevokeOutcome, RevokeReport, StoreError, settles};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, Statement, TransactionTrait, Value,
};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::convert;
use crate::error::classify;
use crate::postgres;

/// `revoke_outbox`, one row per cancelled task.
pub(crate) mod revoke_outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "revoke_outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub task_id: String,
        pub resource_kind: String,
        pub resource_id: i64,
        pub created_at: TimeDateTimeWithTimeZone,
        pub attempts: i32,
        pub next_attempt_at: TimeDateTimeWithTimeZone,
        pub delivered_at: Option<TimeDateTimeWithTimeZone>,
        pub outcome: Option<String>,
        pub last_broadcast_at: Option<TimeDateTimeWithTimeZone>,
        pub settled_at: Option<TimeDateTimeWithTimeZone>,
        pub overdue_at: Option<TimeDateTimeWithTimeZone>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use revoke_outbox::{Column, Entity};

/// The head of the spread's `INSERT`: each backend's statement follows it with the rows of
/// `revoke_batches b` joined with its elements, one per task, and `ON CONFLICT DO NOTHING` (a
/// task already owed keeps its row).
const SPREAD: &str = "INSERT INTO revoke_outbox \
     (task_id, resource_kind, resource_id, created_at, attempts, next_attempt_at)";

impl SqlStore {
    /// Moves the batches cancels wrote (`owe`) into `revoke_outbox`: every method that reads or
    /// marks that table calls this first, so a committed cancel's revokes are there (its own
    /// delivery's mark included).
    pub(crate) async fn spread_batches(&self) -> Result<(), StoreError> {
        match self.db.get_database_backend() {
            DbBackend::Postgres => {
                self.db
                    .execute_unprepared(&postgres::spread_batches(SPREAD))
                    .await
                    .map_err(classify)?;
            }
            // SQLite has no `DELETE` inside `WITH`; it has one writer at a time, and the
            // transaction is the writer from its first statement, so no cancel commits a batch
            // between the two.
            _ => {
                let txn = self.db.begin().await.map_err(classify)?;
                txn.execute_unprepared(&format!(
                    "{SPREAD} SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, b.created_at, \
                     0, b.next_attempt_at FROM revoke_batches b, json_each(b.tasks) j \
                     WHERE true ON CONFLICT (task_id) DO NOTHING"
                ))
                .await
                .map_err(classify)?;
                txn.execute_unprepared("DELETE FROM revoke_batches")
                    .await
                    .map_err(classify)?;
                txn.commit().await.map_err(classify)?;
            }
        }
        Ok(())
    }
}

/// `task_id IN (...)` of `task_ids` as one JSON bind, parameter `$n` (one bind whatever the
/// count, like the batch a cancel writes).
pub(crate) fn task_id_in(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("task_id IN (SELECT json_array_elements_text(${n}::json))"),
        _ => format!("task_id IN (SELECT value FROM json_each(${n}))"),
    }
}

/// A JSON array of the task ids, as a bind.
pub(crate) fn ids_json<'a>(task_ids: impl Iterator<Item = &'a TaskId>) -> Value {
    task_ids
        .map(|t| t.as_str())
        .collect::<serde_json::Value>()
        .to_string()
        .into()
}

fn owed(m: revoke_outbox::Model) -> Result<OwedRevoke, StoreError> {
    let table = "revoke_outbox";
    let task_id = convert::required_task_id(table, &m.task_id, &m.task_id)?;
    Ok(OwedRevoke {
        resource: convert::resource(table, &m.task_id, &m.resource_kind, m.resource_id)?,
        task_id,
        created_at: convert::utc(m.created_at),
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        delivered_at: m.delivered_at.map(convert::utc),
    })
}

impl SqlStore {
    /// The first `limit` rows of `select` (ties broken by task id), spread batches included.
    async fn owed(
        &self,
        select: Select<Entity>,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        self.spread_batches().await?;
        select
            .order_by_asc(Column::TaskId)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(classify)?
            .into_iter()
            .map(owed)
            .collect()
    }
}

impl RevokeOutbox for SqlStore {
    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn due_revokes(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        let due = Entity::find()
            .filter(Column::DeliveredAt.is_null())
            .filter(Column::NextAttemptAt.lte(now))
            .order_by_asc(Column::NextAttemptAt);
        self.owed(due, limit).await
    }

    #[tracing::instrument(level = "debug", skip(self, reports), fields(reports = reports.len()), err)]
    async fn revokes_delivered(
        &self,
        reports: &[RevokeReport],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if reports.is_empty() {
            return Ok(());
        }
        self.spread_batches().await?;
        let outcomes = outcomes_of(reports);
        let backend = self.db.get_database_backend();
        // One statement per outcome (usually one or two): delivery, settlement and the
        // broadcast time together. SET expressions read the row as it was, so only a first
        // delivery records its outcome (the one the user was told). No transaction: each
        // statement is idempotent.
        for outcome in outcomes {
            let settle = if settles(outcome) {
                ", settled_at = COALESCE(settled_at, $2)"
            } else {
                ""
            };
            let sql = format!(
                "UPDATE revoke_outbox SET \
                 outcome = CASE WHEN delivered_at IS NULL THEN $1 ELSE outcome END, \
                 delivered_at = COALESCE(delivered_at, $2), last_broadcast_at = $2{settle} \
                 WHERE {}",
                task_id_in(backend, 3)
            );
            let values: [Value; 3] = [
                outcome.as_str().into(),
                now.into(),
                ids_of(reports, outcome),
            ];
            self.execute(sql, values).await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, reports), fields(reports = reports.len()), err)]
    async fn settle_revokes(
        &self,
        reports: &[RevokeReport],
        now: OffsetDateTime,
    ) -> Result<Vec<TaskId>, StoreError> {
        let mut settled = Vec::new();
        let backend = self.db.get_database_backend();
        // One conditional UPDATE per outcome: of two servers settling the same revoke, one gets
        // it back.
        for outcome in outcomes_of(reports).into_iter().filter(|o| settles(*o)) {
            let sql = format!(
                "UPDATE revoke_outbox SET outcome = $1, settled_at = $2 \
                 WHERE settled_at IS NULL AND delivered_at IS NOT NULL AND {} RETURNING task_id",
                task_id_in(backend, 3)
            );
            let values: [Value; 3] = [
                outcome.as_str().into(),
                now.into(),
                ids_of(reports, outcome),
            ];
            let rows = self
                .db
                .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
                .await
                .map_err(classify)?;
            settled.extend(returned_task_ids(&rows)?);
        }
        Ok(settled)
    }

    #[tracing::instrument(level = "debug", skip(self, task_ids), fields(tasks = task_ids.len()), err)]
    async fn revokes_failed(
        &self,
        task_ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if task_ids.is_empty() {
            return Ok(());
        }
        self.spread_batches().await?;
        let backend = self.db.get_database_backend();
        let sql = format!(
            "UPDATE revoke_outbox SET attempts = attempts + 1, next_attempt_at = $1 \
             WHERE delivered_at IS NULL AND {}",
            task_id_in(backend, 2)
        );
        let values: [Value; 2] = [retry_at.into(), ids_json(task_ids.iter())];
        self.execute(sql, values).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn open_revokes(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        let open = Entity::find()
            .filter(Column::DeliveredAt.is_not_null())
            .filter(Column::SettledAt.is_null())
            .filter(Column::CreatedAt.gte(since))
            .order_by_asc(Column::LastBroadcastAt);
        self.owed(open, limit).await
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn overdue_candidates(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        let late = Condition::any()
            .add(
                Condition::all()
                    .add(Column::DeliveredAt.is_null())
                    .add(Column::CreatedAt.lt(before)),
            )
            .add(Column::DeliveredAt.lt(before));
        let candidates = Entity::find()
            .filter(Column::SettledAt.is_null())
            .filter(Column::OverdueAt.is_null())
            .filter(late)
            .order_by_asc(Column::CreatedAt);
        self.owed(candidates, limit).await
    }

    #[tracing::instrument(level = "debug", skip(self, task_ids), fields(tasks = task_ids.len()), err)]
    async fn mark_overdue(
        &self,
        task_ids: &[TaskId],
        now: OffsetDateTime,
    ) -> Result<Vec<TaskId>, StoreError> {
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.db.get_database_backend();
        // One conditional UPDATE: of two servers marking the same revoke, one gets it back.
        let sql = format!(
            "UPDATE revoke_outbox SET overdue_at = $1 WHERE overdue_at IS NULL AND {} \
             RETURNING task_id",
            task_id_in(backend, 2)
        );
        let values: [Value; 2] = [now.into(), ids_json(task_ids.iter())];
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .map_err(classify)?;
        returned_task_ids(&rows)
    }
}

/// The task ids of the `reports` with `outcome`, as one JSON bind.
fn ids_of(reports: &[RevokeReport], outcome: RevokeOutcome) -> Value {
    ids_json(
        reports
            .iter()
            .filter(|r| r.outcome == outcome)
            .map(|r| &r.task_id),
    )
}

/// The distinct outcomes of `reports`, in a fixed order.
fn outcomes_of(reports: &[RevokeReport]) -> Vec<RevokeOutcome> {
    let mut outcomes: Vec<_> = reports.iter().map(|r| r.outcome).collect();
    outcomes.sort_by_key(|o| o.as_str());
    outcomes.dedup();
    outcomes
}

/// The task ids a `RETURNING task_id` gave back.
fn returned_task_ids(rows: &[sea_orm::QueryResult]) -> Result<Vec<TaskId>, StoreError> {
    rows.iter()
        .map(|row| {
            let raw: String = row.try_get_by_index(0).map_err(classify)?;
            convert::required_task_id("revoke_outbox", &raw, &raw)
        })
        .collect()
}
