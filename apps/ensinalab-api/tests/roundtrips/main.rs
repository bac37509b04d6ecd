//! Round trips per request, counted on servers of the test's own: SQL statements with
//! `pg_stat_statements`, Redis commands with `INFO commandstats`. The cost of a request on
//! loopback is mostly its round trips, so these counts must not grow with the number of jobs.
//! Counts only: a test never asserts on time (`scripts/bench.sh` measures time).
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod counts;

use std::collections::BTreeMap;
use std::time::Duration;

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_jobs::dispatcher::DispatcherSettings;
use ensinalab_store::SqlStore;
use reqwest::StatusCode;
use serde_json::Value;

use common::app::{Feeds, TestApp, TestDb, config};
use common::servers::{PgServer, RedisServer};
use counts::{APP_DB, delta, statements};

struct Rig {
    pg: PgServer,
    redis: RedisServer,
    app: TestApp,
}

impl Rig {
    /// Both servers, the migrated schema, and the real app over the Celery adapter on port 0.
    /// No change feed (its keep-alive PING would land in the counts at random); the sweep and
    /// the revoke dispatcher tick once an hour: their first ticks, at start, are waited out by
    /// [`Rig::quiet`]. A cancel's own revoke is still sent in its request.
    async fn start() -> Self {
        let pg = PgServer::counting();
        pg.psql("postgres", &format!("CREATE DATABASE {APP_DB}"));
        let redis = RedisServer::in_memory();
        let (database_url, redis_url) = (pg.url_of(APP_DB), redis.url());
        let config = config(&[
            // No census: its reads would count with the request's own.
            ("METRICS_ADDR", ""),
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis_url),
            ("RECONCILE_INTERVAL_SECS", "3600"),
            // One server: the live relay's PUBLISHes (a batch per burst of changes) would count
            // with the revoke broadcast, which is what these tests count.
            ("LIVE_RELAY", "false"),
            ("RATE_LIMIT_PER_MIN", "1000000"),
            ("CANCEL_RATE_LIMIT_PER_MIN", "1000000"),
        ]);
        let store = SqlStore::connect(&database_url).await.unwrap();
        store.migrate().await.unwrap();
        // No removal pass: its idle check and its lease would count with the request's own
        // commands (the pass is measured in crates/ensinalab-celery/tests/backlog.rs).
        let mut celery = CeleryConfig::new(redis_url);
        celery.unqueue = false;
        let broker = CeleryBroker::new(celery).unwrap();
        let hourly = Duration::from_secs(3600);
        let dispatch = DispatcherSettings {
            tick: hourly,
            rebroadcast_every: hourly,
            ..DispatcherSettings::default()
        };
        let app = TestApp::over(
            TestDb::of(store),
            &config,
            broker,
            Feeds::default(),
            dispatch,
        );
        Self { pg, redis, app }
    }

    /// Gives `user` `n` active jobs, alternating videos (`processing`) and briefings
    /// (`generating_options`), each with a task id; two in three have a result-backend entry
    /// (PROGRESS or STARTED), the rest are PENDING (no key). Returns the task ids.
    async fn seed(&self, user: i64, n: usize) -> Vec<String> {
        let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let values = |pick: fn(usize) -> bool| {
            ids.iter()
                .enumerate()
                .filter(|(i, _)| pick(*i))
                .map(|(i, id)| format!("('{id}', {i})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!(
            "INSERT INTO briefings (user_id, title, description, duration_minutes, status, \
             created_at, updated_at) VALUES ({user}, 'parent', '', 10, 'options_ready', now(), now());
             INSERT INTO options (briefing_id, title, description, generator_type, created_at)
             SELECT max(id), 'option', '', 'simple', now() FROM briefings;"
        );
        let videos = values(|i| i % 2 == 0);
        if !videos.is_empty() {
            sql.push_str(&format!(
                "INSERT INTO videos (user_id, briefing_id, option_id, title, generator_type, \
                 status, progress, task_id, created_at, updated_at)
                 SELECT {user}, o.briefing_id, o.id, 'video ' || t.n, 'simple', 'processing', 0.5, \
                 t.id, now() - t.n * interval '1 second', now()
                 FROM (SELECT * FROM options ORDER BY id DESC LIMIT 1) o, (VALUES {videos}) t(id, n);"
            ));
        }
        let briefings = values(|i| i % 2 == 1);
        if !briefings.is_empty() {
            sql.push_str(&format!(
                "INSERT INTO briefings (user_id, title, description, duration_minutes, status, \
                 task_id, created_at, updated_at)
                 SELECT {user}, 'briefing ' || t.n, '', 10, 'generating_options', t.id, \
                 now() - t.n * interval '1 second', now() FROM (VALUES {briefings}) t(id, n);"
            ));
        }
        ensinalab_store::testing::execute(&self.app.store, &sql)
            .await
            .unwrap();
        let mut mset = vec!["MSET".to_owned()];
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 != 2) {
            let (status, result) = if i % 2 == 0 {
                (
                    "PROGRESS",
                    serde_json::json!({"current": 3, "total": 10, "pid": 4242}),
                )
            } else {
                (
                    "STARTED",
                    serde_json::json!({"pid": 4242, "hostname": "w1@lab"}),
                )
            };
            mset.push(format!("celery-task-meta-{id}"));
            mset.push(
                serde_json::json!({
                    "status": status, "result": result, "traceback": null, "children": [],
                    "date_done": null, "task_id": id,
                })
                .to_string(),
            );
        }
        if mset.len() > 1 {
            let args: Vec<&str> = mset.iter().map(String::as_str).collect();
            assert_eq!(self.redis.cli(&args), "OK");
        }
        ids
    }

    /// Waits until nothing runs in the background (the reconciler's first sweep at start).
    async fn quiet(&self) {
        let mut last = self.snapshot();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.snapshot();
            if now == last {
                return;
            }
            last = now;
        }
        panic!("the server never went quiet");
    }

    fn snapshot(&self) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
        (statements(&self.pg), self.redis.commands())
    }

    async fn get(&self, path: &str, user: i64) -> (StatusCode, Value) {
        self.app.get(path, &self.app.token(user)).await
    }

    async fn post(&self, path: &str, user: i64) -> (StatusCode, Value) {
        self.app.post(path, &self.app.token(user)).await
    }

    /// The SQL statements and Redis commands `request` caused, and its answer.
    async fn counted<F, Fut>(
        &self,
        request: F,
    ) -> (BTreeMap<String, i64>, BTreeMap<String, i64>, Value)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = (StatusCode, Value)>,
    {
        let (sql_before, redis_before) = self.snapshot();
        let (status, body) = request().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (sql_after, redis_after) = self.snapshot();
        (
            delta(&sql_before, &sql_after),
            delta(&redis_before, &redis_after),
            body,
        )
    }
}

