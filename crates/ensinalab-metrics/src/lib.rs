//! The service's Prometheus metrics: one registry, every metric family with its help text, and
//! the ways they are fed. Exposition is the `prometheus-client` crate's (OpenMetrics text);
//! serving it on its own listener is the api crate's.
//!
//! - Job counters are one more [`ChangeSink`] on the change stream: a use case emits each change
//!   once, after it committed, and [`Metrics`] counts it. No rule is decided here again.
//! - The HTTP layer counts requests by route template (never the raw path), auth failures and
//!   rate-limit refusals through [`Metrics::observe_request`], [`Metrics::auth_failed`] and
//!   [`Metrics::rate_limited`].
//! - Gauges of what is in flight come from the database through a [`CensusSink`], refreshed by a
//!   background job, so a scrape runs no query.
//! - [`StreamGauge`] holds the number of open live streams; [`process`] reads CPU, memory and descriptors of
//!   this process from `/proc` at scrape time.
//!
//! Counting on the request path is a lookup in a family's map under a read lock and an atomic
//! add: no IO, no lock held across a request.

pub mod process;

use std::sync::Arc;
use std::time::Duration;

use ensinalab_domain::{BriefingStatus, CancelReason, Lifecycle, ResourceKind, VideoStatus};
use ensinalab_ports::{AnyStatus, Census, CensusSink, ChangeKind, ChangeSink, Overdue, TaskChange};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` label of a request that matched no route: one value, whatever the path.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds, in seconds, of the request-duration histogram's buckets.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CancelLabels {
    kind: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    kind: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProblemLabels {
    problem: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Declares every metric family once: its field and type, how it starts, its name (a counter's
/// without `_total`, which the encoder appends) and its help text.
macro_rules! families {
    ($($field:ident: $type:ty = $new:expr, $name:literal, $help:literal;)*) => {
        /// Every metric family of the service.
        struct Families {
            $($field: $type,)*
        }

        impl Families {
            fn new() -> Self {
                Self { $($field: $new,)* }
            }

            fn register(&self, registry: &mut Registry) {
                $(registry.register($name, $help, self.$field.clone());)*
            }
        }
    };
}

families! {
    jobs_created: Family<KindLabels, Counter> = Family::default(),
        "ensinalab_jobs_created",
        "Jobs created (briefings' option generation and videos), by kind";
    cancellations: Family<CancelLabels, Counter> = Family::default(),
        "ensinalab_cancellations",
        "Jobs cancelled, by kind and reason (user: one job by its owner; user_all: its owner's \
         cancel-all; timeout: the automatic timeout; revoked: by someone else at the broker)";
    jobs_finished: Family<StatusLabels, Counter> = Family::default(),
        "ensinalab_jobs_finished",
        "Jobs that reached a final status, by kind and status (completed, failed, cancelled)";
    revokes: Family<OutcomeLabels, Counter> = Family::default(),
        "ensinalab_revokes",
        "Revokes that follow cancels, by what became of them (the revoke field of a cancel's \
         answer)";
    revokes_overdue: Family<ProblemLabels, Counter> = Family::default(),
        "ensinalab_revokes_overdue",
        "Cancels whose kill did not land in time, by problem (undelivered, still_running)";
    http_requests: Family<RequestLabels, Counter> = Family::default(),
        "ensinalab_http_requests",
        "HTTP requests answered, by route template, method and status";
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>
        = Family::new_with_constructor(duration_histogram),
        "ensinalab_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template and method";
    auth_failures: Counter = Counter::default(),
        "ensinalab_auth_failures",
        "Requests refused for a missing or invalid token";
    rate_limited: Family<PolicyLabels, Counter> = Family::default(),
        "ensinalab_rate_limited",
        "Requests refused by a rate limit, by policy (general, cancel)";
    jobs_in_flight: Family<StatusLabels, Gauge> = Family::default(),
        "ensinalab_jobs_in_flight",
        "Jobs in flight in the database, by kind and status (refreshed by a background census, \
         not per scrape)";
    revoke_outbox_pending: Gauge = Gauge::default(),
        "ensinalab_revoke_outbox_pending",
        "Revokes owed to the broker and not yet delivered (refreshed by the census)";
    event_streams: Gauge = Gauge::default(),
        "ensinalab_event_streams",
        "Live event streams open on this server";
}

impl Families {
    /// Exposes every job series at 0 from the start: a series that first appears at 1 loses
    /// that first increment to `increase()` and `rate()`, which the cancel-rate alert uses.
    fn start_at_zero(&self) {
        for resource in [ResourceKind::Briefing, ResourceKind::Video] {
            let kind = kind(resource);
            drop(self.jobs_created.get_or_create(&KindLabels { kind }));
            for reason in CancelReason::ALL {
                let reason = reason.as_str();
                drop(
                    self.cancellations
                        .get_or_create(&CancelLabels { kind, reason }),
                );
            }
            for status in ["completed", "failed", "cancelled"] {
                drop(
                    self.jobs_finished
                        .get_or_create(&StatusLabels { kind, status }),
                );
            }
        }
        for problem in [Overdue::Undelivered, Overdue::StillRunning] {
            let problem = problem.as_str();
            drop(
                self.revokes_overdue
                    .get_or_create(&ProblemLabels { problem }),
            );
        }
    }
}

struct Inner {
    registry: Registry,
    families: Families,
}

/// The registry and its families. Cheap to clone: clones count into the same metrics.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered (and the process collector), all at zero.
    pub fn new() -> Self {
        let families = Families::new();
        let mut registry = Registry::default();
        families.register(&mut registry);
        registry.register_collector(Box::new(process::ProcessCollector));
        families.start_at_zero();
        Self {
            inner: Arc::new(Inner { registry, families }),
        }
    }

    fn families(&self) -> &Families {
        &self.inner.families
    }

    /// Every metric in the text exposition format ([`CONTENT_TYPE`]).
    ///
    /// # Errors
    /// Only if formatting fails, which writing to a `String` does not.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)?;
        Ok(out)
    }

    /// One answered request: `route` is the matched route template or [`UNMATCHED_ROUTE`],
    /// never the raw path; `method` a standard method's name or `other`.
    pub fn observe_request(
        &self,
        route: String,
        method: &'static str,
        status: u16,
        took: Duration,
    ) {
        let f = self.families();
        f.http_duration
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method,
            })
            .observe(took.as_secs_f64());
        f.http_requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// A request refused for its token.
    pub fn auth_failed(&self) {
        self.families().auth_failures.inc();
    }

    /// A request refused by rate-limit `policy`.
    pub fn rate_limited(&self, policy: &'static str) {
        self.families()
            .rate_limited
            .get_or_create(&PolicyLabels { policy })
            .inc();
    }

    /// The gauge of open live streams.
    pub fn event_streams(&self) -> StreamGauge {
        StreamGauge(self.families().event_streams.clone())
    }
}

/// The number of open live streams, set by the live hub whenever it changes (the hub counts
/// them under its lock, so the gauge is never a guess of its own).
#[derive(Clone, Debug)]
pub struct StreamGauge(Gauge);

impl StreamGauge {
    /// `n` streams are open now.
    pub fn set(&self, n: usize) {
        self.0.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

fn kind(resource: ResourceKind) -> &'static str {
    resource.as_str()
}

impl ChangeSink for Metrics {
    fn publish(&self, change: &TaskChange) {
        let f = self.families();
        let kind = kind(change.resource.0);
        let finished = |status: &'static str| {
            f.jobs_finished
                .get_or_create(&StatusLabels { kind, status })
                .inc();
        };
        match change.kind {
            ChangeKind::Created => {
                f.jobs_created.get_or_create(&KindLabels { kind }).inc();
            }
            ChangeKind::Completed => finished("completed"),
            ChangeKind::Failed => finished("failed"),
            ChangeKind::Cancelled(reason) => {
                f.cancellations
                    .get_or_create(&CancelLabels {
                        kind,
                        reason: reason.as_str(),
                    })
                    .inc();
                finished("cancelled");
            }
            ChangeKind::Revoke(status) => {
                f.revokes
                    .get_or_create(&OutcomeLabels {
                        outcome: status.as_str(),
                    })
                    .inc();
            }
            ChangeKind::RevokeOverdue(problem) => {
                f.revokes_overdue
                    .get_or_create(&ProblemLabels {
                        problem: problem.as_str(),
                    })
                    .inc();
            }
            // Not final: a briefing with options waits for a choice, a video for approval.
            ChangeKind::Started
            | ChangeKind::Progress
            | ChangeKind::OptionsReady
            | ChangeKind::PendingApproval => {}
        }
    }
}

impl CensusSink for Metrics {
    fn record(&self, census: &Census) {
        let f = self.families();
        let count = |status: AnyStatus| {
            census
                .in_flight
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| i64::try_from(*n).unwrap_or(i64::MAX))
        };
        // Every in-flight status is set, to 0 when the census has none of it, so a status
        // that emptied does not keep its last value.
        let statuses = <BriefingStatus as Lifecycle>::IN_FLIGHT
            .iter()
            .map(|s| (ResourceKind::Briefing, AnyStatus::from(*s)))
            .chain(
                <VideoStatus as Lifecycle>::IN_FLIGHT
                    .iter()
                    .map(|s| (ResourceKind::Video, AnyStatus::from(*s))),
            );
        for (resource, status) in statuses {
            f.jobs_in_flight
                .get_or_create(&StatusLabels {
                    kind: kind(resource),
                    status: status.as_str(),
                })
                .set(count(status));
        }
        f.revoke_outbox_pending
            .set(i64::try_from(census.revokes_pending).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests;
