//! What the two outboxes (`revoke_outbox`, `cleanup_outbox`) share: one row per owed task, keyed
//! by `task_id`, read a page at a time and written many rows at a time through ONE JSON bind,
//! whatever their number (a bind per value made a cancel-all of thousands of tasks slow to
//! parse, and past 32,766 binds SQLite refuses a statement).

use ensinalab_domain::TaskId;
use ensinalab_ports::StoreError;
use sea_orm::{DbBackend, EntityTrait, QueryOrder, QuerySelect, Select, Value};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::error::classify;

/// An outbox table: one row per owed task, keyed by its task id.
pub(crate) trait Outbox: EntityTrait {
    /// A row as the ports know it.
    type Owed;
    const TASK_ID: Self::Column;

    fn decode(model: Self::Model) -> Result<Self::Owed, StoreError>;
}

impl SqlStore {
    /// The first `limit` rows of `select` in its order, ties broken by task id.
    pub(crate) async fn owed<O: Outbox>(
        &self,
        select: Select<O>,
        limit: u32,
    ) -> Result<Vec<O::Owed>, StoreError> {
        select
            .order_by_asc(O::TASK_ID)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(classify)?
            .into_iter()
            .map(O::decode)
            .collect()
    }

    /// A failed attempt at the rows of `table` for `task_ids` that match `pending` (an SQL
    /// condition, `true` for all): one more attempt, the next one at `retry_at`.
    pub(crate) async fn attempts_failed(
        &self,
        table: &str,
        pending: &str,
        task_ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if task_ids.is_empty() {
            return Ok(());
        }
        let backend = self.db.get_database_backend();
        let sql = format!(
            "UPDATE {table} SET attempts = attempts + 1, next_attempt_at = $1 \
             WHERE {pending} AND {}",
            task_id_in(backend, 2)
        );
        let values: [Value; 2] = [retry_at.into(), ids_json(task_ids.iter())];
        self.execute(sql, values).await?;
        Ok(())
    }
}

/// `task_id IN (...)` of the task ids of JSON bind `$n`.
pub(crate) fn task_id_in(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("task_id IN (SELECT json_array_elements_text(${n}::json))"),
        _ => format!("task_id IN (SELECT value FROM json_each(${n}))"),
    }
}

/// A JSON array of the task ids, as one bind.
pub(crate) fn ids_json<'a>(task_ids: impl Iterator<Item = &'a TaskId>) -> Value {
    json_bind(task_ids.map(|t| serde_json::Value::from(t.as_str())))
}

/// A JSON array of `items`, as one bind.
pub(crate) fn json_bind(items: impl IntoIterator<Item = serde_json::Value>) -> Value {
    items
        .into_iter()
        .collect::<serde_json::Value>()
        .to_string()
        .into()
}

/// The rows of JSON bind `$n`, an array of arrays, as the source of an `INSERT ... SELECT`:
/// one row per element, its fields read by position.
pub(crate) struct JsonRows {
    postgres: bool,
    bind: usize,
}

impl JsonRows {
    pub(crate) fn new(backend: DbBackend, bind: usize) -> Self {
        Self {
            postgres: backend == DbBackend::Postgres,
            bind,
        }
    }

    /// Field `i` of an element, as text.
    pub(crate) fn text(&self, i: usize) -> String {
        if self.postgres {
            format!("j ->> {i}")
        } else {
            format!("j.value ->> {i}")
        }
    }

    /// Field `i` of an element, as a `bigint` (SQLite's column affinity converts the text).
    pub(crate) fn bigint(&self, i: usize) -> String {
        if self.postgres {
            format!("(j ->> {i})::bigint")
        } else {
            self.text(i)
        }
    }

    /// The `FROM` of the `SELECT`, ready for the `INSERT`'s `ON CONFLICT`: SQLite cannot tell
    /// an upsert's `ON` from a join's after a bare `FROM`, so its `FROM` ends in `WHERE true`.
    pub(crate) fn from(&self) -> String {
        let n = self.bind;
        if self.postgres {
            format!("FROM json_array_elements(${n}::json) j")
        } else {
            format!("FROM json_each(${n}) j WHERE true")
        }
    }
}
