//! `confirm`: how long a revoke takes to learn that the worker killed a running task, from the
//! call to its report, over tasks that really run on a worker started by the caller
//! (`scripts/bench-celery.sh`). Each video is published, awaited until a pool process runs it,
//! then revoked alone; the report's outcome and the call's wall time are kept.

use std::time::{Duration, Instant};

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::{BriefingId, OptionId, TaskId, VideoId};
use ensinalab_ports::{RevokeOutcome, TaskBroker as _, TaskKind, TaskRequest};

use crate::AnyError;

#[derive(clap::Args)]
pub struct ConfirmArgs {
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// RabbitMQ as the broker (`CELERY_BROKER_URL`); unset, Redis is.
    #[arg(long, env = "CELERY_BROKER_URL")]
    broker_url: Option<String>,
    /// The queue the worker consumes.
    #[arg(long, default_value = "celery")]
    queue: String,
    /// Running tasks to cancel, one at a time.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// The adapter's confirmation window (`REVOKE_CONFIRM_MS`).
    #[arg(long, default_value_t = 250)]
    confirm_ms: u64,
    /// How long each task has run when it is revoked (0: as soon as it reads as running,
    /// while the worker may still be replacing the process the previous kill took).
    #[arg(long, default_value_t = 0)]
    running_ms: u64,
    /// Then: this many videos published to a queue no worker consumes and revoked in one call,
    /// as a cancel-all of that many queued jobs revokes them (0: skipped).
    #[arg(long, default_value_t = 0)]
    queued: usize,
}

fn video(n: usize) -> Result<TaskRequest, AnyError> {
    let key = i64::try_from(n)?;
    Ok(TaskRequest {
        id: TaskId::parse(&uuid::Uuid::new_v4().to_string())?,
        kind: TaskKind::GenerateVideo {
            video_id: VideoId(key),
            briefing_id: BriefingId(key),
            option_id: OptionId(key),
            title: format!("Confirmação {n}"),
            generator_type: "simple".to_owned(),
            duration_minutes: 10,
        },
    })
}

/// Publishes `count` videos to `queue`-idle, which no worker consumes, and times the one
/// revoke of them all.
async fn queued(args: &ConfirmArgs) -> Result<(), AnyError> {
    let idle = format!("{}-idle", args.queue);
    let mut config = CeleryConfig::new(args.redis_url.as_str()).with_queue(&idle);
    config.broker_url.clone_from(&args.broker_url);
    let broker = CeleryBroker::connect(config).await?;
    let mut ids = Vec::with_capacity(args.queued);
    for n in 0..args.queued {
        let task = video(n)?;
        broker.publish(&task).await?;
        ids.push(task.id);
    }
    let t0 = Instant::now();
    let report = broker.revoke(&ids).await?;
    let took = t0.elapsed();
    let claimed = report
        .iter()
        .filter(|r| r.outcome == RevokeOutcome::Claimed)
        .count();
    println!(
        "QUEUED count={} claimed={claimed} revoke_ms={:.1}",
        ids.len(),
        took.as_secs_f64() * 1000.0
    );
    Ok(())
}

pub async fn run(args: ConfirmArgs) -> Result<(), AnyError> {
    let mut config = CeleryConfig::new(args.redis_url.as_str()).with_queue(&args.queue);
    config.broker_url.clone_from(&args.broker_url);
    config.revoke_confirm = Duration::from_millis(args.confirm_ms);
    let broker = CeleryBroker::connect(config).await?;
    let mut times = Vec::with_capacity(args.count);
    let mut killed = 0_usize;
    let mut other: Vec<RevokeOutcome> = Vec::new();
    for n in 0..args.count {
        let task = video(n)?;
        let id = task.id.clone();
        broker.publish(&task).await?;
        let waited = Instant::now();
        loop {
            let state = broker.states_only(&[&id]).await?.remove(0);
            if state.is_running() {
                break;
            }
            if waited.elapsed() > Duration::from_secs(30) {
                return Err(format!("task {n} not running after 30 s ({state})").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(args.running_ms)).await;
        let t0 = Instant::now();
        let report = broker.revoke(std::slice::from_ref(&id)).await?;
        times.push(t0.elapsed());
        match report[0].outcome {
            RevokeOutcome::Killed => killed += 1,
            outcome => other.push(outcome),
        }
    }
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times[i].as_secs_f64() * 1000.0
    };
    let other: Vec<&str> = other.iter().map(|o| o.as_str()).collect();
    println!(
        "CONFIRM running_ms={} count={} killed={killed} other={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        args.running_ms,
        times.len(),
        if other.is_empty() {
            "-".to_owned()
        } else {
            other.join(",")
        },
        at(0.5),
        at(0.99),
        at(1.0)
    );
    if args.queued > 0 {
        queued(&args).await?;
    }
    Ok(())
}
