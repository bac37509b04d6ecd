//! The store against real databases: every port method on PostgreSQL and on SQLite (one body,
//! two tests), a cancel-vs-completion race on PostgreSQL, and the connection edge.

// Test code throughout (the bodies the macro wraps and the fixtures are not `#[test]` fns, which
// is all `allow-unwrap-in-tests` covers): a panic is how a failure is reported.
#![allow(clippy::unwrap_used)]

mod support;

mod alerts;
mod audit;
mod briefings;
mod cancel;
mod cleanup;
mod connection;
mod outbox;
mod race;
mod stats;
mod tasks;
mod videos;
