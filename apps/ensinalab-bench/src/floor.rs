//! The floor of `GET /tasks/active`: what one list request costs the database and Redis, and
//! nothing else. The statement the store sends for the first page (`ensinalab_store::active_sql`:
//! the same text and binds, so the same prepared statement and, with `--plan-cache-mode
//! force_generic_plan`, the same plans), its rows decoded as the store decodes them, the same
//! pool size and no ping per checkout (the store pings only connections idle for 30 s), one
//! MGET per request on one shared multiplexed connection (the Celery adapter's hot path).

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensinalab_ports::DEFAULT_ACTIVE_PAGE;
use ensinalab_store::active_sql;
use sea_orm::DbBackend;
use sea_orm::sqlx::Row as _;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::seed::META_PREFIX;
use crate::{AnyError, Target};

#[derive(clap::Args)]
pub struct FloorArgs {
    /// Requests rotate over these users.
    #[command(flatten)]
    target: Target,
    /// Concurrent loops (wrk's connections).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// PostgreSQL connections (the store's pool size).
    #[arg(long, default_value_t = 10)]
    pool: u32,
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    #[arg(long, default_value_t = 15)]
    duration_secs: u64,
    /// `plan_cache_mode` for the floor's sessions: the store's is `force_generic_plan`; unset
    /// keeps PostgreSQL's default (`auto`).
    #[arg(long)]
    plan_cache_mode: Option<String>,
}

/// A pool as the store keeps it: `size` connections, no ping per checkout, the sessions'
/// `plan_cache_mode` set when given.
pub async fn pg_pool(
    url: &str,
    size: u32,
    plan_cache_mode: Option<&str>,
) -> Result<PgPool, AnyError> {
    let mut options = PgConnectOptions::from_str(url)?;
    if let Some(mode) = plan_cache_mode {
        options = options.options([("plan_cache_mode", mode)]);
    }
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?)
}

pub async fn run(args: FloorArgs) -> Result<(), AnyError> {
    let pool = pg_pool(
        &args.target.database_url,
        args.pool,
        args.plan_cache_mode.as_deref(),
    )
    .await?;
    let redis = redis::Client::open(args.target.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup_secs);
    let end = measure_from + Duration::from_secs(args.duration_secs);
    let args = Arc::new(args);
    let mut loops = Vec::with_capacity(args.concurrency);
    for n in 0..args.concurrency {
        let (pool, redis, args) = (pool.clone(), redis.clone(), Arc::clone(&args));
        loops.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut errors = 0_u64;
            let mut i = n;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let user =
                    args.target.first_user + i64::try_from(i).unwrap_or(0) % args.target.users;
                i += args.concurrency;
                let ok = one_request(&pool, redis.clone(), user).await.is_ok();
                let done = Instant::now();
                if began >= measure_from && done <= end {
                    if ok {
                        let us = done.duration_since(began).as_micros();
                        latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies_us, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for handle in loops {
        let (latencies, failed) = handle.await?;
        all.extend(latencies);
        errors += failed;
    }
    all.sort_unstable();
    let secs = Duration::from_secs(args.duration_secs).as_secs_f64();
    // One line for scripts/bench.sh to read; the same fields wrk's Lua `done` prints.
    println!(
        "FLOOR requests={} rps={:.1} p50_ms={:.3} p99_ms={:.3} errors={errors}",
        all.len(),
        all.len() as f64 / secs,
        percentile_ms(&all, 50.0),
        percentile_ms(&all, 99.0),
    );
    Ok(())
}

/// What the server does per list request besides HTTP: the statement (rows decoded, as the
/// store decodes them), then one MGET of the rows' task ids.
async fn one_request(
    pool: &PgPool,
    mut redis: redis::aio::MultiplexedConnection,
    user: i64,
) -> Result<(), AnyError> {
    let rows = sea_orm::sqlx::query(active_sql(DbBackend::Postgres))
        .bind(user)
        .bind(None::<time::OffsetDateTime>)
        .bind(None::<&str>)
        .bind(None::<i64>)
        .bind(i64::from(DEFAULT_ACTIVE_PAGE) + 1)
        .fetch_all(pool)
        .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        // by position, text borrowed where the store borrows it
        let _: (i64, i64) = (row.try_get(9)?, row.try_get(10)?);
        let Some(_kind) = row.try_get::<Option<&str>, _>(0)? else {
            continue;
        };
        let _: (i64, String, &str) = (row.try_get(1)?, row.try_get(3)?, row.try_get(4)?);
        let _: (Option<f64>, Option<String>, time::OffsetDateTime) =
            (row.try_get(5)?, row.try_get(6)?, row.try_get(8)?);
        if let Some(task_id) = row.try_get::<Option<&str>, _>(7)? {
            keys.push(format!("{META_PREFIX}{task_id}"));
        }
    }
    if !keys.is_empty() {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut redis)
            .await?;
        if values.len() != keys.len() {
            return Err("MGET answered a different number of values".into());
        }
    }
    Ok(())
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let us: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert!((percentile_ms(&us, 50.0) - 50.0).abs() < f64::EPSILON);
        assert!((percentile_ms(&us, 99.0) - 99.0).abs() < f64::EPSILON);
        assert!(percentile_ms(&[], 50.0).abs() < f64::EPSILON);
    }
}
