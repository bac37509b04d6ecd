//! Bearer-token authentication: HS256 JWTs whose `sub` is the user id.
//!
//! Every failure is the same 401 (`ApiError::Unauthorized`): the client learns nothing about
//! which check failed; the log says it.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use ensinalab_domain::UserId;
use ensinalab_ports::{Caller, EventOutcome, SecurityEvent, SecurityEventKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtConfig;
use crate::error::ApiError;
use ensinalab_app::SecurityTrail;
use ensinalab_metrics::Metrics;

/// Tokens longer than this are refused before parsing (a bound on work per request).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The `role` claim value that makes a caller an admin.
pub const ADMIN_ROLE: &str = "admin";

/// Why a token was refused (logged, never shown).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token over {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("`sub` is not a positive integer")]
    BadSubject,
    /// Valid for longer from now than `JWT_MAX_TTL_SECS` allows.
    #[error("token valid for more than {0} s from now")]
    LivesTooLong(u64),
}

/// The claims we read.
#[derive(Debug, Deserialize)]
struct Claims {
    /// A JSON number or a decimal string.
    sub: serde_json::Value,
    #[serde(default)]
    role: Option<String>,
    /// Required and checked by the decoder; read again for the lifetime bound.
    exp: u64,
}

/// The claims we write when minting.
#[derive(Debug, Serialize)]
struct MintedClaims<'a> {
    sub: String,
    exp: u64,
    iat: u64,
    nbf: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// An authenticated identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    pub is_admin: bool,
    /// The last second (Unix time) at which the token is still accepted: its `exp` plus the
    /// leeway. A live stream opened with it ends then.
    pub until: u64,
}

/// Verifies and mints tokens with one secret.
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    /// `exp` may be at most this far from now (leeway included).
    max_ttl_secs: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// From the configuration.
    pub fn new(config: &JwtConfig) -> Self {
        // Algorithm pinned: a token claiming any other `alg` (none, HS512, RS256...) is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        let mut required = vec!["exp"];
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = config.leeway_secs;
        match &config.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self {
            decoding: DecodingKey::from_secret(config.secret.as_bytes()),
            encoding: EncodingKey::from_secret(config.secret.as_bytes()),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            max_ttl_secs: config.max_ttl_secs.saturating_add(config.leeway_secs),
        }
    }

    /// Checks a bearer token.
    ///
    /// # Errors
    /// [`AuthError`] saying which check failed.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        if data.claims.exp.saturating_sub(now_secs()) > self.max_ttl_secs {
            return Err(AuthError::LivesTooLong(self.max_ttl_secs));
        }
        let user = match &data.claims.sub {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s)
                if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.parse().ok()
            }
            _ => None,
        }
        .filter(|id| *id > 0)
        .ok_or(AuthError::BadSubject)?;
        Ok(Identity {
            user_id: UserId(user),
            is_admin: data.claims.role.as_deref() == Some(ADMIN_ROLE),
            until: data.claims.exp.saturating_add(self.validation.leeway),
        })
    }

    /// Mints a token for `user`, valid `ttl_secs` from now, with the configured `iss`/`aud`.
    ///
    /// # Errors
    /// [`AuthError::LivesTooLong`] past `JWT_MAX_TTL_SECS` (such a token would be refused);
    /// [`AuthError::Invalid`] when signing fails (it does not with an HMAC key).
    pub fn mint(&self, user: i64, admin: bool, ttl_secs: u64) -> Result<String, AuthError> {
        if ttl_secs > self.max_ttl_secs {
            return Err(AuthError::LivesTooLong(self.max_ttl_secs));
        }
        let now = now_secs();
        let claims = MintedClaims {
            sub: user.to_string(),
            exp: now.saturating_add(ttl_secs),
            iat: now,
            nbf: now,
            role: admin.then_some(ADMIN_ROLE),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }
}

fn now_secs() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

/// The caller of a route, authenticated. Extracting it is the authentication.
#[derive(Debug, Clone)]
pub struct Auth(pub Caller);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(|s| Self(s.caller)))
    }
}

/// The caller of a live stream, authenticated, and how long its token is accepted.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    /// [`Identity::until`].
    pub until: u64,
}

impl Session {
    /// How long from now the token is still accepted.
    pub fn remaining(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.until.saturating_add(1).saturating_sub(now_secs()))
    }
}

impl FromRequest for Session {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

impl AuthError {
    /// A short code of why a token was refused, for the trail (never the parse error's text,
    /// which quotes the client's own bytes).
    fn reason(&self) -> &'static str {
        use jsonwebtoken::errors::ErrorKind;
        match self {
            Self::Invalid(e) => match e.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not_yet_valid",
                ErrorKind::InvalidSignature => "bad_signature",
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "bad_algorithm",
                ErrorKind::InvalidIssuer => "bad_issuer",
                ErrorKind::InvalidAudience => "bad_audience",
                ErrorKind::MissingRequiredClaim(_) => "missing_claim",
                _ => "malformed",
            },
            other => other.outcome().as_str(),
        }
    }

    /// The event's `outcome`: which check failed, never the token.
    fn outcome(&self) -> EventOutcome {
        match self {
            Self::Missing => EventOutcome::MissingToken,
            Self::TooLong => EventOutcome::TokenTooLong,
            Self::Invalid(_) => EventOutcome::InvalidToken,
            Self::BadSubject => EventOutcome::BadSubject,
            Self::LivesTooLong(_) => EventOutcome::LivesTooLong,
        }
    }
}

