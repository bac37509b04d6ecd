//! Startup: adapters chosen from the configuration, the HTTP server bound, the background jobs
//! (`ensinalab-jobs`) started beside it, and the metrics listener when `METRICS_ADDR` is set.
//! [`Application::build`] is what `main` runs; tests boot the same server on port 0 through
//! [`Application::from_parts`] with adapters they keep a handle on.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use ensinalab_app::SecurityTrail;
use ensinalab_app::{AlertQueue, Drains, Service, Settings};
use ensinalab_celery::{CeleryBroker, CeleryConfig, WorkerOnline};
use ensinalab_domain::TaskId;
use ensinalab_jobs::alerts::Mail;
use ensinalab_jobs::dispatcher::DispatcherSettings;
use ensinalab_jobs::{Feeds, Jobs, Pacing};
use ensinalab_live::{Hub, HubSettings, Relay, RelayError};
use ensinalab_local::{LocalBroker, LocalConfig};
use ensinalab_mail::SmtpMailer;
use ensinalab_metrics::Metrics;
use ensinalab_ports::{CensusSink, ResourceNames, Store, TaskBroker};
use tokio::sync::mpsc::Receiver;

use crate::auth::Authenticator;
use crate::config::{BrokerChoice, Config};
use crate::deadline::RequestDeadline;
use crate::ids::{Hashids, HashidsError};
use crate::live::LiveStreams;
use crate::probe::Probe;
use crate::ratelimit::RateLimits;
use crate::routes;
use crate::routes::{READY_MAX_AGE, Readiness};

