//! Configuration, read once from the environment at start. A bad value stops startup with a
//! message naming the variable: a typo in production must not become a silent default.

use std::net::SocketAddr;
use std::time::Duration;

use ensinalab_domain::AutoCancel;
use ensinalab_mail::{MailConfig, MailConfigError, SmtpMailer};

pub use crate::client::{BadCidr, TrustedProxies};

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
    /// Celery over Redis (`REDIS_URL` set).
    Celery {
        redis_url: String,
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

/// The alert e-mail's settings: both `SMTP_URL` and `ALERT_EMAIL_TO`, or neither.
fn alert_mail(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<AlertMailConfig>, ConfigError> {
    let (smtp_url, to) = match (get("SMTP_URL"), get("ALERT_EMAIL_TO")) {
        (None, None) => return Ok(None),
        (Some(url), Some(to)) => (url, to),
        (Some(_), None) => {
            return Err(ConfigError {
                var: "ALERT_EMAIL_TO",
                message: "is required when SMTP_URL is set".to_owned(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError {
                var: "SMTP_URL",
                message: "is required when ALERT_EMAIL_TO is set".to_owned(),
            });
        }
    };
    let mail = MailConfig {
        smtp_url,
        from: get("ALERT_EMAIL_FROM").unwrap_or_else(|| DEFAULT_ALERT_EMAIL_FROM.to_owned()),
        to: to
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    // Checked here, without connecting, so that a typo stops the start naming its variable.
    if let Err(err) = SmtpMailer::new(&mail) {
        let var = match &err {
            MailConfigError::Url(_) | MailConfigError::PlainPassword => "SMTP_URL",
            MailConfigError::Address { address, .. } if *address == mail.from => "ALERT_EMAIL_FROM",
            MailConfigError::Address { .. } | MailConfigError::NoRecipient => "ALERT_EMAIL_TO",
        };
        return Err(ConfigError {
            var,
            message: err.to_string(),
        });
    }
    Ok(Some(AlertMailConfig {
        mail,
        min_interval: secs(get, "ALERT_EMAIL_MIN_INTERVAL_SECS", 300)?,
    }))
}

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
        let broker = match get("REDIS_URL") {
            Some(redis_url) => BrokerChoice::Celery {
                redis_url,
                queue: get("CELERY_QUEUE").unwrap_or_else(|| "celery".to_owned()),
                revoke_confirm,
                unqueue,
            },
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

/// `METRICS_ADDR`, refused when it is the public listener's own address: the metrics are for
/// the operators' Prometheus, never for the API's clients.
fn metrics_addr(
    get: &impl Fn(&str) -> Option<String>,
    bind_addr: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = parse(get, "METRICS_ADDR", DEFAULT_METRICS_ADDR.parse().ok())?;
    if addr.port() != 0 && addr.port() == bind_addr.port() {
        return Err(ConfigError {
            var: "METRICS_ADDR",
            message: format!(
                "must not share BIND_ADDR's port {}: metrics never go on the public port",
                bind_addr.port()
            ),
        });
    }
    Ok(addr)
}

/// `LIVE_STALL_SECS`: at least one second, at most a day (the kernel takes milliseconds in 32
/// bits, and a stall longer than a day is no bound).
fn live_stall(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    let stall = secs(get, "LIVE_STALL_SECS", 30)?;
    if stall > Duration::from_secs(86_400) {
        return Err(ConfigError {
            var: "LIVE_STALL_SECS",
            message: "must be at most 86400".to_owned(),
        });
    }
    Ok(stall)
}

/// `REVOKE_CONFIRM_MS`: zero (never wait) to five seconds (a user's cancel waits this long at
/// most).
fn revoke_confirm(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    let millis: u64 = parse(get, "REVOKE_CONFIRM_MS", Some(250))?;
    if millis > 5_000 {
        return Err(ConfigError {
            var: "REVOKE_CONFIRM_MS",
            message: "must be at most 5000".to_owned(),
        });
    }
    Ok(Duration::from_millis(millis))
}

/// Default `RATE_LIMIT_PREFIX`.
pub const DEFAULT_RATE_LIMIT_PREFIX: &str = "ensinalab:ratelimit:";

/// A count or a duration that must not be zero.
fn at_least_one<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialEq + From<u8>,
    T::Err: std::fmt::Display,
{
    let n = parse(get, var, Some(default))?;
    if n == T::from(0) {
        return Err(ConfigError {
            var,
            message: "must be at least 1".to_owned(),
        });
    }
    Ok(n)
}

/// Whole seconds, at least one.
fn secs(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    at_least_one(get, var, default).map(Duration::from_secs)
}

fn rate_limit(get: &impl Fn(&str) -> Option<String>) -> Result<RateLimitConfig, ConfigError> {
    let backend = match get("RATE_LIMIT_BACKEND").as_deref() {
        None | Some("memory") => RateLimitBackend::Memory,
        // Refused rather than silently per-instance: the operator asked for shared limits.
        Some("redis") => RateLimitBackend::Redis {
            url: get("REDIS_URL").ok_or_else(|| ConfigError {
                var: "REDIS_URL",
                message: "is required when RATE_LIMIT_BACKEND=redis".to_owned(),
            })?,
            prefix: get("RATE_LIMIT_PREFIX")
                .unwrap_or_else(|| DEFAULT_RATE_LIMIT_PREFIX.to_owned()),
        },
        Some(_) => {
            return Err(ConfigError {
                var: "RATE_LIMIT_BACKEND",
                message: "must be `memory` or `redis`".to_owned(),
            });
        }
    };
    Ok(RateLimitConfig {
        per_min: at_least_one(get, "RATE_LIMIT_PER_MIN", 100)?,
        cancel_per_min: at_least_one(get, "CANCEL_RATE_LIMIT_PER_MIN", 10)?,
        backend,
    })
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: Option<T>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match (get(var), default) {
        (Some(raw), _) => raw.trim().parse().map_err(|e| ConfigError {
            var,
            message: format!("invalid value {raw:?}: {e}"),
        }),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(ConfigError {
            var,
            message: "is required".to_owned(),
        }),
    }
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(var).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError {
            var,
            message: format!("invalid value {other:?}: expected true or false"),
        }),
    }
}

/// 256 random bits from the OS (two v4 uuids carry 244 of them; plenty for a dev key).
fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn an_empty_environment_gives_the_zero_setup_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(
            c.broker,
            BrokerChoice::Local {
                options_secs: 3,
                video_secs: 30
            }
        );
        assert!(c.jwt.secret.is_dev());
        assert_eq!(c.hashids.min_length, 6);
        assert_eq!(c.task_time_limit_secs, 300);
        assert!(c.auto_migrate);
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn a_redis_url_selects_celery() {
        let c = config(&[("REDIS_URL", "redis://127.0.0.1:6379/0")]).unwrap();
        assert_eq!(
            c.broker,
            BrokerChoice::Celery {
                redis_url: "redis://127.0.0.1:6379/0".into(),
                queue: "celery".into(),
                revoke_confirm: Duration::from_millis(250),
                unqueue: true,
            }
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let table = [
            ("BIND_ADDR", "localhost"),
            ("HASHIDS_MIN_LENGTH", "-1"),
            ("TASK_TIME_LIMIT_SECS", "five"),
            ("AUTO_MIGRATE", "maybe"),
            ("LOG_FORMAT", "xml"),
            ("LOCAL_VIDEO_SECS", "1.5"),
            ("JWT_SECRET", "short"),
            ("RECONCILE_INTERVAL_SECS", "0"),
            ("RATE_LIMIT_PER_MIN", "0"),
            ("CANCEL_RATE_LIMIT_PER_MIN", "ten"),
            ("RATE_LIMIT_BACKEND", "memcached"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, example.com"),
            ("MAX_ACTIVE_JOBS_PER_USER", "0"),
            ("SECURITY_EVENT_RETENTION_DAYS", "-1"),
            ("REQUEST_TIMEOUT_SECS", "0"),
            ("JWT_MAX_TTL_SECS", "0"),
            ("AUTO_CANCEL_FACTOR", "-1"),
            ("AUTO_CANCEL_FACTOR", "twice"),
            ("EXPECTED_VIDEO_SECS", "0"),
            ("AUTO_CANCEL_SWEEP_SECS", "0"),
            ("MAX_STREAMS_PER_USER", "0"),
            ("MAX_STREAMS", "0"),
            ("LIVE_STALL_SECS", "0"),
            ("LIVE_STALL_SECS", "5000000"),
            ("LIVE_HEARTBEAT_SECS", "0"),
            ("LIVE_RELAY", "sometimes"),
            ("REVOKE_CONFIRM_MS", "-1"),
            ("REVOKE_CONFIRM_MS", "60000"),
            ("CELERY_UNQUEUE", "sometimes"),
        ];
        for (var, value) in table {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn rate_limits_default_to_100_and_10_per_minute_in_memory() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.rate_limit,
            RateLimitConfig {
                per_min: 100,
                cancel_per_min: 10,
                backend: RateLimitBackend::Memory
            }
        );
    }

    #[test]
    fn redis_rate_limits_need_a_redis_url_and_use_it() {
        let err = config(&[("RATE_LIMIT_BACKEND", "redis")]).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
        let c = config(&[
            ("RATE_LIMIT_BACKEND", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("RATE_LIMIT_PER_MIN", "600"),
        ])
        .unwrap();
        assert_eq!(c.rate_limit.per_min, 600);
        assert_eq!(
            c.rate_limit.backend,
            RateLimitBackend::Redis {
                url: "redis://127.0.0.1:6379/0".into(),
                prefix: DEFAULT_RATE_LIMIT_PREFIX.into()
            }
        );
    }

    #[test]
    fn dev_mode_binds_loopback_only() {
        for addr in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.1:0"] {
            assert!(
                config(&[("BIND_ADDR", addr)]).unwrap().jwt.secret.is_dev(),
                "{addr}"
            );
        }
        for addr in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:80"] {
            let err = config(&[("BIND_ADDR", addr)]).unwrap_err();
            assert_eq!(err.var, "JWT_SECRET", "{addr}");
            assert!(err.to_string().contains("dev mode"), "{err}");
        }
        let secret = "s".repeat(32);
        let c = config(&[("BIND_ADDR", "0.0.0.0:8080"), ("JWT_SECRET", &secret)]).unwrap();
        assert!(!c.jwt.secret.is_dev());
    }

    #[test]
    fn hardening_settings_have_their_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.jwt.max_ttl_secs, 24 * 3600);
        assert_eq!(c.max_active_jobs_per_user, 100);
        assert_eq!(c.max_streams_per_user, 5);
        assert_eq!(c.live_heartbeat, Duration::from_secs(15));
        assert!(c.live_relay);
        assert_eq!(c.security_event_retention_days, 90);
        assert_eq!(c.trusted_proxies, TrustedProxies::default());
        assert_eq!(c.http.request_timeout, Duration::from_secs(30));
        let c = config(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")]).unwrap();
        assert_eq!(c.trusted_proxies.0.len(), 2);
    }

    #[test]
    fn the_automatic_timeout_is_twice_the_time_limit_per_kind_and_zero_turns_it_off() {
        let c = config(&[]).unwrap();
        let policy = c.auto_cancel.unwrap();
        assert_eq!(policy.options, Duration::from_secs(600));
        assert_eq!(policy.video, Duration::from_secs(600));
        assert_eq!(c.auto_cancel_sweep, Duration::from_secs(5));
        let c = config(&[
            ("AUTO_CANCEL_FACTOR", "1.5"),
            ("EXPECTED_OPTIONS_SECS", "60"),
            ("EXPECTED_VIDEO_SECS", "200"),
        ])
        .unwrap();
        let policy = c.auto_cancel.unwrap();
        assert_eq!(
            (policy.options, policy.video),
            (Duration::from_secs(90), Duration::from_secs(300))
        );
        assert_eq!(
            config(&[("AUTO_CANCEL_FACTOR", "0")]).unwrap().auto_cancel,
            None
        );
    }

    #[test]
    fn the_alert_email_needs_both_its_server_and_its_recipients() {
        let c = config(&[]).unwrap();
        assert_eq!(c.alert_mail, None);
        assert_eq!(c.revoke_grace, Duration::from_secs(60));
        let c = config(&[
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
            ("ALERT_EMAIL_TO", "ops@example.com, oncall@example.com"),
        ])
        .unwrap();
        let mail = c.alert_mail.unwrap();
        assert_eq!(mail.mail.to, ["ops@example.com", "oncall@example.com"]);
        assert_eq!(mail.mail.from, DEFAULT_ALERT_EMAIL_FROM);
        assert_eq!(mail.min_interval, Duration::from_secs(300));

        let table: [(&[(&str, &str)], &str); 6] = [
            (&[("SMTP_URL", "smtp://127.0.0.1:2525")], "ALERT_EMAIL_TO"),
            (
                &[
                    ("SMTP_URL", "smtp://user:hunter2@127.0.0.1:2525"),
                    ("ALERT_EMAIL_TO", "ops@example.com"),
                ],
                "SMTP_URL",
            ),
            (&[("ALERT_EMAIL_TO", "ops@example.com")], "SMTP_URL"),
            (
                &[
                    ("SMTP_URL", "ftp://x"),
                    ("ALERT_EMAIL_TO", "ops@example.com"),
                ],
                "SMTP_URL",
            ),
            (
                &[
                    ("SMTP_URL", "smtp://h"),
                    ("ALERT_EMAIL_TO", "ops at example"),
                ],
                "ALERT_EMAIL_TO",
            ),
            (
                &[
                    ("SMTP_URL", "smtp://h"),
                    ("ALERT_EMAIL_TO", "ops@example.com"),
                    ("ALERT_EMAIL_FROM", "nobody"),
                ],
                "ALERT_EMAIL_FROM",
            ),
        ];
        for (vars, var) in table {
            assert_eq!(config(vars).unwrap_err().var, var, "{vars:?}");
        }
        let with_password = config(&[
            (
                "SMTP_URL",
                "smtp://user:hunter2@127.0.0.1:2525?tls=required",
            ),
            ("ALERT_EMAIL_TO", "ops@example.com"),
        ])
        .unwrap();
        assert!(!format!("{with_password:?}").contains("hunter2"));
        // In clear only when the URL says so; the refusal never repeats the password.
        let err = config(&[
            ("SMTP_URL", "smtp://user:hunter2@127.0.0.1:2525"),
            ("ALERT_EMAIL_TO", "ops@example.com"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("tls=none"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(
            config(&[
                ("SMTP_URL", "smtp://user:hunter2@127.0.0.1:2525?tls=none"),
                ("ALERT_EMAIL_TO", "ops@example.com"),
            ])
            .is_ok()
        );
    }

    #[test]
    fn metrics_listen_on_loopback_by_default_never_on_the_public_port_and_empty_turns_them_off() {
        let c = config(&[]).unwrap();
        assert_eq!(c.metrics_addr, Some(DEFAULT_METRICS_ADDR.parse().unwrap()));
        assert_eq!(c.metrics_census, Duration::from_secs(15));
        assert_eq!(config(&[("METRICS_ADDR", "")]).unwrap().metrics_addr, None);
        let c = config(&[
            ("METRICS_ADDR", "0.0.0.0:9100"),
            ("METRICS_CENSUS_SECS", "2"),
        ])
        .unwrap();
        assert_eq!(c.metrics_addr, Some("0.0.0.0:9100".parse().unwrap()));
        assert_eq!(c.metrics_census, Duration::from_secs(2));
        for bad in ["127.0.0.1:8080", "localhost:9464", "9464"] {
            let err = config(&[("METRICS_ADDR", bad)]).unwrap_err();
            assert_eq!(err.var, "METRICS_ADDR", "{bad}");
        }
    }

    #[test]
    fn the_orphan_sweep_runs_hourly_by_default_and_zero_turns_it_off() {
        assert_eq!(
            config(&[]).unwrap().orphan_sweep,
            Some(Duration::from_secs(3600))
        );
        let c = config(&[("ORPHAN_SWEEP_SECS", "30")]).unwrap();
        assert_eq!(c.orphan_sweep, Some(Duration::from_secs(30)));
        assert_eq!(
            config(&[("ORPHAN_SWEEP_SECS", "0")]).unwrap().orphan_sweep,
            None
        );
        assert_eq!(
            config(&[("ORPHAN_SWEEP_SECS", "-1")]).unwrap_err().var,
            "ORPHAN_SWEEP_SECS"
        );
    }

    #[test]
    fn a_configured_secret_is_never_printed() {
        let c = config(&[("JWT_SECRET", &"s".repeat(40))]).unwrap();
        assert!(!format!("{c:?}").contains("ssss"));
    }
}
