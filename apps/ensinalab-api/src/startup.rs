//! Startup: adapters chosen from the configuration, the HTTP server bound, the reconciler
//! started. [`Application::build`] is what `main` runs; tests boot the same server on port 0
//! through [`Application::from_parts`] with adapters they keep a handle on.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use ensinalab_domain::TaskId;
use ensinalab_ports::{Service, ServiceConfig, Store, TaskBroker};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::config::{BrokerChoice, Config};
use crate::dispatcher::{self, DispatcherSettings};
use crate::ids::{Hashids, HashidsError};
use crate::lost;
use crate::probe::Probe;
use crate::ratelimit::RateLimits;
use crate::trail::{self, SecurityTrail};
use crate::{reconciler, routes};
use ensinalab_celery::{CeleryBroker, CeleryConfig, WorkerOnline};
use ensinalab_local::{LocalBroker, LocalConfig};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot bind {addr}")]
    Bind {
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
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    background: Vec<JoinHandle<()>>,
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
            BrokerChoice::Celery { redis_url, queue } => {
                // Built without touching the network: a Redis that is down at start shows on
                // /readyz and heals by itself, rather than keeping the API down.
                let broker =
                    CeleryBroker::new(CeleryConfig::new(redis_url.clone()).with_queue(queue))
                        .map_err(|e| StartupError::Broker(e.into()))?;
                let changes = broker.watch();
                let online = broker.workers_online();
                Self::run(config, store, broker, Some(changes), Some(online))
            }
        }
    }

    /// [`Self::from_parts`] over a fresh service: one instantiation per broker choice.
    fn run<B: TaskBroker + 'static>(
        config: &Config,
        store: ensinalab_store::Store,
        broker: B,
        changes: Option<Receiver<TaskId>>,
        online: Option<Receiver<WorkerOnline>>,
    ) -> Result<Self, StartupError> {
        let service = Arc::new(Service::new(store, broker, service_config(config)));
        Self::from_parts_with(
            config,
            service,
            changes,
            online,
            DispatcherSettings::default(),
        )
    }

    /// Binds the server over `store` and `broker`, and starts the reconciler on `changes` (the
    /// broker's change feed) plus a periodic sweep, and the revoke dispatcher (without a
    /// worker-online feed). Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`StartupError`] when the address cannot be bound or the settings are invalid.
    pub fn from_parts<S, B>(
        config: &Config,
        service: Arc<Service<S, B>>,
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
        service: Arc<Service<S, B>>,
        changes: Option<Receiver<TaskId>>,
        online: Option<Receiver<WorkerOnline>>,
        dispatch: DispatcherSettings,
    ) -> Result<Self, StartupError>
    where
        S: Store + Probe + 'static,
        B: TaskBroker + 'static,
    {
        let mut app = Self::bind(config, Arc::clone(&service), changes)?;
        app.background
            .push(lost::spawn(Arc::clone(&service), config.reconcile_interval));
        app.background
            .push(dispatcher::spawn(service, online, dispatch));
        Ok(app)
    }

    /// The server and the reconciler.
    fn bind<S, B>(
        config: &Config,
        service: Arc<Service<S, B>>,
        changes: Option<Receiver<TaskId>>,
    ) -> Result<Self, StartupError>
    where
        S: Store + Probe + 'static,
        B: TaskBroker + 'static,
    {
        let listener =
            TcpListener::bind(config.bind_addr).map_err(|source| StartupError::Bind {
                addr: config.bind_addr,
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: config.bind_addr,
                source,
            })?
            .port();
        let ids = web::Data::new(Hashids::new(&config.hashids)?);
        let auth = web::Data::new(Authenticator::new(&config.jwt));
        let data = web::Data::from(Arc::clone(&service));
        let json_limit = config.json_limit_bytes;
        let limits = web::Data::new(
            RateLimits::new(&config.rate_limit).map_err(|e| StartupError::RateLimiter(e.into()))?,
        );
        let (trail, trail_rx) = SecurityTrail::channel();
        let trail = web::Data::new(trail);
        let trail_writer = trail::spawn_writer(Arc::clone(&service), trail_rx);
        let server = HttpServer::new(move || {
            App::new()
                // Inside the request log, so refusals are logged with their 429.
                .wrap(actix_web::middleware::from_fn(crate::ratelimit::enforce))
                .wrap(actix_web::middleware::from_fn(
                    crate::telemetry::log_request,
                ))
                .app_data(data.clone())
                .app_data(ids.clone())
                .app_data(auth.clone())
                .app_data(limits.clone())
                .app_data(trail.clone())
                .app_data(routes::json_config(json_limit))
                .configure(routes::configure::<S, B>)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)
        .map_err(StartupError::Server)?
        .run();
        let mut background = reconciler::spawn(service, changes, config.reconcile_interval);
        background.push(trail_writer);
        Ok(Self {
            port,
            server,
            background,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM (actix-web's signal handling drains in-flight requests),
    /// then stops the reconciler.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> Result<(), std::io::Error> {
        let result = self.server.await;
        for handle in self.background {
            handle.abort();
        }
        result
    }
}

/// Opens the store of `DATABASE_URL` (for `main`'s `migrate` too).
///
/// # Errors
/// [`StartupError::Store`].
pub async fn open_store(config: &Config) -> Result<ensinalab_store::Store, StartupError> {
    ensinalab_store::Store::connect(&config.database_url)
        .await
        .map_err(|e| StartupError::Store(e.into()))
}

/// The service settings from the configuration.
pub fn service_config(config: &Config) -> ServiceConfig {
    ServiceConfig {
        task_time_limit_secs: config.task_time_limit_secs,
    }
}