fn total(counts: &BTreeMap<String, i64>) -> i64 {
    counts.values().sum()
}

fn calls_starting(counts: &BTreeMap<String, i64>, prefix: &str) -> i64 {
    counts
        .iter()
        .filter(|(q, _)| q.trim_start().to_uppercase().starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn listing_active_tasks_costs_the_same_round_trips_for_one_job_and_for_fifty() {
    let rig = Rig::start().await;
    let (one, fifty) = (1, 2);
    rig.seed(one, 1).await;
    rig.seed(fifty, 50).await;
    rig.quiet().await;
    // Warm-up: the pool's first connection and its prepared statements are not what is measured.
    for user in [one, fifty] {
        assert_eq!(rig.get("/tasks/active", user).await.0, StatusCode::OK);
    }

    let mut per_n = Vec::new();
    for (user, n) in [(one, 1), (fifty, 50)] {
        let (sql, redis, body) = rig.counted(|| rig.get("/tasks/active", user)).await;
        assert_eq!(body["total"], n, "{body}");
        assert_eq!(body["celery_unavailable"], false, "{body}");
        let states: Vec<&str> = body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["celery_status"]["state"].as_str().unwrap())
            .collect();
        assert!(
            states
                .iter()
                .all(|s| ["PROGRESS", "STARTED", "PENDING"].contains(s)),
            "{states:?}"
        );
        assert!(total(&sql) <= 2, "N={n}: SQL statements {sql:#?}");
        assert_eq!(total(&redis), 1, "N={n}: Redis commands {redis:?}");
        assert_eq!(
            redis.get("mget"),
            Some(&1),
            "N={n}: Redis commands {redis:?}"
        );
        per_n.push((total(&sql), total(&redis)));
    }
    assert_eq!(
        per_n[0], per_n[1],
        "round trips (SQL, Redis) at N=1 vs N=50"
    );
    println!(
        "GET /tasks/active: {} SQL + {} Redis at N=1 and at N=50",
        per_n[0].0, per_n[0].1
    );
}

#[tokio::test]
async fn cancel_all_of_200_jobs_is_one_transaction_and_one_broadcast() {
    let rig = Rig::start().await;
    let user = 7;
    let tasks = rig.seed(user, 200).await;
    rig.quiet().await;
    assert_eq!(rig.get("/tasks/active", user).await.1["total"], 200);

    let (sql, redis, body) = rig.counted(|| rig.post("/tasks/cancel-all", user)).await;

    assert_eq!(
        body["message"], "200 tasks canceladas com sucesso",
        "{body}"
    );
    assert_eq!(
        body["revokes"].as_array().unwrap().len(),
        tasks.len(),
        "{body}"
    );
    assert_eq!(
        calls_starting(&sql, "BEGIN") + calls_starting(&sql, "START TRANSACTION"),
        1,
        "{sql:#?}"
    );
    assert_eq!(calls_starting(&sql, "COMMIT"), 1, "{sql:#?}");
    assert_eq!(calls_starting(&sql, "ROLLBACK"), 0, "{sql:#?}");
    assert_eq!(redis.get("publish"), Some(&1), "one broadcast: {redis:?}");
    assert_eq!(
        redis.get("set").copied(),
        Some(i64::try_from(tasks.len()).unwrap()),
        "one claim (SET NX GET) per task: {redis:?}"
    );
    let scripts = redis.get("evalsha").unwrap_or(&0) + redis.get("eval").unwrap_or(&0);
    assert_eq!(scripts, 0, "no script: {redis:?}");
    assert_eq!(rig.get("/tasks/active", user).await.1["total"], 0);
    println!("POST /tasks/cancel-all of 200: SQL {sql:?}; Redis {redis:?}");
}
