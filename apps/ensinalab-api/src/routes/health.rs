//! Liveness and readiness (no authentication).

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use ensinalab_ports::{Store, TaskBroker};
use tokio::sync::Mutex;

use super::Svc;
use crate::dto::{HealthResponse, ReadyResponse};
use crate::probe::Probe;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How old an answer of `/readyz` may be: a load balancer polling it, or a flood of anonymous
/// requests, costs the database and the broker one probe per second at most.
pub const READY_MAX_AGE: Duration = Duration::from_secs(1);

/// The last value of something costly to ask, reused while it is fresh. Concurrent callers of a
/// stale value wait for one refresh instead of each asking.
#[derive(Debug)]
pub struct Fresh<T> {
    max_age: Duration,
    last: Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Fresh<T> {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            last: Mutex::new(None),
        }
    }

    /// The cached value if fresh, else what `ask` gives (then cached).
    pub async fn get(&self, ask: impl Future<Output = T>) -> T {
        let mut last = self.last.lock().await;
        if let Some((at, value)) = last.as_ref()
            && at.elapsed() < self.max_age
        {
            return value.clone();
        }
        let value = ask.await;
        *last = Some((Instant::now(), value.clone()));
        value
    }
}

/// Whether the database and the broker answered, as last asked.
pub type Readiness = Fresh<(bool, bool)>;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse { status: "ok" })
}

/// The database and the task broker both answer; 503 names which does not.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses((status = 200, body = ReadyResponse), (status = 503, body = ReadyResponse))
)]
pub async fn readyz<S: Store + Probe, B: TaskBroker>(
    svc: Svc<S, B>,
    readiness: web::Data<Readiness>,
) -> HttpResponse {
    let (db_ok, broker_ok) = readiness
        .get(async {
            let (db, broker) = tokio::join!(
                tokio::time::timeout(PROBE_TIMEOUT, svc.store().probe()),
                tokio::time::timeout(PROBE_TIMEOUT, svc.broker().ping()),
            );
            (matches!(db, Ok(Ok(()))), matches!(broker, Ok(Ok(()))))
        })
        .await;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let detail = match (db_ok, broker_ok) {
        (true, true) => None,
        (false, true) => Some("Banco de dados indisponível"),
        (true, false) => Some("Fila de tarefas indisponível"),
        (false, false) => Some("Banco de dados e fila de tarefas indisponíveis"),
    };
    let body = ReadyResponse {
        status: word(detail.is_none()),
        database: word(db_ok),
        broker: word(broker_ok),
        detail: detail.map(str::to_owned),
    };
    if detail.is_none() {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(database = body.database, broker = body.broker, "not ready");
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_askers_share_one_answer_until_it_is_stale() {
        let fresh = Arc::new(Fresh::new(Duration::from_millis(200)));
        let asked = Arc::new(AtomicUsize::new(0));
        let ask = |asked: Arc<AtomicUsize>| async move {
            asked.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            true
        };
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (fresh, asked) = (Arc::clone(&fresh), Arc::clone(&asked));
                tokio::spawn(async move { fresh.get(ask(asked)).await })
            })
            .collect();
        for caller in callers {
            assert!(caller.await.unwrap());
        }
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "one probe for fifty callers"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(fresh.get(ask(Arc::clone(&asked))).await);
        assert_eq!(
            asked.load(Ordering::SeqCst),
            2,
            "a stale answer is asked again"
        );
    }
}
