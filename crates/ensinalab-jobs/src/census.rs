//! The census of jobs in flight and revokes pending, read from the database on a timer and
//! handed to a [`CensusSink`] (the metrics' gauges), so that a scrape never runs a query and
//! the gauges say the same on every server.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::Service;
use ensinalab_ports::{CensusSink, Statistics};

use crate::Job;

/// How often the census is taken when not told (`METRICS_CENSUS_SECS`).
pub const DEFAULT_CENSUS_EVERY: Duration = Duration::from_secs(15);

/// The periodic census.
pub struct TakeCensus<S, B> {
    service: Arc<Service<S, B>>,
    sink: Arc<dyn CensusSink>,
}

impl<S, B> TakeCensus<S, B> {
    /// Hands each census of `service`'s store to `sink`.
    pub fn new(service: Arc<Service<S, B>>, sink: Arc<dyn CensusSink>) -> Self {
        Self { service, sink }
    }
}

impl<S: Statistics + 'static, B: Send + Sync + 'static> Job for TakeCensus<S, B> {
    async fn run(&mut self) -> ControlFlow<()> {
        match self.service.census().await {
            Ok(census) => self.sink.record(&census),
            // The gauges keep their last values; the next pass tries again.
            Err(err) => tracing::warn!(error = %err, "census of jobs in flight failed"),
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ensinalab_app::testing::InMemoryStore;
    use ensinalab_domain::{UserId, VideoStatus};
    use ensinalab_ports::{AnyStatus, Census};

    use super::*;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<Census>>);

    impl CensusSink for Recorded {
        fn record(&self, census: &Census) {
            self.0.lock().unwrap().push(census.clone());
        }
    }

    #[tokio::test]
    async fn a_pass_hands_the_store_s_census_to_the_sink_and_a_failed_one_hands_nothing() {
        let service = Arc::new(ensinalab_app::testing::service());
        let store: &InMemoryStore = service.store();
        store.insert_video(UserId(1), VideoStatus::Processing, None);
        store.insert_video(UserId(2), VideoStatus::Completed, None);
        let sink = Arc::new(Recorded::default());
        let mut job = TakeCensus::new(Arc::clone(&service), sink.clone());

        assert!(job.run().await.is_continue());
        store.down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(job.run().await.is_continue());

        let recorded = sink.0.lock().unwrap().clone();
        assert_eq!(
            recorded,
            [Census {
                in_flight: vec![(AnyStatus::Video(VideoStatus::Processing), 1)],
                revokes_pending: 0,
            }]
        );
    }
}
