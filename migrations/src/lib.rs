//! EnsinaLab's database schema, as sea-orm migrations that run unchanged on PostgreSQL
//! (production) and SQLite (the embedded default).
//!
//! This crate owns the tables (`briefings`, `options`, `videos`, `security_events`, the
//! `revoke_outbox`, the `cleanup_outbox`, `mail_slots`) and their indexes; `docs/schema.md`
//! describes them. It imports none of our crates, so the schema can be applied or inspected by
//! the `ensinalab-migration` binary alone. Migrations are append-only:
//! a shipped migration is never edited, a change is a new one.

use sea_orm_migration::prelude::*;

/// Re-exported so callers run [`Migrator`] without depending on sea-orm-migration themselves.
pub use sea_orm_migration::MigratorTrait;

mod m20261128_000001_create_tables;
mod m20261128_000002_briefing_task_id;
mod m20261128_000003_revoke_outbox;
mod m20261128_000004_revoke_outbox_by_task;
mod m20261129_000005_revoke_batches;
mod m20261202_000006_security_events_created;
mod m20261203_000007_started_at;
mod m20261203_000009_cleanup_outbox;
mod m20261203_000010_overdue_and_mail;
mod m20261203_000011_job_outcomes;
mod m20261207_000012_revoke_outbox_only;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_tables::Migration),
            Box::new(m20261128_000002_briefing_task_id::Migration),
            Box::new(m20261128_000003_revoke_outbox::Migration),
            Box::new(m20261128_000004_revoke_outbox_by_task::Migration),
            Box::new(m20261129_000005_revoke_batches::Migration),
            Box::new(m20261202_000006_security_events_created::Migration),
            Box::new(m20261203_000007_started_at::Migration),
            Box::new(m20261203_000009_cleanup_outbox::Migration),
            Box::new(m20261203_000010_overdue_and_mail::Migration),
            Box::new(m20261203_000011_job_outcomes::Migration),
            Box::new(m20261207_000012_revoke_outbox_only::Migration),
        ]
    }
}
