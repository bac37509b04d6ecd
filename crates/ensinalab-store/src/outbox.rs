//! The dispatcher's side of the revoke outbox: the [`RevokeOutbox`] port over `revoke_outbox`,
//! one row per owed task, which the cancel wrote in its own transaction (`owe`). Every mark is
//! an idempotent conditional update: delivering twice (the cancel's own attempt racing the
//! dispatcher) changes nothing the first delivery did not.

use ensinalab_domain::TaskId;
use ensinalab_ports::{OwedRevoke, RevokeOutbox, RevokeOutcome, RevokeReport, StoreError, settles};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Statement, Value,
};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::convert;
use crate::entity::revoke_outbox::{self, Column, Entity};
use crate::error::classify;
use crate::owed::{Outbox, ids_json, task_id_in};

impl Outbox for Entity {
    type Owed = OwedRevoke;
    const TASK_ID: Column = Column::TaskId;

    fn decode(m: revoke_outbox::Model) -> Result<OwedRevoke, StoreError> {
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
        // A revoke delivered meanwhile keeps its delivery.
        self.attempts_failed("revoke_outbox", "delivered_at IS NULL", task_ids, retry_at)
            .await
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
