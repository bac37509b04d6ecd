//! Fault tests: real servers (Redis, PostgreSQL, a Celery worker) that each test starts, stops
//! and restarts itself on free ports of its own, under the real application on port 0.
//! `docs/reliability.md` lists what each one proves.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod support;

use common::contract;

mod alerts;
mod concurrency;
mod late_success;
mod live;
mod postgres_down;
mod rabbitmq_down;
mod redis_down;
mod timeout;
mod worker_killed;
