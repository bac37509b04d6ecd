//! The API against a real, stock Celery worker: the application booted as `main` boots it with
//! `REDIS_URL` set, a real store, and the reference worker of `apps/worker` (prefork,
//! concurrency 2, short simulated durations), all talked to over HTTP. Each test starts its own
//! worker on a queue of its own.
//!
//! Redis DBs (other binaries use 0-2 and 8-15): 3 the cancels over both kinds of worker, 4 the dashboard in a browser, 5 the happy paths,
//! the failure and the cleanups, 6 the single cancels, 7 cancel-all alone, because it counts every PUBLISH on its DB's pidbox
//! channel and the pidbox channel is per DB, not per queue.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod support;

use common::contract;

mod cancel;
mod cancel_all;
mod cleanup;
mod dashboard;
mod failure;
mod flow;
mod rabbitmq;
mod worker_kinds;