/// How long the background jobs may take to finish what they are doing once the server stopped.
const JOBS_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A listener's address is taken or not ours; `var` names the setting to change.
    #[error("{var}: cannot bind {addr}")]
    Bind {
        var: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Hashids(#[from] HashidsError),
    #[error("cannot open the database")]
    Store(#[source] ensinalab_ports::BoxError),
    #[error("cannot reach the task broker")]
    Broker(#[source] ensinalab_ports::BoxError),
    #[error("cannot start the HTTP server")]
    Server(#[source] std::io::Error),
    #[error("cannot set up the rate limiter")]
    RateLimiter(#[source] ensinalab_ports::BoxError),
    #[error("cannot set up the alert e-mail")]
    Mail(#[source] ensinalab_ports::BoxError),
    #[error("cannot set up the live stream's relay")]
    Relay(#[source] RelayError),
}

/// A bound, not yet running server, its metrics listener, and its running background jobs.
pub struct Application {
    port: u16,
    server: Server,
    /// The metrics listener's port and server, when `METRICS_ADDR` is set.
    metrics: Option<(u16, Server)>,
    jobs: Jobs,
    live: Arc<Hub>,
    relay: Option<Relay>,
}

impl Application {
    /// Opens the store from `DATABASE_URL` (migrating unless `AUTO_MIGRATE=false`), picks the
    /// broker (Celery when `REDIS_URL` is set, else the in-process one) and binds the server.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`StartupError`] naming what could not be set up.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let store = open_store(config).await?;
        if config.auto_migrate {
            store
                .migrate()
                .await
                .map_err(|e| StartupError::Store(e.into()))?;
        }
        match &config.broker {
            BrokerChoice::Local {
                options_secs,
                video_secs,
            } => {
                let broker = LocalBroker::new(LocalConfig {
                    options_duration: Duration::from_secs(*options_secs),
                    video_duration: Duration::from_secs(*video_secs),
                });
                let changes = broker.watch();
                Self::run(config, store, broker, Some(changes), None)
            }
            BrokerChoice::Celery {
                redis_url,
                broker_url,
                queue,
                revoke_confirm,
                unqueue,
            } => {
                // Built without touching the network: a Redis that is down at start shows on
                // /readyz and heals by itself, rather than keeping the API down.
                let mut celery = CeleryConfig::new(redis_url.clone()).with_queue(queue);
                celery.revoke_confirm = *revoke_confirm;
                celery.unqueue = *unqueue;
                celery.broker_url.clone_from(broker_url);
                let broker =
                    CeleryBroker::new(celery).map_err(|e| StartupError::Broker(e.into()))?;
                let changes = broker.watch();
                let online = broker.workers_online();
                Self::run(config, store, broker, Some(changes), Some(online))
            }
        }
    }

    /// [`Self::from_parts`] over a fresh service, with the operators' alert e-mail when it is
    /// configured: one instantiation per broker choice.
    fn run<B: TaskBroker + 'static>(
        config: &Config,
        store: ensinalab_store::SqlStore,
        broker: B,
        changes: Option<Receiver<TaskId>>,
        online: Option<Receiver<WorkerOnline>>,
    ) -> Result<Self, StartupError> {
        let (mut service, drains) = Service::new(store, broker, settings(config));
        let mail = match &config.alert_mail {
            Some(alert) => {
                let (queue, alerts) = AlertQueue::new();
                service = service.with_sink(Arc::new(queue));
                Some(Mail {
                    alerts,
                    mailer: SmtpMailer::new(&alert.mail)
                        .map_err(|e| StartupError::Mail(e.into()))?,
                    min_interval: alert.min_interval,
                })
            }
            None => None,
        };
        Self::start(
            config,
            (service, drains),
            changes,
            online,
            DispatcherSettings::default(),
            mail,
        )
    }

    /// Binds the server over the service's store and broker, and starts the background jobs:
    /// the reconciler on `changes` (the broker's change feed) plus its periodic sweep, the
    /// lost-worker check, the automatic timeout, the cleanup dispatcher and orphan sweep, the
    /// security-trail writer and the revoke dispatcher (without a worker-online feed). Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`StartupError`] when the address cannot be bound or the settings are invalid.
    pub fn from_parts<S, B>(
        config: &Config,
        service: (Service<S, B>, Drains),
        changes: Option<Receiver<TaskId>>,
    ) -> Result<Self, StartupError>
    where
        S: Store + Probe + 'static,
        B: TaskBroker + 'static,
    {
        Self::from_parts_with(
            config,
            service,
            changes,
            None,
            DispatcherSettings::default(),
        )
    }

    /// [`Self::from_parts`], with the revoke dispatcher woken by `online` (workers coming
    /// online) and paced by `dispatch`.
    ///
    /// # Errors
    /// [`StartupError`] when the address cannot be bound or the settings are invalid.
    pub fn from_parts_with<S, B>(
        config: &Config,
        service: (Service<S, B>, Drains),
        changes: Option<Receiver<TaskId>>,
        online: Option<Receiver<WorkerOnline>>,
        dispatch: DispatcherSettings,
    ) -> Result<Self, StartupError>
    where
        S: Store + Probe + 'static,
        B: TaskBroker + 'static,
    {
        Self::start(config, service, changes, online, dispatch, None)
    }

    /// Binds the server (and the metrics listener, when configured) and starts the jobs, the
    /// alert e-mail's among them when `mail` is given (its queue must be one of the service's
    /// sinks), the census of jobs in flight when metrics are served. The metrics and the live
    /// stream become sinks of the service here, so every way of starting the server has them;
    /// with Celery the live events are relayed through the broker's Redis to the other servers
    /// of the same queue.
    fn start<S, B>(
        config: &Config,
        service: (Service<S, B>, Drains),
        changes: Option<Receiver<TaskId>>,
        online: Option<Receiver<WorkerOnline>>,
        dispatch: DispatcherSettings,
        mail: Option<Mail<SmtpMailer>>,
    ) -> Result<Self, StartupError>
    where
        S: Store + Probe + 'static,
        B: TaskBroker + 'static,
    {
        let metrics = Metrics::new();
        let gauge = metrics.event_streams();
        let hub = Hub::observed(
            HubSettings {
                max_streams_per_user: config.max_streams_per_user as usize,
                max_streams: config.max_streams as usize,
                ..HubSettings::default()
            },
            Some(Box::new(move |open| gauge.set(open))),
        );
        let (relay, publisher) = match &config.broker {
            BrokerChoice::Celery {
                redis_url, queue, ..
            } if config.live_relay => {
                let (relay, publisher) = Relay::start(
                    redis_url,
                    format!("ensinalab:live:{queue}"),
                    Arc::clone(&hub),
                )
                .map_err(StartupError::Relay)?;
                (Some(relay), Some(publisher))
            }
            BrokerChoice::Celery { .. } | BrokerChoice::Local { .. } => (None, None),
        };
        let ids = Hashids::new(&config.hashids)?;
        let (service, drains) = service;
        let service = Arc::new(
            service
                .with_resource_names(ResourceNames::new({
                    let ids = ids.clone();
                    move |id| ids.encode(id)
                }))
                .with_sink(Arc::new(metrics.clone()))
                .with_sink(Arc::new(crate::live::sink(
                    Arc::clone(&hub),
                    publisher,
                    ids.clone(),
                ))),
        );
        let live = LiveStreams {
            hub: Arc::clone(&hub),
            heartbeat: config.live_heartbeat,
        };
        let trail = service.trail().clone();
        let exporter = config
            .metrics_addr
            .map(|addr| {
                crate::metrics::bind(addr, metrics.clone()).map_err(|source| StartupError::Bind {
                    var: "METRICS_ADDR",
                    addr,
                    source,
                })
            })
            .transpose()?;
        let (port, server) = Self::bind(
            config,
            Arc::clone(&service),
            ids,
            trail,
            live,
            metrics.clone(),
        )?;
        let census: Option<Arc<dyn CensusSink>> = exporter
            .is_some()
            .then(|| Arc::new(metrics) as Arc<dyn CensusSink>);
        let feeds = Feeds {
            task_changes: changes,
            workers_online: online,
            drains,
            mail,
            census,
        };
        let pacing = Pacing {
            reconcile_every: config.reconcile_interval,
            dispatcher: dispatch,
            trail_retention: Duration::from_secs(
                u64::from(config.security_event_retention_days) * 24 * 3600,
            ),
            timeout_sweep_every: config.auto_cancel_sweep,
            orphan_sweep_every: config.orphan_sweep,
            revoke_grace: config.revoke_grace,
            census_every: config.metrics_census,
        };
        if let Some((metrics_port, _)) = &exporter {
            tracing::info!(
                port = metrics_port,
                "metrics served on their own listener at /metrics"
            );
        }
        Ok(Self {
            port,
            server,
            metrics: exporter,
            jobs: ensinalab_jobs::start(service, feeds, pacing),
            live: hub,
            relay,
        })
    }

    /// The HTTP server, bound; `ids` are the ones the live stream renders with too.
    fn bind<S, B>(
        config: &Config,
        service: Arc<Service<S, B>>,
        ids: Hashids,
        trail: SecurityTrail,
        live: LiveStreams,
        metrics: Metrics,
    ) -> Result<(u16, Server), StartupError>
    where
        S: Store + Probe + 'static,
        B: TaskBroker + 'static,
    {
        let listener =
            TcpListener::bind(config.bind_addr).map_err(|source| StartupError::Bind {
                var: "BIND_ADDR",
                addr: config.bind_addr,
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                var: "BIND_ADDR",
                addr: config.bind_addr,
                source,
            })?
            .port();
        let ids = web::Data::new(ids);
        let auth = web::Data::new(Authenticator::new(&config.jwt));
        let data = web::Data::from(service);
        let json_limit = config.json_limit_bytes;
        let limits = web::Data::new(
            RateLimits::new(&config.rate_limit).map_err(|e| StartupError::RateLimiter(e.into()))?,
        );
        let trail = web::Data::new(trail);
        let proxies = web::Data::new(config.trusted_proxies.clone());
        let deadline = web::Data::new(RequestDeadline(config.http.request_timeout));
        let readiness = web::Data::new(Readiness::new(READY_MAX_AGE));
        let live = web::Data::new(live);
        let metrics = web::Data::new(metrics);
        let http = config.http;
        let stall = config.live_stall;
        let server = HttpServer::new(move || {
            App::new()
                // Inside the request log, so refusals are logged with their 429.
                .wrap(actix_web::middleware::from_fn(crate::ratelimit::enforce))
                .wrap(actix_web::middleware::from_fn(
                    crate::telemetry::log_request,
                ))
                // Every answer is data for this caller only: never sniffed, never cached.
                .wrap(
                    DefaultHeaders::new()
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .wrap(actix_web::middleware::from_fn(crate::deadline::enforce))
                // Outermost: every answer is counted with the status the client got.
                .wrap(actix_web::middleware::from_fn(crate::metrics::observe))
                .app_data(metrics.clone())
                .app_data(deadline.clone())
                .app_data(readiness.clone())
                .app_data(proxies.clone())
                .app_data(data.clone())
                .app_data(ids.clone())
                .app_data(auth.clone())
                .app_data(limits.clone())
                .app_data(trail.clone())
                .app_data(live.clone())
                .app_data(routes::json_config(json_limit))
                .app_data(routes::query_config())
                .configure(routes::configure::<S, B>)
                .default_service(web::to(routes::not_found))
        })
        .on_connect(move |conn, _| cut_when_stalled(conn, stall))
        .client_request_timeout(http.header_timeout)
        .client_disconnect_timeout(http.disconnect_timeout)
        .keep_alive(http.keep_alive)
        .listen(listener)
        .map_err(StartupError::Server)?
        .run();
        Ok((port, server))
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Serves until SIGINT/SIGTERM (actix-web's signal handling drains in-flight requests),
    /// then stops the metrics listener and the background jobs. The same signal ends every live
    /// stream, which would otherwise keep the drain waiting for its whole timeout.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> Result<(), std::io::Error> {
        let exporter = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let live = Arc::clone(&self.live);
        let closer = tokio::spawn(async move {
            shutdown_signal().await;
            live.close();
        });
        let result = self.server.await;
        closer.abort();
        self.live.close();
        if let Some(relay) = &self.relay {
            relay.stop();
        }
        if let Some((handle, running)) = exporter {
            handle.stop(true).await;
            let _ = running.await;
        }
        self.jobs.stop(JOBS_GRACE).await;
        result
    }
}

/// `LIVE_STALL_SECS` on an accepted connection: once bytes sent to the client have waited
/// unacknowledged (a zero window included) this long, the kernel cuts the connection, which
/// ends a live stream whose client stopped reading and frees its slot; actix-web has no write
/// timeout of its own, and a response it cannot write is never polled again.
fn cut_when_stalled(conn: &dyn std::any::Any, stall: Duration) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Err(err) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(stall))
    {
        tracing::warn!(error = %err, "cannot set TCP_USER_TIMEOUT: a stalled client keeps its stream");
    }
}

/// SIGINT or SIGTERM, the signals actix-web stops on.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens the store of `DATABASE_URL` (for `main`'s `migrate` too).
///
/// # Errors
/// [`StartupError::Store`].
pub async fn open_store(config: &Config) -> Result<ensinalab_store::SqlStore, StartupError> {
    ensinalab_store::SqlStore::connect(&config.database_url)
        .await
        .map_err(|e| StartupError::Store(e.into()))
}

/// The use cases' settings from the configuration.
pub fn settings(config: &Config) -> Settings {
    Settings {
        task_time_limit_secs: config.task_time_limit_secs,
        auto_cancel: config.auto_cancel,
        max_active_jobs_per_user: config.max_active_jobs_per_user,
    }
}
