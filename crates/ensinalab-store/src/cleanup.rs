//! The [`CleanupOutbox`] port: one `cleanup_outbox` row per job's task owed a partial-file
//! cleanup, deleted once the cleanup task was sent. A cleanup that follows one of our cancels
//! is due only once `revoke_outbox` shows that task's revoke delivered.

use std::collections::HashMap;

use ensinalab_domain::TaskId;
use ensinalab_ports::{CleanupOutbox, CleanupReason, OwedCleanup, RevokeOutcome, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, Value};
use serde_json::json;
use time::OffsetDateTime;

use crate::SqlStore;
use crate::convert;
use crate::entity::cleanup_outbox::{self, Column, Entity};
use crate::owed::{JsonRows, Outbox, ids_json, json_bind, task_id_in};

/// The cleanup's own task was cancelled by us and its revoke has gone out.
const KILL_SENT: &str = "EXISTS (SELECT 1 FROM revoke_outbox r \
     WHERE r.task_id = cleanup_outbox.task_id AND r.delivered_at IS NOT NULL)";

impl Outbox for Entity {
    type Owed = OwedCleanup;
    const TASK_ID: Column = Column::TaskId;

    fn decode(m: cleanup_outbox::Model) -> Result<OwedCleanup, StoreError> {
        let table = "cleanup_outbox";
        let reason = CleanupReason::parse(&m.reason).ok_or_else(|| {
            StoreError::Corrupt(format!("{table} {}: reason {:?}", m.task_id, m.reason))
        })?;
        Ok(OwedCleanup {
            resource: convert::resource(table, &m.task_id, &m.resource_kind, m.resource_id)?,
            task_id: convert::required_task_id(table, &m.task_id, &m.task_id)?,
            reason,
            created_at: convert::utc(m.created_at),
            attempts: u32::try_from(m.attempts).unwrap_or(0),
        })
    }
}

impl CleanupOutbox for SqlStore {
    #[tracing::instrument(level = "debug", skip(self, cleanups), fields(cleanups = cleanups.len()), err)]
    async fn owe_cleanups(&self, cleanups: &[OwedCleanup]) -> Result<(), StoreError> {
        if cleanups.is_empty() {
            return Ok(());
        }
        // One row per task in the statement (PostgreSQL refuses to update a row twice in one),
        // the one `CleanupReason::supersedes` keeps.
        let mut by_task: Vec<&OwedCleanup> = Vec::with_capacity(cleanups.len());
        let mut at: HashMap<&TaskId, usize> = HashMap::with_capacity(cleanups.len());
        for cleanup in cleanups {
            match at.get(&cleanup.task_id) {
                Some(&i) if cleanup.reason.supersedes() => by_task[i] = cleanup,
                Some(_) => {}
                None => {
                    at.insert(&cleanup.task_id, by_task.len());
                    by_task.push(cleanup);
                }
            }
        }
        let superseding: Vec<String> = CleanupReason::ALL
            .into_iter()
            .filter(|r| r.supersedes())
            .map(|r| format!("'{}'", r.as_str()))
            .collect();
        let rows = JsonRows::new(self.db.get_database_backend(), 2);
        let sql = format!(
            "INSERT INTO cleanup_outbox \
             (task_id, resource_kind, resource_id, reason, created_at, attempts, next_attempt_at) \
             SELECT {}, {}, {}, {}, $1, 0, $1 {} \
             ON CONFLICT (task_id) DO UPDATE SET reason = excluded.reason \
             WHERE excluded.reason IN ({})",
            rows.text(0),
            rows.text(1),
            rows.bigint(2),
            rows.text(3),
            rows.from(),
            superseding.join(", ")
        );
        let values: [Value; 2] = [
            convert::now().into(),
            json_bind(by_task.iter().map(|c| {
                json!([
                    c.task_id.as_str(),
                    c.resource.0.as_str(),
                    c.resource.1,
                    c.reason.as_str()
                ])
            })),
        ];
        self.execute(sql, values).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn due_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedCleanup>, StoreError> {
        let waiting: Vec<&str> = CleanupReason::ALL
            .into_iter()
            .filter(|r| r.waits_for_revoke())
            .map(CleanupReason::as_str)
            .collect();
        // A task whose revoke says it never started has no files: its cleanup is dropped.
        let never_started: Vec<String> = RevokeOutcome::ALL
            .into_iter()
            .filter(|o| !o.may_have_started())
            .map(|o| format!("'{}'", o.as_str()))
            .collect();
        let reasons: Vec<String> = waiting.iter().map(|r| format!("'{r}'")).collect();
        self.execute(
            format!(
                "DELETE FROM cleanup_outbox WHERE reason IN ({}) AND EXISTS (SELECT 1 FROM \
                 revoke_outbox r WHERE r.task_id = cleanup_outbox.task_id \
                 AND r.delivered_at IS NOT NULL AND r.outcome IN ({}))",
                reasons.join(", "),
                never_started.join(", ")
            ),
            Vec::<Value>::new(),
        )
        .await?;
        let due = Entity::find()
            .filter(Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(Column::Reason.is_not_in(waiting))
                    .add(Expr::cust(KILL_SENT)),
            )
            .order_by_asc(Column::NextAttemptAt);
        self.owed(due, limit).await
    }

    #[tracing::instrument(level = "debug", skip(self, ids), fields(cleanups = ids.len()), err)]
    async fn cleanups_sent(&self, ids: &[TaskId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let backend = self.db.get_database_backend();
        let sql = format!(
            "DELETE FROM cleanup_outbox WHERE {}",
            task_id_in(backend, 1)
        );
        let values: [Value; 1] = [ids_json(ids.iter())];
        self.execute(sql, values).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, ids), fields(cleanups = ids.len()), err)]
    async fn cleanups_failed(
        &self,
        ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.attempts_failed("cleanup_outbox", "true", ids, retry_at)
            .await
    }
}
