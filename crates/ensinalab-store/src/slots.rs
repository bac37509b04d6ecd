//! A user's job slots (`MAX_ACTIVE_JOBS_PER_USER`): a creation is ONE `INSERT ... SELECT ...
//! WHERE <jobs the user holds> < <slots>`, so it writes nothing when they are all taken.
//! SQLite runs a writing statement under its one write lock from its first read; PostgreSQL
//! first takes a transaction-scoped advisory lock on the user id, so two servers cannot both
//! take the last slot.

use ensinalab_domain::{BriefingStatus, Lifecycle, UserId, VideoStatus};
use ensinalab_ports::StoreError;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, Statement, TransactionTrait,
    Value,
};

use crate::error::classify;

/// `'a', 'b'`: the wire names of `statuses` as SQL literals (the domain's own names, which
/// never hold a quote).
pub(crate) fn literals<S: Lifecycle>(statuses: &[S]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts one row into `table` (`columns` and `values` in the same order, the first column
/// `user_id`) unless that user already holds `slots` jobs; the row inserted, or `None`.
pub(crate) async fn insert_if_free<M: FromQueryResult>(
    db: &DatabaseConnection,
    table: &str,
    columns: &[&str],
    mut values: Vec<Value>,
    user: UserId,
    slots: u32,
) -> Result<Option<M>, StoreError> {
    let backend = db.get_database_backend();
    let placeholders: Vec<String> = (1..=values.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({columns}) SELECT {placeholders} WHERE \
         (SELECT count(*) FROM briefings WHERE user_id = $1 AND status IN ({briefings})) + \
         (SELECT count(*) FROM videos WHERE user_id = $1 AND status IN ({videos})) < ${slots_at} \
         RETURNING *",
        columns = columns.join(", "),
        placeholders = placeholders.join(", "),
        briefings = literals(<BriefingStatus as Lifecycle>::ACTIVE),
        videos = literals(<VideoStatus as Lifecycle>::ACTIVE),
        slots_at = values.len() + 1,
    );
    values.push(i64::from(slots).into());
    let insert = Statement::from_sql_and_values(backend, sql, values);
    let row = if backend == DbBackend::Postgres {
        let txn = db.begin().await.map_err(classify)?;
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock($1)",
            [Value::from(user.get())],
        ))
        .await
        .map_err(classify)?;
        let row = txn.query_one_raw(insert).await.map_err(classify)?;
        txn.commit().await.map_err(classify)?;
        row
    } else {
        db.query_one_raw(insert).await.map_err(classify)?
    };
    row.map(|row| M::from_query_result(&row, "").map_err(classify))
        .transpose()
}
