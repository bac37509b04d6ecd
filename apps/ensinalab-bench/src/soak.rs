//! The saturation run of `scripts/soak.sh`: a mix of lists, status reads, creates and cancels
//! from many users, first closed-loop to find the rate the server serves, then open-loop at a
//! multiple of it. It prints what the server answered, and how many requests the rate limits
//! refused against how many a GCRA of the configured quotas refuses for the same send times.
//! `lost-cancels` then checks every cancelled row's task against the result backend and the
//! worker's output directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use sea_orm::{ConnectionTrait as _, Database, Statement};

use crate::AnyError;

/// The rate-limit window the server's quotas are per (`RATE_LIMIT_PER_MIN`, ...).
const WINDOW_SECS: f64 = 60.0;
/// Known jobs kept per user, newest last.
const KNOWN: usize = 20;
/// Result keys read per MGET in `lost-cancels`.
const MGET_CHUNK: usize = 1_000;

#[derive(clap::Args)]
pub struct SoakArgs {
    #[arg(long)]
    base_url: String,
    /// The server's `JWT_SECRET`: the run mints its users' tokens.
    #[arg(long, env = "JWT_SECRET")]
    jwt_secret: String,
    /// Users of the run; as many more, with ids above them, carry the capacity probe.
    #[arg(long, default_value_t = 1_000)]
    users: i64,
    #[arg(long, default_value_t = 1_000_001)]
    first_user: i64,
    #[arg(long, default_value_t = 10)]
    probe_secs: u64,
    #[arg(long, default_value_t = 64)]
    probe_connections: usize,
    /// The open-loop rate, as a multiple of the rate the probe was served at.
    #[arg(long, default_value_t = 2.0)]
    load_factor: f64,
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Requests the driver keeps open at once; past it a due request is not sent, and counted.
    #[arg(long, default_value_t = 4_096)]
    max_in_flight: usize,
    /// The server's `RATE_LIMIT_PER_MIN` and `CANCEL_RATE_LIMIT_PER_MIN`.
    #[arg(long, default_value_t = 100)]
    per_min: u32,
    #[arg(long, default_value_t = 10)]
    cancel_per_min: u32,
}

#[derive(clap::Args)]
pub struct LostCancelsArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// The worker's `ENSINALAB_OUTPUT_DIR`: a finished task's output is under `<task_id>/`.
    #[arg(long)]
    output_dir: PathBuf,
}

/// What a user knows of its own jobs, learnt from the answers it got.
#[derive(Default)]
struct Known {
    tasks: Vec<String>,
    briefings: Vec<String>,
    videos: Vec<String>,
    options: Vec<String>,
}

fn remember(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        if list.len() == KNOWN {
            list.remove(0);
        }
        list.push(item);
    }
}

struct User {
    token: String,
    known: Mutex<Known>,
}

/// What one request was, for the tally and the limit check.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Route {
    List,
    Status,
    Create,
    Briefing,
    Select,
    Cancel,
    CancelAll,
}

impl Route {
    fn template(self) -> &'static str {
        match self {
            Self::List => "GET /tasks/active",
            Self::Status => "GET /tasks/{task_id}/status",
            Self::Create => "POST /briefings",
            Self::Briefing => "GET /briefings/{briefing_hash}",
            Self::Select => "POST /options/{option_hash}/select",
            Self::Cancel => "POST .../cancel",
            Self::CancelAll => "POST /tasks/cancel-all",
        }
    }

    fn counts_as_cancel(self) -> bool {
        matches!(self, Self::Cancel | Self::CancelAll)
    }
}

/// How the server answered a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    Status(u16),
    /// A 429 of the rate limits, by policy (`RateLimit` names the one that refused).
    Limited(Policy),
    /// No answer: connection error or the client's timeout.
    Failed,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Policy {
    General,
    Cancel,
}

struct Sample {
    user: usize,
    route: Route,
    /// Seconds from the start of the phase to the send.
    sent: f64,
    latency: f64,
    answer: Answer,
}

/// A small xorshift: the mix needs spread, not quality, and no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

struct Driver {
    client: Client,
    base: String,
    users: Vec<User>,
    seq: AtomicU64,
}

