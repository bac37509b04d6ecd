//! Seeding through bulk SQL and one Redis pipeline per user, not through HTTP, which would make
//! the seed longer than the measurements.

use std::io::Write as _;
use std::path::PathBuf;

use ensinalab_migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use crate::queue::{self, Template, job_kind};
use crate::{AnyError, Target};

/// The result backend's key prefix (Celery's `celery-task-meta-<id>`).
pub const META_PREFIX: &str = "celery-task-meta-";

#[derive(clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    target: Target,
    /// Active jobs per user: even ones are videos (`processing`), odd ones briefings
    /// (`generating_options`), all with a task id.
    #[arg(long)]
    jobs: usize,
    /// Appends `<user_id> <task_id>` for one task per user that has a backend value (for the
    /// `GET /tasks/{task_id}/status` case).
    #[arg(long)]
    tasks_out: Option<PathBuf>,
    /// Jobs still waiting for a worker: each gets a real task message in `--queue` (behind
    /// whatever the queue holds) and no backend value (PENDING).
    #[arg(long)]
    queued: bool,
    /// The queue of `--queued` (`CELERY_QUEUE`).
    #[arg(long, default_value = "celery")]
    queue: String,
}

pub async fn run(args: SeedArgs) -> Result<(), AnyError> {
    let db = Database::connect(args.target.database_url.as_str()).await?;
    Migrator::up(&db, None).await?;
    let client = redis::Client::open(args.target.redis_url.as_str())?;
    let mut redis = client.get_multiplexed_async_connection().await?;
    let mut tasks_out = match &args.tasks_out {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => None,
    };
    let templates = if args.queued {
        Some([
            Template::of(&args.target.redis_url, &mut redis, job_kind(0)).await?,
            Template::of(&args.target.redis_url, &mut redis, job_kind(1)).await?,
        ])
    } else {
        None
    };
    for user in args.target.first_user..args.target.first_user + args.target.users {
        let ids: Vec<String> = (0..args.jobs)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        db.execute_unprepared(&jobs_sql(user, &ids)).await?;
        if let Some(templates) = &templates {
            let messages = ids
                .iter()
                .enumerate()
                .map(|(i, id)| templates[i % 2].copy(id));
            queue::push(&mut redis, &args.queue, messages).await?;
            continue;
        }
        let mut pipe = redis::pipe();
        for (i, id) in ids
            .iter()
            .enumerate()
            .filter(|(i, _)| has_backend_value(*i))
        {
            pipe.set_ex(format!("{META_PREFIX}{id}"), backend_value(i, id), 86_400)
                .ignore();
        }
        pipe.exec_async(&mut redis).await?;
        if let (Some(out), Some(first)) = (tasks_out.as_mut(), ids.first()) {
            writeln!(out, "{user} {first}")?;
        }
    }
    eprintln!(
        "seeded users {}..{} with {} active jobs each{}",
        args.target.first_user,
        args.target.first_user + args.target.users - 1,
        args.jobs,
        if args.queued { ", queued" } else { "" }
    );
    Ok(())
}

/// Two task ids in three have a backend value; the third is PENDING (no key), as a task still
/// in the queue would be.
fn has_backend_value(i: usize) -> bool {
    i % 3 != 2
}

/// What a worker with `task_track_started` writes: PROGRESS for videos, STARTED for briefings.
fn backend_value(i: usize, id: &str) -> String {
    let (status, result) = if i.is_multiple_of(2) {
        ("PROGRESS", json!({"current": 3, "total": 10, "pid": 4242}))
    } else {
        (
            "STARTED",
            json!({"pid": 4242, "hostname": "bench@localhost"}),
        )
    };
    json!({
        "status": status, "result": result, "traceback": null, "children": [],
        "date_done": null, "task_id": id,
    })
    .to_string()
}

/// A parent briefing (`options_ready`, not active) with one option for the videos to hang
/// from, then the jobs, newest first by a second each. Task ids are UUIDs made here, so
/// inlining them is safe.
fn jobs_sql(user: i64, ids: &[String]) -> String {
    let values = |kind: usize| {
        ids.iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == kind)
            .map(|(i, id)| format!("('{id}', {i})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sql = format!(
        "WITH parent AS (
           INSERT INTO briefings (user_id, title, description, duration_minutes, status,
                                  created_at, updated_at)
           VALUES ({user}, 'parent', '', 10, 'options_ready', now(), now()) RETURNING id)
         INSERT INTO options (briefing_id, title, description, generator_type, created_at)
         SELECT id, 'option', '', 'simple', now() FROM parent;"
    );
    let videos = values(0);
    if !videos.is_empty() {
        sql.push_str(&format!(
            "INSERT INTO videos (user_id, briefing_id, option_id, title, generator_type, status,
                                 progress, task_id, created_at, updated_at)
             SELECT {user}, o.briefing_id, o.id, 'video ' || t.n, 'simple', 'processing', 0.3,
                    t.id, now() - t.n * interval '1 second', now()
             FROM (SELECT o.* FROM options o JOIN briefings b ON b.id = o.briefing_id
                   WHERE b.user_id = {user} ORDER BY o.id DESC LIMIT 1) o,
                  (VALUES {videos}) t(id, n);"
        ));
    }
    let briefings = values(1);
    if !briefings.is_empty() {
        sql.push_str(&format!(
            "INSERT INTO briefings (user_id, title, description, duration_minutes, status,
                                    task_id, created_at, updated_at)
             SELECT {user}, 'briefing ' || t.n, '', 10, 'generating_options', t.id,
                    now() - t.n * interval '1 second', now()
             FROM (VALUES {briefings}) t(id, n);"
        ));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_task_ids_in_three_get_a_backend_value() {
        let with: Vec<usize> = (0..6).filter(|i| has_backend_value(*i)).collect();
        assert_eq!(with, vec![0, 1, 3, 4]);
    }

    #[test]
    fn one_job_is_one_video_and_no_briefing_insert() {
        let sql = jobs_sql(7, &["00000000-0000-4000-8000-000000000000".to_owned()]);
        assert!(sql.contains("INSERT INTO videos"));
        assert!(!sql.contains("'generating_options'"));
    }
}
