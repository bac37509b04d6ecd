//! The revokes a cancel owes, written inside the cancel's own transaction, so a committed cancel
//! always has its revokes recorded: ONE `revoke_batches` row per cancel, `[[task_id, kind, id],
//! ...]`. The dispatcher's side of the outbox (`outbox`) spreads each batch into one
//! `revoke_outbox` row per task after the response, so that per-task write is not the cancel's
//! (docs/benchmarks.md, "the revoke batch").

use ensinalab_domain::{ResourceKind, TaskId};
use ensinalab_ports::{FIRST_ATTEMPT_GRACE, StoreError};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde_json::json;

use crate::convert::now;
use crate::error::classify;

/// A revoke to record with a cancel.
#[derive(Debug, Clone)]
pub(crate) struct Owe {
    pub task_id: TaskId,
    pub resource: (ResourceKind, i64),
}

impl Owe {
    pub fn new(task_id: TaskId, resource: (ResourceKind, i64)) -> Self {
        Self { task_id, resource }
    }
}

/// Records the revokes `owed` on `db`, which is the cancel's own transaction, as one batch row.
/// The tasks travel as one JSON bind, whatever their number: a bind per value made a
/// cancel-all of thousands of tasks slow to parse, and past 32,766 binds SQLite refuses the
/// statement.
pub(crate) async fn owe_revokes<C: ConnectionTrait>(
    db: &C,
    owed: &[Owe],
) -> Result<(), StoreError> {
    if owed.is_empty() {
        return Ok(());
    }
    let tasks: serde_json::Value = owed
        .iter()
        .map(|o| json!([o.task_id.as_str(), o.resource.0.as_str(), o.resource.1]))
        .collect();
    let backend = db.get_database_backend();
    let tasks_bind = match backend {
        DbBackend::Postgres => "$3::json",
        _ => "$3",
    };
    let sql = format!(
        "INSERT INTO revoke_batches (created_at, next_attempt_at, tasks) \
         VALUES ($1, $2, {tasks_bind})"
    );
    let now = now();
    let values: [Value; 3] = [
        now.into(),
        (now + FIRST_ATTEMPT_GRACE).into(),
        tasks.to_string().into(),
    ];
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(classify)?;
    Ok(())
}
