//! One variable read and checked: a missing one takes its default, a bad one is a
//! [`ConfigError`] naming it.

use std::time::Duration;

use super::ConfigError;

/// A count or a duration that must not be zero.
pub(super) fn at_least_one<T>(
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
pub(super) fn secs(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    at_least_one(get, var, default).map(Duration::from_secs)
}

/// A value of `T`; `default` when unset, an error naming `var` when unset without one.
pub(super) fn parse<T: std::str::FromStr>(
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

/// A boolean in any of the usual spellings.
pub(super) fn parse_bool(
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
pub(super) fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
