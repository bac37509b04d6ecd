//! Celery over Redis: the [`TaskBroker`](ensinalab_ports::TaskBroker) port spoken in Celery's
//! own wire protocol, so EnsinaLab's workers stay stock Python Celery 5.x processes.
//!
//! This crate owns the Redis side of that protocol (`docs/celery-contract.md` describes it as a
//! Celery 5.7 worker speaks it): protocol-2 task messages LPUSHed onto the queue's lists and
//! validated first (a malformed one can crash every worker that pops it); the result backend's
//! `celery-task-meta-<id>` values read with one MGET per batch; revokes that remove
//! still-queued messages atomically (a Lua script that also records them as REVOKED, the way
//! a worker would) and send ONE terminate-with-SIGKILL broadcast on the pidbox channel for the
//! rest, reporting per task what really happened; `inspect active` with reply collection; and
//! a change feed of task ids from the backend's PUBLISH. It knows nothing of briefings or
//! videos beyond the task contract in `docs/celery-contract.md`.
//!
//! Connections: hot-path commands (GET/MGET, LPUSH, PING) go through a multiplexed connection
//! per calling thread, made on that thread; the deadpool pool serves the revoke script and broadcast and the blocking reply reads; the
//! change feed has its own pub/sub connection. Every call is bounded by
//! [`CeleryConfig::command_timeout`], so a dead Redis is a fast
//! [`BrokerError::Unavailable`](ensinalab_ports::BrokerError::Unavailable), not a hang.

mod broker;
mod config;
mod error;
mod events;
mod feed;
mod message;
mod result;

#[cfg(feature = "testing")]
pub mod testing;

pub use broker::{CeleryBroker, WorkerActivity, WorkerTask};
pub use config::CeleryConfig;
pub use events::WorkerOnline;
