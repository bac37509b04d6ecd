//! Real task messages in the Celery queue, for the cancel-with-a-backlog case: other users'
//! backlog (`backlog`), the queued jobs of seeded users (`seed --queued`), and what the Redis
//! SLOWLOG holds afterwards (`slowlog`).

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::{BriefingId, OptionId, TaskId, VideoId};
use ensinalab_ports::{TaskBroker as _, TaskKind, TaskRequest};
use redis::aio::MultiplexedConnection;

use crate::AnyError;

/// Messages per LPUSH while seeding.
const PUSH_BATCH: usize = 1_000;

#[derive(clap::Args)]
pub struct BacklogArgs {
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// The queue the server publishes to (`CELERY_QUEUE`).
    #[arg(long, default_value = "celery")]
    queue: String,
    /// Messages of other users to queue.
    #[arg(long)]
    messages: usize,
}

#[derive(clap::Args)]
pub struct SlowlogArgs {
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// The bound the service's commands must stay under.
    #[arg(long, default_value_t = 5_000)]
    bound_micros: i64,
}

/// One message exactly as the Celery adapter publishes it (published into a scratch queue and
/// taken back, so the bench holds no copy of the envelope code), to copy with other task ids.
pub struct Template {
    text: String,
    id: String,
    tag: String,
}

impl Template {
    pub async fn of(
        redis_url: &str,
        conn: &mut MultiplexedConnection,
        kind: TaskKind,
    ) -> Result<Self, AnyError> {
        let scratch = format!("ensinalab-bench-template-{}", uuid::Uuid::new_v4().simple());
        let id = uuid::Uuid::new_v4().to_string();
        let task = TaskRequest {
            id: TaskId::parse(&id)?,
            kind,
        };
        CeleryBroker::new(CeleryConfig::new(redis_url).with_queue(&scratch))?
            .publish(&task)
            .await?;
        let text: String = redis::cmd("LPOP").arg(&scratch).query_async(conn).await?;
        let envelope: serde_json::Value = serde_json::from_str(&text)?;
        let tag = envelope["properties"]["delivery_tag"]
            .as_str()
            .ok_or("a published message without a delivery tag")?
            .to_owned();
        Ok(Self { text, id, tag })
    }

    /// An options task of another user, about 1 KB: the backlog's message.
    pub async fn other_users(
        redis_url: &str,
        conn: &mut MultiplexedConnection,
    ) -> Result<Self, AnyError> {
        let kind = TaskKind::GenerateOptions {
            briefing_id: BriefingId(90_210),
            title: "Briefing de outro usuário".to_owned(),
            description: "Ciclo da água e estados físicos da matéria, com exemplos do cotidiano"
                .to_owned(),
            duration_minutes: 10,
        };
        Self::of(redis_url, conn, kind).await
    }

    /// The message of task `id`, with a delivery tag of its own.
    pub fn copy(&self, id: &str) -> String {
        self.text
            .replace(&self.id, id)
            .replace(&self.tag, &uuid::Uuid::new_v4().to_string())
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }
}

/// LPUSHes `messages` onto `queue`, in batches, in order (the first is consumed first).
pub async fn push(
    conn: &mut MultiplexedConnection,
    queue: &str,
    messages: impl Iterator<Item = String>,
) -> Result<(), AnyError> {
    let mut batch = Vec::with_capacity(PUSH_BATCH);
    for message in messages {
        batch.push(message);
        if batch.len() == PUSH_BATCH {
            let _: () = redis::cmd("LPUSH")
                .arg(queue)
                .arg(&batch)
                .query_async(conn)
                .await?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        let _: () = redis::cmd("LPUSH")
            .arg(queue)
            .arg(&batch)
            .query_async(conn)
            .await?;
    }
    Ok(())
}

/// The message kinds of a seeded user's jobs: even jobs are videos, odd ones briefings.
pub fn job_kind(i: usize) -> TaskKind {
    if i.is_multiple_of(2) {
        TaskKind::GenerateVideo {
            video_id: VideoId(1),
            briefing_id: BriefingId(1),
            option_id: OptionId(1),
            title: format!("video {i}"),
            generator_type: "simple".to_owned(),
            duration_minutes: 10,
        }
    } else {
        TaskKind::GenerateOptions {
            briefing_id: BriefingId(1),
            title: format!("briefing {i}"),
            description: String::new(),
            duration_minutes: 10,
        }
    }
}

/// Queues `messages` options tasks of other users, about 1 KB each.
pub async fn backlog(args: BacklogArgs) -> Result<(), AnyError> {
    let client = redis::Client::open(args.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let template = Template::other_users(&args.redis_url, &mut conn).await?;
    let ids = (0..args.messages).map(|_| uuid::Uuid::new_v4().to_string());
    push(&mut conn, &args.queue, ids.map(|id| template.copy(&id))).await?;
    eprintln!(
        "queued {} messages of {} bytes of other users",
        args.messages,
        template.len()
    );
    Ok(())
}

/// Prints `SLOWLOG entries=N over_bound=K slowest_us=X slowest=<command>` for everything the
/// SLOWLOG holds (the harness resets it and sets its threshold first).
pub async fn slowlog(args: SlowlogArgs) -> Result<(), AnyError> {
    let client = redis::Client::open(args.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    report_slowlog(&mut conn, args.bound_micros).await
}

/// Prints the SLOWLOG line of [`slowlog`] for the server `conn` talks to.
pub async fn report_slowlog(
    conn: &mut MultiplexedConnection,
    bound_micros: i64,
) -> Result<(), AnyError> {
    let len: i64 = redis::cmd("SLOWLOG").arg("LEN").query_async(conn).await?;
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(len.max(1))
        .query_async(conn)
        .await?;
    let mut over = 0;
    let mut slowest: Option<(i64, String)> = None;
    for entry in &entries {
        let redis::Value::Array(fields) = entry else {
            continue;
        };
        let (Some(redis::Value::Int(micros)), Some(redis::Value::Array(argv))) =
            (fields.get(2), fields.get(3))
        else {
            continue;
        };
        let command = match argv.first() {
            Some(redis::Value::BulkString(name)) => String::from_utf8_lossy(name).to_uppercase(),
            _ => "?".to_owned(),
        };
        if *micros >= bound_micros {
            over += 1;
        }
        if slowest.as_ref().is_none_or(|(m, _)| micros > m) {
            slowest = Some((*micros, command));
        }
    }
    let (slowest_us, slowest) = slowest.unwrap_or((0, "-".to_owned()));
    println!(
        "SLOWLOG entries={} over_bound={over} slowest_us={slowest_us} slowest={slowest}",
        entries.len()
    );
    Ok(())
}
