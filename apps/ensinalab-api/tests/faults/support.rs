//! What only the fault tests need over the shared harness: a Celery adapter that gives up
//! fast, and the app over a store and a broker the test holds (no metrics listener, revokes
//! said again every 2 s, a hung request failing the test).

use std::time::Duration;

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_jobs::dispatcher::DispatcherSettings;
use ensinalab_ports::TaskBroker;
use ensinalab_store::SqlStore;

pub use crate::common::app::{Backend, Feeds, TestApp, TestDb, authenticator, config, eventually};
pub use crate::common::process::ServerProcess;
pub use crate::common::servers::{PgServer, Received, RedisServer, SmtpServer};

/// A queue of the test's own.
pub fn unique_queue() -> String {
    crate::common::servers::unique_queue("faults")
}

/// A Celery adapter on `url` with a short timeout (a dead Redis must answer fast).
pub fn celery(url: &str, queue: &str) -> CeleryBroker {
    let mut config = CeleryConfig::new(url).with_queue(queue);
    config.command_timeout = Duration::from_secs(1);
    CeleryBroker::new(config).expect("celery config")
}

/// The real application over `store` and `broker`, its jobs on `feeds`, with `env` over the
/// shared configuration.
pub fn spawn<B: TaskBroker + 'static>(
    store: SqlStore,
    broker: B,
    feeds: Feeds,
    env: &[(&str, &str)],
) -> TestApp {
    let env: Vec<(&str, &str)> = env.iter().copied().chain([("METRICS_ADDR", "")]).collect();
    let dispatch = DispatcherSettings {
        rebroadcast_every: Duration::from_secs(2),
        ..DispatcherSettings::default()
    };
    TestApp::over(TestDb::of(store), &config(&env), broker, feeds, dispatch)
        .with_request_timeout(Duration::from_secs(30))
}

/// [`spawn`] over a Celery broker, its change feed and worker-online events wired.
pub fn over_celery(store: SqlStore, broker: &CeleryBroker, env: &[(&str, &str)]) -> TestApp {
    spawn(store, broker.clone(), Feeds::celery(broker), env)
}

/// Once the broker is back, the revoke a cancel owed is delivered by the server itself (and said
/// again until a worker hears it): the pool child `pid` is killed, the task ends REVOKED without
/// succeeding, and video `video` stays cancelled.
pub async fn the_owed_kill_lands(
    app: &TestApp,
    broker: &CeleryBroker,
    worker: &ensinalab_celery::testing::Worker,
    task: &ensinalab_domain::TaskId,
    pid: u64,
    video: &str,
    token: &str,
) {
    eventually(Duration::from_secs(60), "the pool child killed", || async {
        ensinalab_celery::testing::process_is_dead(u32::try_from(pid).unwrap()).then_some(())
    })
    .await;
    let state = eventually(
        Duration::from_secs(20),
        "REVOKED in the backend",
        || async {
            let s = broker.states(std::slice::from_ref(task)).await.ok()?;
            (s[0].state.is_final()).then(|| s[0].state.clone())
        },
    )
    .await;
    assert_eq!(state, ensinalab_domain::CeleryState::Revoked);
    assert!(!worker.succeeded(task.as_str()), "{}", worker.log_text());
    let (_, v) = app.get(&format!("/videos/{video}/status"), token).await;
    assert_eq!(v["status"], "cancelled");
}

/// The pid of the pool process running `task`, from its PROGRESS (10 s at most).
pub async fn pool_child_of(broker: &CeleryBroker, task: &ensinalab_domain::TaskId) -> u64 {
    eventually(
        Duration::from_secs(10),
        "the child's pid in PROGRESS",
        || async {
            let s = broker.states(std::slice::from_ref(task)).await.ok()?;
            s[0].info.as_ref()?.get("pid")?.as_u64()
        },
    )
    .await
}
