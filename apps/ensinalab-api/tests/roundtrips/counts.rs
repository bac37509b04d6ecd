//! Counting a test's own traffic on servers of its own: SQL statements with
//! `pg_stat_statements`, Redis commands with `INFO commandstats`.

use std::collections::BTreeMap;

use crate::common::servers::PgServer;

/// The database the application uses; `pg_stat_statements` is read from `postgres`, so the
/// reads themselves are not counted.
pub const APP_DB: &str = "ensinalab";

/// Executions so far of each statement run in [`APP_DB`], by normalized text.
pub fn statements(pg: &PgServer) -> BTreeMap<String, i64> {
    let out = pg.psql(
        "postgres",
        &format!(
            "SELECT calls, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{APP_DB}')"
        ),
    );
    let mut counts = BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let (calls, query) = line.split_once('|').expect("calls|query");
        *counts.entry(query.to_owned()).or_insert(0) += calls.parse::<i64>().expect("calls");
    }
    counts
}

/// What grew between two snapshots.
pub fn delta(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d != 0).then(|| (k.clone(), d))
        })
        .collect()
}
