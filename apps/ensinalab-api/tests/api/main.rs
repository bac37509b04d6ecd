//! API tests: the real application on port 0, over HTTP, on SQLite and PostgreSQL. One binary
//! (zero-to-production's layout), so it is linked once.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod helpers;

use common::contract;

mod admin;
mod auth;
mod bad_input;
mod cli;
mod dashboard;
mod degraded;
mod docs;
mod flow;
mod hardening;
mod hashids;
mod live;
mod metrics;
mod ownership;
mod paging;
mod prometheus;
mod ratelimit;
mod seed;
mod stats;
mod streams;
mod timeout;
