//! The full-body floor of `GET /tasks/active`: a minimal actix-web server doing only what no
//! implementation of the route can skip. It verifies the HS256 token, runs the store's one
//! statement (generic plans, the store's pool, rows read by position with their text borrowed)
//! and one MGET of the rows' task ids, encodes the hashids (with the api's encoder: the floor
//! must not lose to the server at work they share), and writes the seed's whole body: resource
//! ids, `elapsed_time` with `is_stuck`, the `celery_status` block, `can_cancel`, `summary`.
//! Nothing else: no rate limit, trail, request log, metrics, deadline or extra headers.
//! `scripts/bench.sh` drives it with the same wrk targets as the server.

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use ensinalab_api::config::HashidsConfig;
use ensinalab_api::ids::Hashids;
use ensinalab_domain::{CeleryState, DEFAULT_TASK_TIME_LIMIT_SECS, Elapsed};
use ensinalab_ports::DEFAULT_ACTIVE_PAGE;
use ensinalab_store::active_sql;
use sea_orm::DbBackend;
use sea_orm::sqlx::Row as _;
use sea_orm::sqlx::postgres::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AnyError;
use crate::floor::pg_pool;
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
    /// PostgreSQL connections (the store's pool size).
    #[arg(long, default_value_t = 20)]
    pool: u32,
}

struct Floor {
    pool: PgPool,
    redis: redis::aio::MultiplexedConnection,
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    hashids: Hashids,
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
    let pool = pg_pool(&args.database_url, args.pool, Some("force_generic_plan")).await?;
    let redis = redis::Client::open(args.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims = ["exp", "sub"].iter().map(|s| (*s).to_owned()).collect();
    let floor = web::Data::new(Floor {
        pool,
        redis,
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

async fn body(floor: &Floor, user: i64) -> Result<Vec<u8>, AnyError> {
    let rows = sea_orm::sqlx::query(active_sql(DbBackend::Postgres))
        .bind(user)
        .bind(None::<OffsetDateTime>)
        .bind(None::<&str>)
        .bind(None::<i64>)
        .bind(i64::from(DEFAULT_ACTIVE_PAGE) + 1)
        .fetch_all(&floor.pool)
        .await?;
    let (briefings, videos): (i64, i64) = match rows.first() {
        Some(row) => (row.try_get(9)?, row.try_get(10)?),
        None => (0, 0),
    };
    let keys: Vec<String> = rows
        .iter()
        .filter_map(|row| row.try_get::<Option<&str>, _>(7).ok().flatten())
        .map(|task_id| format!("{META_PREFIX}{task_id}"))
        .collect();
    let values: Vec<Option<Vec<u8>>> = if keys.is_empty() {
        Vec::new()
    } else {
        redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut floor.redis.clone())
            .await?
    };
    let mut states = values.iter();
    let now = OffsetDateTime::now_utc();
    let mut tasks = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(kind) = row.try_get::<Option<&str>, _>(0)? else {
            continue;
        };
        let id: i64 = row.try_get(1)?;
        let created_at: OffsetDateTime = row.try_get(8)?;
        let task_id: Option<&str> = row.try_get(7)?;
        let state = match task_id.and_then(|_| states.next()) {
            Some(Some(meta)) => CeleryState::parse(serde_json::from_slice::<Meta>(meta)?.status),
            _ => CeleryState::parse("PENDING"),
        };
        let elapsed = Elapsed::between(created_at, now);
        tasks.push(Task {
            kind,
            resource_type: kind,
            resource_id: floor.hashids.encode(id),
            title: row.try_get(3)?,
            status: row.try_get(4)?,
            progress: row.try_get(5)?,
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
            generator_type: row.try_get(6)?,
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
