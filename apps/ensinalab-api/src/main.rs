//! `ensinalab-api`: serve (default), mint a token, or run the migrations.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ensinalab_api::auth::Authenticator;
use ensinalab_api::config::{Config, JwtSecret};
use ensinalab_api::{Application, error, startup, telemetry};

#[derive(Parser)]
#[command(
    version,
    about = "EnsinaLab task-control API (configuration from the environment)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print a bearer token signed with JWT_SECRET.
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        user_id: i64,
        /// `admin` to see tracebacks.
        #[arg(long)]
        role: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Apply the database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ensinalab-api: bad configuration: {err}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(config.log_format);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Token {
            user_id,
            role,
            ttl_secs,
        } => token(&config, user_id, role.as_deref(), ttl_secs),
        Command::Migrate => migrate(&config).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ensinalab-api: {}", error::chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The dev token's lifetime (never past `JWT_MAX_TTL_SECS`, which config checks is positive).
const DEV_TOKEN_TTL_SECS: u64 = 3600;

async fn serve(config: Config) -> Result<(), AnyError> {
    let app = Application::build(&config).await?;
    let url = format!("http://{}:{}", config.bind_addr.ip(), app.port());
    tracing::info!(%url, database = %redact(&config.database_url), "listening");
    if let JwtSecret::Dev(_) = config.jwt.secret {
        let token = Authenticator::new(&config.jwt).mint(1, false, DEV_TOKEN_TTL_SECS)?;
        tracing::warn!(
            "DEV MODE: JWT_SECRET is not set; tokens are signed with a random secret that dies \
             with this process. Set JWT_SECRET (32+ bytes) in any shared or production setting."
        );
        // On stderr, so stdout stays pure JSON with LOG_FORMAT=json.
        eprintln!(
            "\n  Dev token for user 1 (1 h):\n\n  curl -H 'Authorization: Bearer {token}' {url}/tasks/active\n\n  Painel: {url}/#token={token}\n"
        );
    }
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

fn token(config: &Config, user_id: i64, role: Option<&str>, ttl_secs: u64) -> Result<(), AnyError> {
    if config.jwt.secret.is_dev() {
        return Err("JWT_SECRET is not set: a token signed now would verify nowhere".into());
    }
    if user_id < 1 {
        return Err("--user-id must be a positive integer".into());
    }
    if ttl_secs > config.jwt.max_ttl_secs {
        return Err(format!(
            "--ttl-secs {ttl_secs} is over JWT_MAX_TTL_SECS ({}): the server would refuse the token",
            config.jwt.max_ttl_secs
        )
        .into());
    }
    let admin = match role {
        None => false,
        Some("admin") => true,
        Some(other) => return Err(format!("unknown role {other:?} (only `admin`)").into()),
    };
    println!(
        "{}",
        Authenticator::new(&config.jwt).mint(user_id, admin, ttl_secs)?
    );
    Ok(())
}

async fn migrate(config: &Config) -> Result<(), AnyError> {
    let store = startup::open_store(config).await?;
    store.migrate().await?;
    tracing::info!(database = %redact(&config.database_url), "migrations applied");
    Ok(())
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