impl Driver {
    /// Picks what `user` does next from what it knows, and does it.
    async fn act(&self, user: usize, start: Instant) -> Sample {
        let u = &self.users[user];
        let mut rng = Rng(self
            .seq
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(user as u64 * 0x2545_F491_4F6C_DD1D)
            | 1);
        let (route, method, path, body) = {
            let known = u.known.lock().unwrap_or_else(PoisonError::into_inner);
            let pick = |list: &Vec<String>, rng: &mut Rng| {
                list.get(rng.below(list.len() as u64) as usize).cloned()
            };
            match rng.below(100) {
                0..35 => (Route::List, Method::GET, "/tasks/active".to_owned(), None),
                35..50 => match pick(&known.tasks, &mut rng) {
                    Some(t) => (
                        Route::Status,
                        Method::GET,
                        format!("/tasks/{t}/status"),
                        None,
                    ),
                    None => (Route::List, Method::GET, "/tasks/active".to_owned(), None),
                },
                50..65 => (
                    Route::Create,
                    Method::POST,
                    "/briefings".to_owned(),
                    Some(serde_json::json!({
                        "title": format!("Soak {}", rng.below(1_000_000)),
                        "duration_minutes": 5,
                    })),
                ),
                65..73 => match pick(&known.briefings, &mut rng) {
                    Some(b) => (
                        Route::Briefing,
                        Method::GET,
                        format!("/briefings/{b}"),
                        None,
                    ),
                    None => (Route::List, Method::GET, "/tasks/active".to_owned(), None),
                },
                73..80 => match pick(&known.options, &mut rng) {
                    Some(o) => (
                        Route::Select,
                        Method::POST,
                        format!("/options/{o}/select"),
                        None,
                    ),
                    None => (Route::List, Method::GET, "/tasks/active".to_owned(), None),
                },
                80..95 => {
                    let video = rng.below(2) == 0;
                    match (
                        video,
                        pick(&known.videos, &mut rng),
                        pick(&known.briefings, &mut rng),
                    ) {
                        (true, Some(v), _) | (false, Some(v), None) => (
                            Route::Cancel,
                            Method::POST,
                            format!("/videos/{v}/cancel"),
                            None,
                        ),
                        (_, _, Some(b)) => (
                            Route::Cancel,
                            Method::POST,
                            format!("/briefings/{b}/cancel-generation"),
                            None,
                        ),
                        (_, None, None) => {
                            (Route::List, Method::GET, "/tasks/active".to_owned(), None)
                        }
                    }
                }
                _ => (
                    Route::CancelAll,
                    Method::POST,
                    "/tasks/cancel-all".to_owned(),
                    None,
                ),
            }
        };
        let sent = start.elapsed().as_secs_f64();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&u.token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let answer = match request.send().await {
            Ok(res) => self.read(u, route, res).await,
            Err(_) => Answer::Failed,
        };
        Sample {
            user,
            route,
            sent,
            latency: start.elapsed().as_secs_f64() - sent,
            answer,
        }
    }

    /// Classifies the answer and learns the ids it carries.
    async fn read(&self, user: &User, route: Route, res: reqwest::Response) -> Answer {
        let status = res.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            // A limit's refusal names its policy with r=0; a full job-slot 429 has no such item.
            let refused = res
                .headers()
                .get("ratelimit")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return match refused {
                Some(items) if items.contains("\"cancel\";r=") => Answer::Limited(Policy::Cancel),
                Some(_) => Answer::Limited(Policy::General),
                None => Answer::Status(status.as_u16()),
            };
        }
        let Ok(body) = res.json::<serde_json::Value>().await else {
            return Answer::Status(status.as_u16());
        };
        if status.is_success() {
            let mut known = user.known.lock().unwrap_or_else(PoisonError::into_inner);
            learn(&mut known, route, &body);
        }
        Answer::Status(status.as_u16())
    }
}

fn learn(known: &mut Known, route: Route, body: &serde_json::Value) {
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
    match route {
        Route::List => {
            for task in body["tasks"].as_array().into_iter().flatten() {
                if let Some(t) = text(task, "task_id") {
                    remember(&mut known.tasks, t);
                }
                if let Some(id) = text(task, "resource_id") {
                    match task["resource_type"].as_str() {
                        Some("video") => remember(&mut known.videos, id),
                        _ => remember(&mut known.briefings, id),
                    }
                }
            }
        }
        Route::Create => {
            if let Some(b) = text(body, "briefing_id") {
                remember(&mut known.briefings, b);
            }
            if let Some(t) = text(body, "task_id") {
                remember(&mut known.tasks, t);
            }
        }
        Route::Briefing => {
            for option in body["options"].as_array().into_iter().flatten() {
                if let Some(o) = text(option, "option_id") {
                    remember(&mut known.options, o);
                }
            }
        }
        Route::Select => {
            if let Some(v) = text(body, "video_id") {
                remember(&mut known.videos, v);
            }
            if let Some(t) = text(body, "task_id") {
                remember(&mut known.tasks, t);
            }
        }
        Route::Status | Route::Cancel | Route::CancelAll => {}
    }
}

