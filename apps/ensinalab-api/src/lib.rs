//! The EnsinaLab task-control HTTP API.
//!
//! This crate owns everything HTTP: configuration from the environment, startup (the store and
//! broker chosen at run time, each choice instantiating one generic `run`, and the background
//! jobs of `ensinalab-jobs` started beside the server), JWT authentication,
//! hashids in URLs and bodies, the JSON wire shapes of the seed contract
//! (`docs/api.md`), the OpenAPI document and the mapping of every use-case error to one
//! [`ApiError`]. The rules themselves live in `ensinalab-ports` and `ensinalab-domain`; a
//! handler here parses, calls one use case and maps its result, nothing more.

pub mod auth;
pub mod client;
pub mod config;
pub mod deadline;
pub mod dto;
pub mod error;
pub mod ids;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod probe;
pub mod ratelimit;
pub mod routes;
pub mod startup;
pub mod telemetry;

pub use config::Config;
pub use error::ApiError;
pub use startup::Application;
