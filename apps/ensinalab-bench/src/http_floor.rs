//! The full-body floor of `GET /tasks/active`, the tightest this stack allows: a minimal
//! actix-web server doing only what no implementation of the route can skip. It verifies the
//! HS256 token; runs ONE plain statement through tokio-postgres, the leanest PostgreSQL driver
//! for Rust (`ensinalab_store::first_page_sql`: `UNION ALL ... ORDER BY created_at DESC LIMIT
//! page + 1`, prepared once per connection, generic plans, a small set of connections each
//! kept by one worker thread and shared by its requests, rows read by position with their text
//! borrowed), and takes the counts from the rows when they fit in the page (the separate count
//! only when a next page exists); one MGET of the rows' task ids; the hashids with the api's
//! encoder (the floor must not lose to the server at work they share); and writes the seed's
//! whole body: resource ids, `elapsed_time` with `is_stuck`, the `celery_status` block,
//! `can_cancel`, `summary`. Nothing else: no rate limit, trail, request log, metrics, deadline
//! or extra headers. `scripts/bench.sh` drives it with the same wrk targets as the server.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use ensinalab_api::config::HashidsConfig;
use ensinalab_api::ids::Hashids;
use ensinalab_domain::{CeleryState, DEFAULT_TASK_TIME_LIMIT_SECS, Elapsed};
use ensinalab_ports::DEFAULT_ACTIVE_PAGE;
use ensinalab_store::{count_sql, first_page_sql};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::{Client, NoTls, Statement};

use crate::AnyError;
use crate::seed::META_PREFIX;

#[derive(clap::Args)]
pub struct HttpFloorArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    #[arg(long, env = "JWT_SECRET")]
    jwt_secret: String,
    #[arg(long, env = "HASHIDS_SALT")]
    hashids_salt: String,
    #[arg(long, default_value_t = 6)]
    hashids_min_length: usize,
    #[arg(long)]
    port: u16,
    /// PostgreSQL connections at most; each worker thread keeps one (the store's active reads).
    #[arg(long, default_value_t = 4)]
    pool: usize,
}

struct Floor {
    database_url: String,
    /// One connection per worker thread, opened from it at its first request.
    connections: Vec<tokio::sync::OnceCell<Connection>>,
    redis_url: String,
    /// The same for Redis (the server's Celery adapter keeps one per thread).
    redis: Vec<tokio::sync::OnceCell<redis::aio::MultiplexedConnection>>,
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    hashids: Hashids,
}

struct Connection {
    client: Client,
    first: Statement,
    count: Statement,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct Meta<'a> {
    #[serde(borrow)]
    status: &'a str,
}

#[derive(serde::Serialize)]
struct Body<'a> {
    total: i64,
    tasks: Vec<Task<'a>>,
    summary: Summary,
    next_cursor: Option<&'a str>,
    celery_unavailable: bool,
}

#[derive(serde::Serialize)]
struct Summary {
    briefings: i64,
    videos: i64,
}

#[derive(serde::Serialize)]
struct Task<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    resource_type: &'a str,
    resource_id: String,
    title: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<f64>,
    created_at: String,
    elapsed_time: ElapsedTime,
    task_id: Option<&'a str>,
    celery_status: CeleryStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    generator_type: Option<&'a str>,
    can_cancel: bool,
}

#[derive(serde::Serialize)]
struct ElapsedTime {
    seconds: u64,
    formatted: String,
    is_stuck: bool,
}

#[derive(serde::Serialize)]
struct CeleryStatus {
    state: String,
    ready: bool,
    successful: Option<bool>,
    failed: Option<bool>,
}

pub async fn run(args: HttpFloorArgs) -> Result<(), AnyError> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims = ["exp", "sub"].iter().map(|s| (*s).to_owned()).collect();
    let floor = web::Data::new(Floor {
        database_url: args.database_url,
        connections: (0..args.pool.max(1))
            .map(|_| tokio::sync::OnceCell::new())
            .collect(),
        redis_url: args.redis_url,
        redis: (0..args.pool.max(1))
            .map(|_| tokio::sync::OnceCell::new())
            .collect(),
        key: jsonwebtoken::DecodingKey::from_secret(args.jwt_secret.as_bytes()),
        validation,
        hashids: Hashids::new(&HashidsConfig {
            salt: args.hashids_salt,
            min_length: args.hashids_min_length,
        })?,
    });
    HttpServer::new(move || {
        App::new()
            .app_data(floor.clone())
            .route("/tasks/active", web::get().to(list))
    })
    .bind(("127.0.0.1", args.port))?
    .run()
    .await?;
    Ok(())
}