fn users(args: &SoakArgs, first: i64) -> Result<Vec<User>, AnyError> {
    #[derive(serde::Serialize)]
    struct Claims {
        sub: String,
        exp: u64,
    }
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3_600;
    let key = jsonwebtoken::EncodingKey::from_secret(args.jwt_secret.as_bytes());
    (first..first + args.users)
        .map(|id| {
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &Claims {
                    sub: id.to_string(),
                    exp,
                },
                &key,
            )?;
            Ok(User {
                token,
                known: Mutex::default(),
            })
        })
        .collect()
}

pub async fn run(args: SoakArgs) -> Result<(), AnyError> {
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.max_in_flight)
        .build()?;
    let driver = |first| -> Result<Arc<Driver>, AnyError> {
        Ok(Arc::new(Driver {
            client: client.clone(),
            base: args.base_url.trim_end_matches('/').to_owned(),
            users: users(&args, first)?,
            seq: AtomicU64::new(0x853C_49E6_748F_EA9B),
        }))
    };

    let probe = probe(driver(args.first_user + args.users)?, &args).await;
    let served = probe.len() as f64 / args.probe_secs as f64;
    let rate = served * args.load_factor;
    eprintln!("   probe: {served:.0} req/s served closed-loop; the run offers {rate:.0} req/s");

    let (samples, shed) = open_loop(driver(args.first_user)?, &args, rate).await;
    report(&args, served, rate, &samples, shed);
    Ok(())
}

/// Closed loop: `probe_connections` tasks, each sending as soon as its last answer came.
async fn probe(driver: Arc<Driver>, args: &SoakArgs) -> Vec<Sample> {
    let start = Instant::now();
    let until = start + Duration::from_secs(args.probe_secs);
    let next_user = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..args.probe_connections)
        .map(|_| {
            let (driver, next_user) = (Arc::clone(&driver), Arc::clone(&next_user));
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < until {
                    let user = next_user.fetch_add(1, Ordering::Relaxed) % driver.users.len();
                    samples.push(driver.act(user, start).await);
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for l in loops {
        all.extend(l.await.unwrap_or_default());
    }
    all
}

/// Open loop: one request every `1 / rate` seconds, users in turn, whatever the answers do.
async fn open_loop(driver: Arc<Driver>, args: &SoakArgs, rate: f64) -> (Vec<Sample>, u64) {
    let start = Instant::now();
    let total = (rate * args.duration_secs as f64) as u64;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut shed = 0;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
            shed += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (driver, in_flight) = (Arc::clone(&driver), Arc::clone(&in_flight));
        let user = (i % driver.users.len() as u64) as usize;
        tasks.push(tokio::spawn(async move {
            let sample = driver.act(user, start).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            sample
        }));
    }
    let mut samples = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(s) = t.await {
            samples.push(s);
        }
    }
    (samples, shed)
}

/// GCRA as the server's limiters run it: a request at `t` is let through when the theoretical
/// arrival time it would push to stays within one window of `t`.
struct Gcra {
    interval: f64,
    tat: f64,
}

impl Gcra {
    fn new(quota: u32) -> Self {
        Self {
            interval: WINDOW_SECS / f64::from(quota.max(1)),
            tat: f64::NEG_INFINITY,
        }
    }

    fn allows(&mut self, t: f64) -> bool {
        let new_tat = self.tat.max(t) + self.interval;
        let allowed = new_tat - t <= WINDOW_SECS + 1e-9;
        if allowed {
            self.tat = new_tat;
        }
        allowed
    }
}

/// Refusals a GCRA of the configured quotas makes for the same send times: (general, cancel).
fn expected_refusals(args: &SoakArgs, samples: &[Sample]) -> (u64, u64) {
    let mut order: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.answer != Answer::Failed)
        .collect();
    order.sort_by(|a, b| a.sent.total_cmp(&b.sent));
    let mut limiters: BTreeMap<usize, (Gcra, Gcra)> = BTreeMap::new();
    let (mut general, mut cancel) = (0, 0);
    for s in order {
        let (g, c) = limiters
            .entry(s.user)
            .or_insert_with(|| (Gcra::new(args.per_min), Gcra::new(args.cancel_per_min)));
        if !g.allows(s.sent) {
            general += 1;
        } else if s.route.counts_as_cancel() && !c.allows(s.sent) {
            cancel += 1;
        }
    }
    (general, cancel)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn diff_pct(actual: u64, expected: u64) -> f64 {
    if expected == 0 {
        return if actual == 0 { 0.0 } else { 100.0 };
    }
    (actual as f64 - expected as f64) / expected as f64 * 100.0
}

