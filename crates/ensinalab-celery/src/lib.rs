//! Celery over Redis: the [`TaskBroker`](ensinalab_ports::TaskBroker) port spoken in Celery's
//! own wire protocol, so EnsinaLab's workers stay stock Python Celery 5.x processes.
//!
//! This crate owns the Redis side of that protocol, as a Celery 5.7 worker speaks it:
//! protocol-2 task messages LPUSHed onto the queue's lists and validated first (a malformed one
//! can crash every worker that pops it); the result backend's `celery-task-meta-<id>` values
//! read with one MGET per batch; revokes that never read the queue: one pipelined
//! `SET <result key> REVOKED NX GET` per task writes REVOKED unless a worker's RECEIVED (its
//! claim, taken right before it runs the task) is there first, so a task the cancel claimed
//! never runs, whichever worker pops its message and whenever; then ONE terminate-with-SIGKILL
//! broadcast on the pidbox channel stops the tasks workers had claimed, reporting per task what
//! really happened; `inspect active` with reply collection; and a change feed of task ids from
//! the backend's PUBLISH. It knows nothing of briefings or videos beyond the task contract in
//! `docs/celery-contract.md`, which also states what a worker must do for a cancel to hold.
//!
//! With `CeleryConfig::broker_url`, RabbitMQ is the broker (`amqp.rs`): task messages are
//! published with publisher confirms to the queue's exchange, the revoke broadcast and
//! `inspect` go through the `celery.pidbox` fanout, worker events come from the `celeryev`
//! topic exchange; the claims and results stay on Redis, and there is no removal pass.
//!
//! Connections: hot-path commands (GET/MGET, LPUSH, PING) go through a multiplexed connection
//! per calling thread, made on that thread; the deadpool pool serves the revoke's claims and broadcast and the blocking reply reads; the
//! change feed has its own pub/sub connection. Every call is bounded by
//! [`CeleryConfig::command_timeout`], so a dead Redis is a fast
//! [`BrokerError::Unavailable`](ensinalab_ports::BrokerError::Unavailable), not a hang.

mod amqp;
mod broker;
mod config;
mod error;
mod events;
mod feed;
mod message;
mod result;
mod unqueue;

#[cfg(feature = "testing")]
pub mod testing;

pub use amqp::parse_broker_url;
pub use broker::{CeleryBroker, WorkerActivity, WorkerTask};
pub use config::CeleryConfig;
pub use events::WorkerOnline;
