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