async fn list(req: HttpRequest, floor: web::Data<Floor>) -> HttpResponse {
    let Some(user) = user(&req, &floor) else {
        return HttpResponse::Unauthorized().finish();
    };
    match body(&floor, user).await {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(body),
        Err(err) => HttpResponse::InternalServerError().body(err.to_string()),
    }
}

fn user(req: &HttpRequest, floor: &Floor) -> Option<i64> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let claims = jsonwebtoken::decode::<Claims>(token, &floor.key, &floor.validation)
        .ok()?
        .claims;
    match claims.sub {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// This thread's place among the worker threads, in order of their first request.
fn home() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    HOME.with(|h| *h)
}

/// This thread's Redis connection, opened from it at its first request.
async fn redis(floor: &Floor) -> Result<&redis::aio::MultiplexedConnection, AnyError> {
    let slot = &floor.redis[home() % floor.redis.len()];
    slot.get_or_try_init(|| async {
        Ok::<_, AnyError>(
            redis::Client::open(floor.redis_url.as_str())?
                .get_multiplexed_async_connection()
                .await?,
        )
    })
    .await
}

/// This thread's PostgreSQL connection, opened from it at its first request so its task runs
/// here.
async fn connection(floor: &Floor) -> Result<&Connection, AnyError> {
    let slot = &floor.connections[home() % floor.connections.len()];
    slot.get_or_try_init(|| async {
        let mut config: tokio_postgres::Config = floor.database_url.parse()?;
        config.options("-c plan_cache_mode=force_generic_plan");
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        let first = client.prepare(first_page_sql()).await?;
        let count = client.prepare(count_sql()).await?;
        Ok::<_, AnyError>(Connection {
            client,
            first,
            count,
        })
    })
    .await
}

async fn body(floor: &Floor, user: i64) -> Result<Vec<u8>, AnyError> {
    let db = connection(floor).await?;
    let page = i64::from(DEFAULT_ACTIVE_PAGE);
    let rows = db.client.query(&db.first, &[&user, &(page + 1)]).await?;
    let (briefings, videos): (i64, i64) = if rows.len() > DEFAULT_ACTIVE_PAGE as usize {
        let counts = db.client.query_one(&db.count, &[&user]).await?;
        (counts.try_get(0)?, counts.try_get(1)?)
    } else {
        let briefings = rows
            .iter()
            .filter(|row| row.get::<_, &str>(0) == "briefing")
            .count();
        let briefings = i64::try_from(briefings)?;
        (briefings, i64::try_from(rows.len())? - briefings)
    };
    let rows = &rows[..rows.len().min(DEFAULT_ACTIVE_PAGE as usize)];
    let keys: Vec<String> = rows
        .iter()
        .filter_map(|row| row.try_get::<_, Option<&str>>(6).ok().flatten())
        .map(|task_id| format!("{META_PREFIX}{task_id}"))
        .collect();
    let values: Vec<Option<Vec<u8>>> = if keys.is_empty() {
        Vec::new()
    } else {
        redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut redis(floor).await?.clone())
            .await?
    };
    let mut states = values.iter();
    let now = OffsetDateTime::now_utc();
    let mut tasks = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: &str = row.try_get(0)?;
        let id: i64 = row.try_get(1)?;
        let created_at: OffsetDateTime = row.try_get(7)?;
        let task_id: Option<&str> = row.try_get(6)?;
        let state = match task_id.and_then(|_| states.next()) {
            Some(Some(meta)) => CeleryState::parse(serde_json::from_slice::<Meta>(meta)?.status),
            _ => CeleryState::parse("PENDING"),
        };
        let elapsed = Elapsed::between(created_at, now);
        tasks.push(Task {
            kind,
            resource_type: kind,
            resource_id: floor.hashids.encode(id),
            title: row.try_get(2)?,
            status: row.try_get(3)?,
            progress: row.try_get(4)?,
            created_at: created_at.format(&Rfc3339)?,
            elapsed_time: ElapsedTime {
                seconds: elapsed.seconds,
                formatted: elapsed.formatted(),
                is_stuck: elapsed.is_stuck(DEFAULT_TASK_TIME_LIMIT_SECS),
            },
            task_id,
            celery_status: CeleryStatus {
                state: state.as_str().to_owned(),
                ready: state.ready(),
                successful: state.successful(),
                failed: state.failed(),
            },
            generator_type: row.try_get(5)?,
            can_cancel: true,
        });
    }
    Ok(serde_json::to_vec(&Body {
        total: briefings + videos,
        tasks,
        summary: Summary { briefings, videos },
        next_cursor: None,
        celery_unavailable: false,
    })?)
}