/// The identity the rate limiter verified and left on `req`, if it did (it runs before the
/// routes and the request log read it).
pub fn verified(req: &HttpRequest) -> Option<Identity> {
    req.extensions().get::<Identity>().copied()
}

/// The caller of `req`, if its token is valid; `None` without writing anything otherwise (for
/// routes that must not reveal themselves to the unauthenticated, like the admin ones).
pub fn identify(req: &HttpRequest) -> Option<Caller> {
    let auth = req.app_data::<web::Data<Authenticator>>()?;
    let identity = auth.verify(bearer_token(req.headers())?).ok()?;
    Some(Caller {
        user_id: identity.user_id,
        is_admin: identity.is_admin,
        client_ip: crate::client::ip(req).map(|ip| ip.to_string()),
    })
}

fn authenticate(req: &HttpRequest) -> Result<Session, ApiError> {
    let Some(auth) = req.app_data::<web::Data<Authenticator>>() else {
        return Err(ApiError::Internal("no authenticator registered".into()));
    };
    let client_ip = crate::client::ip(req).map(|ip| ip.to_string());
    let identity = verified(req).map_or_else(
        || {
            bearer_token(req.headers())
                .ok_or(AuthError::Missing)
                .and_then(|t| auth.verify(t))
        },
        Ok,
    );
    match identity {
        Ok(identity) => Ok(Session {
            caller: Caller {
                user_id: identity.user_id,
                is_admin: identity.is_admin,
                client_ip,
            },
            until: identity.until,
        }),
        Err(err) => {
            refused(req, &err, client_ip);
            Err(ApiError::Unauthorized)
        }
    }
}

/// A token refused on `req`: counted, and a security event (or a log line without a trail).
pub fn refused(req: &HttpRequest, err: &AuthError, client_ip: Option<String>) {
    crate::metrics::count(req, Metrics::auth_failed);
    // The trail's record() is the structured log line; without a trail, log here.
    match req.app_data::<web::Data<SecurityTrail>>() {
        Some(trail) => trail.record(SecurityEvent {
            event: SecurityEventKind::AuthFailed,
            user_id: None,
            resource: None,
            task_id: None,
            outcome: err.outcome(),
            client_ip,
            // Never the token's parse error: that would store the client's own text.
            details: serde_json::json!({
                "reason": err.reason(),
                "method": crate::client::method(req.method()),
                "route": crate::client::route(req),
            }),
        }),
        None => {
            tracing::warn!(error = %err, client_ip = client_ip.as_deref().unwrap_or("-"), "authentication failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtSecret;

    fn auth(issuer: Option<&str>, audience: Option<&str>) -> Authenticator {
        Authenticator::new(&JwtConfig {
            secret: JwtSecret::Configured("k".repeat(32)),
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
            leeway_secs: 0,
            max_ttl_secs: 3600,
        })
    }

    #[test]
    fn a_minted_token_verifies_with_its_user_and_role() {
        let a = auth(Some("ensinalab"), Some("api"));
        let t = a.mint(7, true, 60).unwrap();
        assert_eq!(
            a.verify(&t).unwrap(),
            Identity {
                user_id: UserId(7),
                is_admin: true,
                until: now_secs() + 60,
            }
        );
        let t = a.mint(8, false, 60).unwrap();
        assert!(!a.verify(&t).unwrap().is_admin);
    }

    #[test]
    fn the_extractor_takes_the_identity_the_rate_limiter_verified_instead_of_verifying_again() {
        let a = auth(None, None);
        let token = a.mint(7, false, 60).unwrap();
        let req = actix_web::test::TestRequest::default()
            .app_data(web::Data::new(a))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_http_request();
        // Marked as verified for another user: the token is not read again.
        req.extensions_mut().insert(Identity {
            user_id: UserId(9),
            is_admin: false,
            until: now_secs() + 60,
        });
        assert_eq!(authenticate(&req).unwrap().caller.user_id, UserId(9));
    }

    #[test]
    fn a_token_valid_for_longer_than_the_maximum_is_neither_minted_nor_accepted() {
        let a = auth(None, None);
        assert!(matches!(
            a.mint(7, false, 3601),
            Err(AuthError::LivesTooLong(3600))
        ));
        assert!(a.verify(&a.mint(7, false, 3600).unwrap()).is_ok());
        // Minted elsewhere with the same key for a year: refused here.
        let lax = Authenticator {
            max_ttl_secs: u64::MAX,
            ..auth(None, None)
        };
        let long = lax.mint(7, false, 365 * 24 * 3600).unwrap();
        assert!(matches!(
            a.verify(&long),
            Err(AuthError::LivesTooLong(3600))
        ));
    }

    #[test]
    fn a_token_for_another_issuer_or_audience_is_refused() {
        let minted = auth(Some("other"), Some("api")).mint(7, false, 60).unwrap();
        assert!(
            auth(Some("ensinalab"), Some("api"))
                .verify(&minted)
                .is_err()
        );
        let minted = auth(None, Some("other")).mint(7, false, 60).unwrap();
        assert!(auth(None, Some("api")).verify(&minted).is_err());
        let minted = auth(None, None).mint(7, false, 60).unwrap();
        assert!(auth(Some("ensinalab"), None).verify(&minted).is_err());
    }
}