fn report(args: &SoakArgs, served: f64, rate: f64, samples: &[Sample], shed: u64) {
    let count = |f: &dyn Fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count() as u64;
    let status = |s: &Sample| match s.answer {
        Answer::Status(code) => Some(code),
        Answer::Limited(_) => Some(429),
        Answer::Failed => None,
    };
    let limited = |p| count(&|s| s.answer == Answer::Limited(p));
    let (general, cancel) = (limited(Policy::General), limited(Policy::Cancel));
    let (exp_general, exp_cancel) = expected_refusals(args, samples);
    let mut latencies: Vec<f64> = samples
        .iter()
        .filter(|s| s.answer != Answer::Failed)
        .map(|s| s.latency * 1e3)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let answered = latencies.len() as u64;
    let elapsed = samples
        .iter()
        .map(|s| s.sent + s.latency)
        .fold(0.0, f64::max)
        .max(1e-9);
    println!(
        "SOAK served_closed_loop={served:.0} offered_rps={rate:.0} duration_s={} sent={} not_sent={shed} answered={answered} answered_rps={:.0} s2xx={} s4xx_other={} limited_general={general} limited_cancel={cancel} job_slots_full={} s5xx={} no_answer={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        args.duration_secs,
        samples.len(),
        answered as f64 / elapsed,
        count(&|s| status(s).is_some_and(|c| (200..300).contains(&c))),
        count(&|s| matches!(s.answer, Answer::Status(c) if (400..500).contains(&c) && c != 429)),
        count(&|s| s.answer == Answer::Status(429)),
        count(&|s| status(s).is_some_and(|c| c >= 500)),
        count(&|s| s.answer == Answer::Failed),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0),
    );
    println!(
        "LIMITS general_refused={general} general_expected={exp_general} general_diff_pct={:.2} cancel_refused={cancel} cancel_expected={exp_cancel} cancel_diff_pct={:.2}",
        diff_pct(general, exp_general),
        diff_pct(cancel, exp_cancel),
    );
    let mut by_route: BTreeMap<(Route, String), u64> = BTreeMap::new();
    for s in samples {
        let key = match s.answer {
            Answer::Status(c) => c.to_string(),
            Answer::Limited(Policy::General) => "429 general".to_owned(),
            Answer::Limited(Policy::Cancel) => "429 cancel".to_owned(),
            Answer::Failed => "no answer".to_owned(),
        };
        *by_route.entry((s.route, key)).or_default() += 1;
    }
    for ((route, answer), n) in by_route {
        println!("ROUTE {} {answer} {n}", route.template());
    }
}

/// Every cancelled row's task: its result-backend state, and whether it left finished output.
/// A cancel is lost when the task succeeded or its output was moved into place.
pub async fn lost_cancels(args: LostCancelsArgs) -> Result<(), AnyError> {
    let db = Database::connect(&args.database_url).await?;
    // The revoke's recorded outcome says whether the user was told the task finished first.
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT c.task_id, r.outcome FROM (SELECT task_id FROM briefings \
             WHERE status = 'cancelled' AND task_id IS NOT NULL UNION ALL SELECT task_id \
             FROM videos WHERE status = 'cancelled' AND task_id IS NOT NULL) c \
             LEFT JOIN revoke_outbox r ON r.task_id = c.task_id",
        ))
        .await?;
    let cancels: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| {
            Ok::<_, sea_orm::DbErr>((
                r.try_get::<String>("", "task_id")?,
                r.try_get::<Option<String>>("", "outcome")?,
            ))
        })
        .collect::<Result<_, _>>()?;
    let mut conn = redis::Client::open(args.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    let mut lost = Vec::new();
    let mut finished_first = 0_usize;
    for chunk in cancels.chunks(MGET_CHUNK) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|(id, _)| format!("celery-task-meta-{id}"))
            .collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        for ((id, outcome), value) in chunk.iter().zip(values) {
            let state = value
                .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
                .and_then(|v| v["status"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "(no result)".to_owned());
            let told = outcome.as_deref() == Some("finished_first");
            finished_first += usize::from(told);
            // Lost in silence: the task finished, or left its output, and its owner was not
            // told (a task that finished first is told, and its output goes with its cleanup,
            // which may still wait behind the run's backlog).
            if !told && (state == "SUCCESS" || args.output_dir.join(id).exists()) {
                lost.push(id.clone());
            }
            *states.entry(state).or_default() += 1;
        }
    }
    let states: Vec<String> = states.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    println!(
        "CANCELS cancelled={} lost={} finished_first={finished_first} states={}",
        cancels.len(),
        lost.len(),
        states.join(",")
    );
    for id in lost.iter().take(20) {
        println!("LOST {id}");
    }
    Ok(())
}
