//! Configuration, read once from the environment at start. A bad value stops startup with a
//! message naming the variable: a typo in production must not become a silent default.

use std::net::SocketAddr;
use std::time::Duration;

use ensinalab_domain::AutoCancel;
use ensinalab_mail::MailConfig;

pub use crate::client::{BadCidr, TrustedProxies};

mod read;
mod sections;
#[cfg(test)]
mod tests;

use read::{at_least_one, parse, parse_bool, random_secret, secs};
use sections::{alert_mail, live_stall, metrics_addr, rate_limit, revoke_confirm};

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    pub message: String,
}

/// Which task broker runs the generation tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    /// Celery (`REDIS_URL` set): Redis is the result backend, and the broker too unless
    /// `broker_url` names RabbitMQ.
    Celery {
        redis_url: String,
        /// `CELERY_BROKER_URL` (`amqp://user:pass@host:port/vhost`): RabbitMQ as the broker.
        /// Unset: the broker is `REDIS_URL`.
        broker_url: Option<String>,
        /// `CELERY_QUEUE`, default `celery`.
        queue: String,
        /// `REVOKE_CONFIRM_MS` (default 250): how long a revoke waits for a worker to confirm
        /// the kill of a running task (`killed`) before it answers `signalled`.
        revoke_confirm: Duration,
        /// `CELERY_UNQUEUE` (default true): take cancelled tasks' messages out of the queue,
        /// for workers that do not claim. False only when every worker claims.
        unqueue: bool,
    },
    /// The in-process broker (the zero-setup default): simulated work of these durations.
    Local { options_secs: u64, video_secs: u64 },
}

/// Where the JWT secret came from.
#[derive(Clone, PartialEq, Eq)]
pub enum JwtSecret {
    /// `JWT_SECRET`.
    Configured(String),
    /// No `JWT_SECRET`: a random secret for this process only (dev mode, announced loudly).
    Dev(String),
}

impl JwtSecret {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Configured(s) | Self::Dev(s) => s.as_bytes(),
        }
    }

    /// Whether the server runs in dev mode.
    pub fn is_dev(&self) -> bool {
        matches!(self, Self::Dev(_))
    }
}

impl std::fmt::Debug for JwtSecret {
    // Never print a secret, even in a debug dump of the config.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Configured(_) => f.write_str("Configured(***)"),
            Self::Dev(_) => f.write_str("Dev(***)"),
        }
    }
}

/// Token checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub secret: JwtSecret,
    /// Checked against `iss` when set.
    pub issuer: Option<String>,
    /// Checked against `aud` when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// `JWT_MAX_TTL_SECS`: a token valid for longer from now is refused (and `token` will not
    /// mint one): a leaked long-lived token would outlive any rotation.
    pub max_ttl_secs: u64,
}

/// Hashids settings; must match every other service that shows these ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashidsConfig {
    pub salt: String,
    pub min_length: usize,
}

/// Where rate-limit state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitBackend {
    /// In this process (the default): limits are per instance.
    Memory,
    /// In Redis (`RATE_LIMIT_BACKEND=redis`, at `REDIS_URL`): every instance shares the limits.
    Redis {
        url: String,
        /// `RATE_LIMIT_PREFIX`: key prefix, so several deployments can share one Redis.
        prefix: String,
    },
}

/// Request quotas (per minute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_PER_MIN`: every route, per user (per client IP without a valid token).
    pub per_min: u32,
    /// `CANCEL_RATE_LIMIT_PER_MIN`: the three cancel routes, on top of `per_min`.
    pub cancel_per_min: u32,
    pub backend: RateLimitBackend,
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line (`LOG_FORMAT=json`).
    Json,
}

