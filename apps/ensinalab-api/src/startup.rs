//! Startup: adapters chosen from the configuration, the HTTP server bound, the reconciler
//! started. [`Application::build`] is what `main` runs; tests boot the same server on port 0
//! through [`Application::from_parts`] with adapters they keep a handle on.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use ensinalab_domain::TaskId;
use ensinalab_ports::{Service, ServiceConfig, Store, TaskBroker};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::ids::{Hashids, HashidsError};
use crate::probe::Probe;
use crate::{reconciler, routes};

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
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Binds the server over `store` and `broker`, and starts the reconciler on `changes` (the
    /// broker's change feed) plus a periodic sweep. Must be called inside a tokio runtime.
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
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    crate::telemetry::log_request,
                ))
                .app_data(data.clone())
                .app_data(ids.clone())
                .app_data(auth.clone())
                .app_data(routes::json_config(json_limit))
                .configure(routes::configure::<S, B>)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)
        .map_err(StartupError::Server)?
        .run();
        let background = reconciler::spawn(service, changes, config.reconcile_interval);
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

/// The service settings from the configuration.
pub fn service_config(config: &Config) -> ServiceConfig {
    ServiceConfig {
        task_time_limit_secs: config.task_time_limit_secs,
    }
}
