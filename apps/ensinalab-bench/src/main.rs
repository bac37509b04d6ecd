//! `ensinalab-bench`: the Rust half of `scripts/bench.sh` (see `docs/benchmarks.md`).
//!
//! - `seed` fills PostgreSQL and Redis directly, without HTTP: the store's migrations, then bulk
//!   SQL giving each user N active jobs, and Celery result-backend values for two task ids in
//!   three (the rest are PENDING, no key), as a worker would have written them.
//! - `floor` is the physical floor of `GET /tasks/active`: the exact SQL statement the store
//!   sends and the one MGET the Celery adapter sends, looped by as many tasks as wrk has
//!   connections, over a pool as large as the server's, with no HTTP, JSON or auth. The server
//!   can at best approach it; the harness prints server/floor.
//! - `http-floor` is the full-body floor: a minimal actix-web server that only verifies the
//!   token, runs that SQL and MGET, encodes hashids and writes the seed's whole body; the harness
//!   prints server/HTTP floor.
//! - `backlog` queues other users' task messages (real ones, as the Celery adapter publishes
//!   them), `seed --queued` gives seeded jobs real messages instead of backend values, and
//!   `slowlog` sums up Redis's SLOWLOG: the cancel-with-a-backlog case.
//! - `live` measures the live stream against a running server (`scripts/bench-live.sh`): a
//!   cancel's time to its event at the client, and memory per idle open stream; `live-fleet`
//!   the same stream as operators run it (two servers on Redis, SSE and WebSocket, minutes of
//!   changes): disconnects, delivery, latency, memory over time (`scripts/bench-live.sh fleet`).
//! - `soak` drives a server at a multiple of the rate it serves and `lost-cancels` checks every
//!   cancelled job afterwards: `scripts/soak.sh`.
//! - `confirm` revokes running tasks on a real worker one at a time: how long a revoke takes to
//!   report the worker's confirmed kill; `unqueue` times the removal of cancelled tasks'
//!   messages from a queue with a backlog (`scripts/bench-celery.sh`).

mod confirm;
mod floor;
mod http_floor;
mod live;
mod live_fleet;
mod queue;
mod seed;
mod soak;
mod unqueue;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ensinalab-bench",
    about = "The Rust half of scripts/bench.sh, scripts/bench-live.sh and scripts/soak.sh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, then give users FIRST..FIRST+USERS JOBS active jobs each.
    Seed(seed::SeedArgs),
    /// Loop the list request's SQL + MGET without HTTP; print requests/s, p50, p99.
    Floor(floor::FloorArgs),
    /// Serve `GET /tasks/active` with nothing but what the route cannot skip, until killed.
    HttpFloor(http_floor::HttpFloorArgs),
    /// Queue MESSAGES task messages of other users (about 1 KB each).
    Backlog(queue::BacklogArgs),
    /// Print how many SLOWLOG entries there are, how many reach the bound, and the slowest.
    Slowlog(queue::SlowlogArgs),
    /// The live stream against a running server: cancel-to-event latency, memory per idle
    /// stream (scripts/bench-live.sh).
    Live(live::LiveArgs),
    /// The live stream on two servers over Redis: STREAMS streams, half SSE and half
    /// WebSocket, open for minutes while changes flow (scripts/bench-live.sh fleet).
    LiveFleet(live_fleet::FleetArgs),
    /// Probe the rate the server serves, then offer LOAD_FACTOR times it; print the answers.
    Soak(soak::SoakArgs),
    /// Print how many cancelled rows' tasks succeeded or left output anyway.
    LostCancels(soak::LostCancelsArgs),
    /// Revoke COUNT running tasks one at a time on a running worker; print how many reports
    /// said `killed` and the revoke's time, p50 and p99 (scripts/bench-celery.sh).
    Confirm(confirm::ConfirmArgs),
    /// Cancel three queued tasks (at the tail, the middle and the head of a backlog) and run the
    /// removal passes: when each message left the queue (scripts/bench-celery.sh).
    Unqueue(unqueue::UnqueueArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Seed(args) => seed::run(args).await,
        Command::Floor(args) => floor::run(args).await,
        Command::HttpFloor(args) => http_floor::run(args).await,
        Command::Backlog(args) => queue::backlog(args).await,
        Command::Slowlog(args) => queue::slowlog(args).await,
        Command::Live(args) => live::run(args).await,
        Command::LiveFleet(args) => live_fleet::run(args).await,
        Command::Soak(args) => soak::run(args).await,
        Command::LostCancels(args) => soak::lost_cancels(args).await,
        Command::Confirm(args) => confirm::run(args).await,
        Command::Unqueue(args) => unqueue::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ensinalab-bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Errors of both commands; this is a tool, so a message is all a caller needs.
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The databases and the users a command works on.
#[derive(clap::Args)]
pub struct Target {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// The first user id; users are FIRST..FIRST+USERS.
    #[arg(long)]
    first_user: i64,
    #[arg(long, default_value_t = 20)]
    users: i64,
}