/// Everything the server needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `BIND_ADDR`; port 0 picks a free port (tests).
    pub bind_addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: String,
    pub broker: BrokerChoice,
    pub jwt: JwtConfig,
    pub hashids: HashidsConfig,
    /// `TASK_TIME_LIMIT_SECS`: a job running longer is flagged `is_stuck`.
    pub task_time_limit_secs: u64,
    pub log_format: LogFormat,
    /// `AUTO_MIGRATE`: run migrations at start.
    pub auto_migrate: bool,
    /// `RECONCILE_INTERVAL_SECS`: period of the safety-net sweep.
    pub reconcile_interval: Duration,
    /// Largest JSON body accepted (413 above).
    pub json_limit_bytes: usize,
    pub rate_limit: RateLimitConfig,
    pub http: HttpLimits,
    /// `TRUSTED_PROXIES`: the proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// `MAX_ACTIVE_JOBS_PER_USER`: jobs a user may have in flight; past it, creating is a 429.
    pub max_active_jobs_per_user: u32,
    /// `SECURITY_EVENT_RETENTION_DAYS`: security events older than this are pruned.
    pub security_event_retention_days: u32,
    /// `AUTO_CANCEL_FACTOR` × `EXPECTED_OPTIONS_SECS` / `EXPECTED_VIDEO_SECS` (each defaults to
    /// `TASK_TIME_LIMIT_SECS`): how long a job may run; `None` (factor 0): no automatic timeout.
    pub auto_cancel: Option<AutoCancel>,
    /// `AUTO_CANCEL_SWEEP_SECS`: how often the automatic timeout looks for late jobs.
    pub auto_cancel_sweep: Duration,
    /// `ORPHAN_SWEEP_SECS` (default 3600): how often the workers are asked to delete partial
    /// files no job in flight claims; `None` (0): never.
    pub orphan_sweep: Option<Duration>,
    /// `REVOKE_ALERT_AFTER_SECS` (default 60): how long after its cancel a revoke still
    /// undelivered, or after its delivery a task still running, is reported overdue.
    pub revoke_grace: Duration,
    /// The operators' alert e-mail, when `SMTP_URL` and `ALERT_EMAIL_TO` are set.
    pub alert_mail: Option<AlertMailConfig>,
    /// `MAX_STREAMS_PER_USER` (default 5): live streams (`GET /tasks/events` and
    /// `GET /tasks/ws` together) a user may hold open on one server; one more is a 429 (a
    /// WebSocket: close code 4429).
    pub max_streams_per_user: u32,
    /// `MAX_STREAMS` (default 10,000): live streams of all users together on one server; one
    /// more is a 503 with `Retry-After`.
    pub max_streams: u32,
    /// `LIVE_STALL_SECS` (default 30): a connection whose client has taken none of the bytes
    /// sent to it for this long is cut (the kernel's `TCP_USER_TIMEOUT` on every accepted
    /// connection), which ends its stream and frees its slot.
    pub live_stall: Duration,
    /// `LIVE_HEARTBEAT_SECS` (default 15): how often an idle live stream sends a comment line,
    /// so that proxies keep it open.
    pub live_heartbeat: Duration,
    /// `LIVE_RELAY` (default true): with Celery, relay live events to the other servers through
    /// Redis PUB/SUB; a deployment of one server may turn it off and save the PUBLISHes.
    pub live_relay: bool,
    /// `METRICS_ADDR` (default `127.0.0.1:9464`): the listener of `GET /metrics`, never the
    /// public one; `None` (set but empty): no metrics listener.
    pub metrics_addr: Option<SocketAddr>,
    /// `METRICS_CENSUS_SECS` (default 15): how often the gauges of jobs in flight and revokes
    /// pending are read from the database.
    pub metrics_census: Duration,
}

/// The default `METRICS_ADDR`: loopback, so only a Prometheus on the same host reaches it.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// The operators' alert e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMailConfig {
    /// `SMTP_URL`, `ALERT_EMAIL_TO` (comma-separated), `ALERT_EMAIL_FROM`.
    pub mail: MailConfig,
    /// `ALERT_EMAIL_MIN_INTERVAL_SECS` (default 300): at most one e-mail per this long, from
    /// all the servers together.
    pub min_interval: Duration,
}

