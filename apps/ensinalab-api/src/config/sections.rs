//! The settings with a rule beyond their type: read together (the alert e-mail, the rate
//! limits), bounded (the live stall, the revoke's wait), or checked against another (the
//! metrics listener against the public one).

use std::net::SocketAddr;
use std::time::Duration;

use ensinalab_mail::{MailConfig, MailConfigError, SmtpMailer};

use super::read::{at_least_one, parse, secs};
use super::{
    AlertMailConfig, ConfigError, DEFAULT_ALERT_EMAIL_FROM, DEFAULT_METRICS_ADDR,
    DEFAULT_RATE_LIMIT_PREFIX, RateLimitBackend, RateLimitConfig,
};

/// The alert e-mail's settings: both `SMTP_URL` and `ALERT_EMAIL_TO`, or neither.
pub(super) fn alert_mail(
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

/// `METRICS_ADDR`, refused when it is the public listener's own address: the metrics are for
/// the operators' Prometheus, never for the API's clients.
pub(super) fn metrics_addr(
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
pub(super) fn live_stall(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
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
pub(super) fn revoke_confirm(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Duration, ConfigError> {
    let millis: u64 = parse(get, "REVOKE_CONFIRM_MS", Some(250))?;
    if millis > 5_000 {
        return Err(ConfigError {
            var: "REVOKE_CONFIRM_MS",
            message: "must be at most 5000".to_owned(),
        });
    }
    Ok(Duration::from_millis(millis))
}

/// The request quotas and where their state lives.
pub(super) fn rate_limit(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<RateLimitConfig, ConfigError> {
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
