//! The revoke outbox (`revoke_outbox`): the revokes cancels owe the task broker.
//!
//! [`owe_revokes`] is called by the cancel transitions inside THEIR transaction, so a committed
//! cancel always has its revoke recorded; [`RevokeOutbox`] is what the dispatcher reads and
//! marks. Every mark is an idempotent conditional update: delivering twice (the cancel's own
//! attempt racing the dispatcher) changes nothing the first delivery did not.

use ensinalab_domain::{ResourceKind, TaskId};
use ensinalab_ports::{
    FIRST_ATTEMPT_GRACE, OwedRevoke, RevokeOutbox, RevokeReport, StoreError, settles,
};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter, QueryOrder, QuerySelect, Set,
};
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{self, now};
use crate::error::classify;

/// `revoke_outbox`, one row per cancelled task.
pub(crate) mod revoke_outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "revoke_outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
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
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use revoke_outbox::{ActiveModel, Column, Entity};

/// A revoke to record with a cancel.
#[derive(Debug, Clone)]
pub(crate) struct Owe {
    pub task_id: TaskId,
    pub resource: (ResourceKind, i64),
}

/// Records the revokes `owed` on `db`, which is the cancel's own transaction. A task already
/// owed is left alone (one row per task).
pub(crate) async fn owe_revokes<C: ConnectionTrait>(
    db: &C,
    owed: &[Owe],
) -> Result<(), StoreError> {
    if owed.is_empty() {
        return Ok(());
    }
    let now = now();
    let rows = owed.iter().map(|o| ActiveModel {
        id: NotSet,
        task_id: Set(o.task_id.as_str().to_owned()),
        resource_kind: Set(o.resource.0.as_str().to_owned()),
        resource_id: Set(o.resource.1),
        created_at: Set(now),
        attempts: Set(0),
        next_attempt_at: Set(now + FIRST_ATTEMPT_GRACE),
        delivered_at: Set(None),
        outcome: Set(None),
        last_broadcast_at: Set(None),
        settled_at: Set(None),
    });
    Entity::insert_many(rows)
        .on_conflict_do_nothing_on([Column::TaskId])
        .exec_without_returning(db)
        .await
        .map_err(classify)?;
    Ok(())
}

fn owed(m: revoke_outbox::Model) -> Result<OwedRevoke, StoreError> {
    let task_id = convert::task_id("revoke_outbox", m.id, Some(&m.task_id))?
        .ok_or_else(|| StoreError::Corrupt(format!("revoke_outbox {}: no task_id", m.id)))?;
    let kind = match m.resource_kind.as_str() {
        "briefing" => ResourceKind::Briefing,
        "video" => ResourceKind::Video,
        other => {
            return Err(StoreError::Corrupt(format!(
                "revoke_outbox {}: unknown resource kind {other:?}",
                m.id
            )));
        }
    };
    Ok(OwedRevoke {
        task_id,
        resource: (kind, m.resource_id),
        created_at: convert::utc(m.created_at),
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        delivered_at: m.delivered_at.map(convert::utc),
    })
}

/// `COALESCE(column, now)`: set once, never moved.
fn coalesce(column: Column, now: OffsetDateTime) -> Expr {
    Func::coalesce([Expr::col(column), Expr::value(now)]).into()
}

fn ids(task_ids: &[TaskId]) -> Vec<String> {
    task_ids.iter().map(|t| t.as_str().to_owned()).collect()
}

impl RevokeOutbox for Store {
    #[tracing::instrument(skip(self), err)]
    async fn due_revokes(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        Entity::find()
            .filter(Column::DeliveredAt.is_null())
            .filter(Column::NextAttemptAt.lte(now))
            .order_by_asc(Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(classify)?
            .into_iter()
            .map(owed)
            .collect()
    }

    #[tracing::instrument(skip(self, reports), fields(reports = reports.len()), err)]
    async fn revokes_delivered(
        &self,
        reports: &[RevokeReport],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if reports.is_empty() {
            return Ok(());
        }
        let mut outcomes: Vec<_> = reports.iter().map(|r| r.outcome).collect();
        outcomes.sort_by_key(|o| o.as_str());
        outcomes.dedup();
        // One statement per outcome (usually one or two): delivery, settlement and the
        // broadcast time together. SET expressions read the row as it was, so only a first
        // delivery records its outcome (the one the user was told). No transaction: each
        // statement is idempotent, and cancel-all stays one transaction.
        for outcome in outcomes {
            let of_outcome: Vec<TaskId> = reports
                .iter()
                .filter(|r| r.outcome == outcome)
                .map(|r| r.task_id.clone())
                .collect();
            let first = Expr::col(Column::DeliveredAt).is_null();
            let mut update = Entity::update_many()
                .col_expr(
                    Column::Outcome,
                    Expr::case(first, outcome.as_str())
                        .finally(Expr::col(Column::Outcome))
                        .into(),
                )
                .col_expr(Column::DeliveredAt, coalesce(Column::DeliveredAt, now))
                .col_expr(Column::LastBroadcastAt, Expr::value(now))
                .filter(Column::TaskId.is_in(ids(&of_outcome)));
            if settles(outcome) {
                update = update.col_expr(Column::SettledAt, coalesce(Column::SettledAt, now));
            }
            update.exec(&self.db).await.map_err(classify)?;
        }
        Ok(())
    }

    #[tracing::instrument(skip(self, task_ids), fields(tasks = task_ids.len()), err)]
    async fn revokes_failed(
        &self,
        task_ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if task_ids.is_empty() {
            return Ok(());
        }
        Entity::update_many()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::NextAttemptAt, Expr::value(retry_at))
            .filter(Column::TaskId.is_in(ids(task_ids)))
            .filter(Column::DeliveredAt.is_null())
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(())
    }

    #[tracing::instrument(skip(self), err)]
    async fn open_revokes(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        Entity::find()
            .filter(Column::DeliveredAt.is_not_null())
            .filter(Column::SettledAt.is_null())
            .filter(Column::CreatedAt.gte(since))
            .order_by_asc(Column::LastBroadcastAt)
            .order_by_asc(Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(classify)?
            .into_iter()
            .map(owed)
            .collect()
    }
}