/// Default `ALERT_EMAIL_FROM`.
pub const DEFAULT_ALERT_EMAIL_FROM: &str = "EnsinaLab <ensinalab@localhost>";
/// How long a client may take, and how long an idle connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// `CLIENT_HEADER_TIMEOUT_SECS`: to send a request's head (its headers).
    pub header_timeout: Duration,
    /// `REQUEST_TIMEOUT_SECS`: from the head to the response's head, the body's upload
    /// included (408 past it).
    pub request_timeout: Duration,
    /// `KEEP_ALIVE_SECS`: an idle keep-alive connection is closed after this.
    pub keep_alive: Duration,
    /// `CLIENT_DISCONNECT_TIMEOUT_SECS`: to close its side once the server closed its own.
    pub disconnect_timeout: Duration,
}

/// Default `JWT_MAX_TTL_SECS`: a day.
pub const DEFAULT_JWT_MAX_TTL_SECS: u64 = 24 * 3600;

/// Default `DATABASE_URL`: a SQLite file next to where the server starts.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ensinalab.db?mode=rwc";
/// Secrets shorter than this are refused outside dev mode (RFC 8725: HS256 wants 256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable with a bad value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads configuration through `get` (the environment, or a table in tests). Empty values
    /// count as unset.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable with a bad value.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Read before empty values count as unset: an empty METRICS_ADDR turns metrics off.
        let metrics_off = get("METRICS_ADDR").is_some_and(|v| v.trim().is_empty());
        let get = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        let bind_addr: SocketAddr = parse(&get, "BIND_ADDR", "127.0.0.1:8080".parse().ok())?;
        let metrics_addr = if metrics_off {
            None
        } else {
            Some(metrics_addr(&get, bind_addr)?)
        };
        let revoke_confirm = revoke_confirm(&get)?;
        let unqueue = parse_bool(&get, "CELERY_UNQUEUE", true)?;
        let broker_url = broker_url(&get)?;
        let broker = match get("REDIS_URL") {
            Some(redis_url) => BrokerChoice::Celery {
                redis_url,
                broker_url,
                queue: get("CELERY_QUEUE").unwrap_or_else(|| "celery".to_owned()),
                revoke_confirm,
                unqueue,
            },
            // A broker without a result backend would run tasks nobody can follow.
            None if broker_url.is_some() => {
                return Err(ConfigError {
                    var: "CELERY_BROKER_URL",
                    message: "needs REDIS_URL, the result backend (the claims, the results, \
                              the live relay)"
                        .to_owned(),
                });
            }
            None => BrokerChoice::Local {
                options_secs: parse(&get, "LOCAL_OPTIONS_SECS", Some(3))?,
                video_secs: parse(&get, "LOCAL_VIDEO_SECS", Some(30))?,
            },
        };
        let secret = match get("JWT_SECRET") {
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(ConfigError {
                    var: "JWT_SECRET",
                    message: format!("must be at least {MIN_SECRET_BYTES} bytes"),
                });
            }
            Some(s) => JwtSecret::Configured(s),
            // Dev mode mints a token for anyone who reads the logs: this machine only.
            None if !bind_addr.ip().is_loopback() => {
                return Err(ConfigError {
                    var: "JWT_SECRET",
                    message: format!(
                        "is required to listen on {bind_addr}: without it the server runs in dev \
                         mode, which only binds a loopback address (127.0.0.1, ::1)"
                    ),
                });
            }
            None => JwtSecret::Dev(random_secret()),
        };
        let rate_limit = rate_limit(&get)?;
        let reconcile_interval = secs(&get, "RECONCILE_INTERVAL_SECS", 2)?;
        let task_time_limit_secs = parse(
            &get,
            "TASK_TIME_LIMIT_SECS",
            Some(ensinalab_domain::DEFAULT_TASK_TIME_LIMIT_SECS),
        )?;
        let factor: f64 = parse(&get, "AUTO_CANCEL_FACTOR", Some(2.0))?;
        if !(factor >= 0.0 && factor.is_finite()) {
            return Err(ConfigError {
                var: "AUTO_CANCEL_FACTOR",
                message: "must be a number, 0 or more (0 turns the automatic timeout off)"
                    .to_owned(),
            });
        }
        let auto_cancel = AutoCancel::new(
            factor,
            secs(&get, "EXPECTED_OPTIONS_SECS", task_time_limit_secs)?,
            secs(&get, "EXPECTED_VIDEO_SECS", task_time_limit_secs)?,
        );
        Ok(Self {
            bind_addr,
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            broker,
            jwt: JwtConfig {
                secret,
                issuer: get("JWT_ISSUER"),
                audience: get("JWT_AUDIENCE"),
                leeway_secs: parse(&get, "JWT_LEEWAY_SECS", Some(5))?,
                max_ttl_secs: at_least_one(&get, "JWT_MAX_TTL_SECS", DEFAULT_JWT_MAX_TTL_SECS)?,
            },
            hashids: HashidsConfig {
                salt: get("HASHIDS_SALT").unwrap_or_default(),
                min_length: parse(&get, "HASHIDS_MIN_LENGTH", Some(6))?,
            },
            task_time_limit_secs,
            log_format: match get("LOG_FORMAT").as_deref() {
                None | Some("pretty" | "text") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(_) => {
                    return Err(ConfigError {
                        var: "LOG_FORMAT",
                        message: "must be `json` or `pretty`".to_owned(),
                    });
                }
            },
            auto_migrate: parse_bool(&get, "AUTO_MIGRATE", true)?,
            reconcile_interval,
            json_limit_bytes: parse(&get, "JSON_LIMIT_BYTES", Some(64 * 1024))?,
            rate_limit,
            http: HttpLimits {
                header_timeout: secs(&get, "CLIENT_HEADER_TIMEOUT_SECS", 5)?,
                request_timeout: secs(&get, "REQUEST_TIMEOUT_SECS", 30)?,
                keep_alive: secs(&get, "KEEP_ALIVE_SECS", 5)?,
                disconnect_timeout: secs(&get, "CLIENT_DISCONNECT_TIMEOUT_SECS", 1)?,
            },
            trusted_proxies: match get("TRUSTED_PROXIES") {
                None => TrustedProxies::default(),
                Some(list) => TrustedProxies(
                    list.split(',')
                        .map(|net| net.parse())
                        .collect::<Result<_, BadCidr>>()
                        .map_err(|e| ConfigError {
                            var: "TRUSTED_PROXIES",
                            message: e.to_string(),
                        })?,
                ),
            },
            max_active_jobs_per_user: at_least_one(&get, "MAX_ACTIVE_JOBS_PER_USER", 100)?,
            security_event_retention_days: at_least_one(&get, "SECURITY_EVENT_RETENTION_DAYS", 90)?,
            auto_cancel,
            auto_cancel_sweep: secs(&get, "AUTO_CANCEL_SWEEP_SECS", 5)?,
            orphan_sweep: Some(parse(&get, "ORPHAN_SWEEP_SECS", Some(3600))?)
                .filter(|secs| *secs > 0)
                .map(Duration::from_secs),
            revoke_grace: secs(&get, "REVOKE_ALERT_AFTER_SECS", 60)?,
            alert_mail: alert_mail(&get)?,
            max_streams_per_user: at_least_one(&get, "MAX_STREAMS_PER_USER", 5)?,
            max_streams: at_least_one(&get, "MAX_STREAMS", 10_000)?,
            live_stall: live_stall(&get)?,
            live_heartbeat: secs(&get, "LIVE_HEARTBEAT_SECS", 15)?,
            live_relay: parse_bool(&get, "LIVE_RELAY", true)?,
            metrics_addr,
            metrics_census: secs(
                &get,
                "METRICS_CENSUS_SECS",
                ensinalab_jobs::census::DEFAULT_CENSUS_EVERY.as_secs(),
            )?,
        })
    }
}

/// Default `RATE_LIMIT_PREFIX`.
pub const DEFAULT_RATE_LIMIT_PREFIX: &str = "ensinalab:ratelimit:";

/// `CELERY_BROKER_URL`, checked as the adapter will read it: a bad URL stops startup here.
fn broker_url(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = get("CELERY_BROKER_URL") else {
        return Ok(None);
    };
    match ensinalab_celery::parse_broker_url(url.trim()) {
        Ok(_) => Ok(Some(url.trim().to_owned())),
        Err(why) => Err(ConfigError {
            var: "CELERY_BROKER_URL",
            message: format!(
                "must be an amqp://user:pass@host:port/vhost URL (unset: the broker is \
                 REDIS_URL): {why}"
            ),
        }),
    }
}
