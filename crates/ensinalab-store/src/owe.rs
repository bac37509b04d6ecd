//! The revokes a cancel owes, written inside the cancel's own transaction, so a committed cancel
//! always has its revokes recorded: one `revoke_outbox` row per task, the row the dispatcher
//! then delivers and marks (`outbox`). A task already owed keeps its row. One stored shape, at
//! the price of writing the rows before the cancel answers (docs/benchmarks.md, "the revoke
//! outbox").

use ensinalab_domain::{ResourceKind, TaskId};
use ensinalab_ports::{FIRST_ATTEMPT_GRACE, StoreError};
use sea_orm::{ConnectionTrait, IdenStatic, Statement, Value};
use serde_json::json;

use crate::convert::now;
use crate::entity::revoke_outbox::Column;
use crate::error::classify;
use crate::owed::{JsonRows, json_bind};

/// The columns a cancel writes, in the order of every owing `INSERT`'s `SELECT`: the task, its
/// row's kind and id, the cancel's time, no attempt yet, the first attempt's time.
pub(crate) const OWED_COLUMNS: [Column; 6] = [
    Column::TaskId,
    Column::ResourceKind,
    Column::ResourceId,
    Column::CreatedAt,
    Column::Attempts,
    Column::NextAttemptAt,
];

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

/// Records the revokes `owed` on `db`, which is the cancel's own transaction: one statement and
/// one JSON bind, whatever their number.
pub(crate) async fn owe_revokes<C: ConnectionTrait>(
    db: &C,
    owed: &[Owe],
) -> Result<(), StoreError> {
    if owed.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let rows = JsonRows::new(backend, 3);
    let columns: Vec<&str> = OWED_COLUMNS.iter().map(IdenStatic::as_str).collect();
    let sql = format!(
        "INSERT INTO revoke_outbox ({}) SELECT {}, {}, {}, $1, 0, $2 {} \
         ON CONFLICT (task_id) DO NOTHING",
        columns.join(", "),
        rows.text(0),
        rows.text(1),
        rows.bigint(2),
        rows.from()
    );
    let now = now();
    let values: [Value; 3] = [
        now.into(),
        (now + FIRST_ATTEMPT_GRACE).into(),
        json_bind(
            owed.iter()
                .map(|o| json!([o.task_id.as_str(), o.resource.0.as_str(), o.resource.1])),
        ),
    ];
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(classify)?;
    Ok(())
}
