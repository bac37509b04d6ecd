//! `live-fleet`: the live stream as an operator runs it (`scripts/bench-live.sh fleet`): two
//! servers on one PostgreSQL and one Redis, STREAMS streams open on them for DURATION, half
//! `GET /tasks/events` and half `GET /tasks/ws`, while changes flow through both servers.
//!
//! - Streams: USERS users, each with STREAMS / USERS streams, spread over both servers and both
//!   kinds, all opened (past their snapshot) before the first change.
//! - Changes: RATE briefings a second are created, each through one server in turn, for a user
//!   drawn in turn, and cancelled a second later through the other server; each makes
//!   `created`, `cancelled` and `revoke` for its owner's streams.
//! - Printed: streams that ended before the end (unexpected disconnects), fresh snapshots in
//!   the middle of a stream, for every stream the changes it missed, got twice or got of
//!   another user; the cancel-to-event latency at every stream of the owner, p50 and p99; each
//!   server's RSS every 10 s and its growth after the first minute; and the memory per open
//!   stream (both servers' RSS before and after the streams were opened).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::AnyError;
use crate::live::{percentile, rss_kib, stream, token};

#[derive(clap::Args)]
pub struct FleetArgs {
    /// `http://127.0.0.1:PORT` of each server.
    #[arg(long, num_args = 2)]
    bases: Vec<String>,
    /// Each server's process id, for its memory.
    #[arg(long, num_args = 2)]
    pids: Vec<u32>,
    /// The servers' `JWT_SECRET`.
    #[arg(long, env = "JWT_SECRET")]
    secret: String,
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Briefings created (and cancelled) per second.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// How long the streams stay open while changes flow, in seconds.
    #[arg(long, default_value_t = 600)]
    secs: u64,
}

/// What a stream saw: its user, each change by (resource, kind) with its arrival, how it ended.
#[derive(Default)]
struct Seen {
    changes: Vec<(String, String, Instant)>,
    snapshots: usize,
    ended: Option<String>,
}

/// One event as both kinds deliver it: its name and its data.
fn record(seen: &mut Seen, event: &str, data: &Value) {
    match event {
        "snapshot" => seen.snapshots += 1,
        "change" => seen.changes.push((
            data["resource_id"].as_str().unwrap_or_default().to_owned(),
            data["change"].as_str().unwrap_or_default().to_owned(),
            Instant::now(),
        )),
        _ => {}
    }
}

/// Opens an SSE stream (`live`'s reader); returns once its snapshot arrived.
async fn open_sse(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    seen: Arc<Mutex<Seen>>,
) -> Result<tokio::task::JoinHandle<()>, AnyError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = stream(client, base, token, tx).await?;
    let (event, data) = rx.recv().await.ok_or("no snapshot")?;
    record(&mut *seen.lock().await, &event, &data);
    Ok(tokio::spawn(async move {
        while let Some((event, data)) = rx.recv().await {
            record(&mut *seen.lock().await, &event, &data);
        }
        seen.lock().await.ended = Some("end of stream".to_owned());
        drop(reader);
    }))
}

/// Opens a WebSocket stream; returns once its snapshot arrived.
async fn open_ws(
    base: &str,
    token: &str,
    seen: Arc<Mutex<Seen>>,
) -> Result<tokio::task::JoinHandle<()>, AnyError> {
    let url = format!("{}/tasks/ws", base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    socket
        .send(Message::text(
            serde_json::json!({ "token": token }).to_string(),
        ))
        .await?;
    let (ready_tx, mut ready) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        while let Some(msg) = socket.next().await {
            match msg {
                Ok(Message::Text(text)) => {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    record(
                        &mut *seen.lock().await,
                        v["event"].as_str().unwrap_or_default(),
                        &v["data"],
                    );
                    let _ = ready_tx.try_send(());
                }
                Ok(Message::Close(frame)) => {
                    seen.lock().await.ended = Some(format!("closed {frame:?}"));
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    seen.lock().await.ended = Some(e.to_string());
                    return;
                }
            }
        }
        seen.lock().await.ended = Some("socket ended".to_owned());
    });
    ready.recv().await.ok_or("no snapshot")?;
    Ok(task)
}

/// A briefing made by the driver: its owner, and when its cancel was sent.
struct Made {
    user: usize,
    cancel_sent: Option<Instant>,
}

pub async fn run(args: FleetArgs) -> Result<(), AnyError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let bases: Vec<String> = args
        .bases
        .iter()
        .map(|b| b.trim_end_matches('/').to_owned())
        .collect();
    let tokens = (0..args.users)
        .map(|u| token(&args.secret, 10_000 + i64::try_from(u)?))
        .collect::<Result<Vec<_>, _>>()?;
    let rss = |pids: &[u32]| -> Result<u64, AnyError> {
        pids.iter().map(|p| rss_kib(*p)).sum::<Result<u64, _>>()
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss(&args.pids)?;
    let mut streams: Vec<(usize, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>)> = Vec::new();
    for n in 0..args.streams {
        let user = n % args.users;
        let base = &bases[(n / args.users) % 2];
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = if n % 2 == 0 {
            open_sse(&client, base, &tokens[user], Arc::clone(&seen)).await?
        } else {
            open_ws(base, &tokens[user], Arc::clone(&seen)).await?
        };
        streams.push((user, seen, task));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss(&args.pids)?;
    println!(
        "fleet memory: {} streams open on 2 servers (half SSE, half WebSocket): RSS {before} KiB -> {after} KiB, {:.1} KiB per stream",
        streams.len(),
        after.saturating_sub(before) as f64 / streams.len().max(1) as f64
    );

    // The driver: creates, then cancels a second later through the other server.
    let made: Arc<Mutex<HashMap<String, Made>>> = Arc::default();
    let started = Instant::now();
    let end = started + Duration::from_secs(args.secs);
    let sampler = {
        let pids = args.pids.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            while Instant::now() < end {
                tick.tick().await;
                let at = started.elapsed().as_secs();
                let each: Vec<u64> = pids.iter().filter_map(|p| rss_kib(*p).ok()).collect();
                samples.push((at, each));
            }
            samples
        })
    };
    let mut pending: Vec<(Instant, String, usize)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    let (mut n, mut failures) = (0usize, 0usize);
    while Instant::now() < end {
        tick.tick().await;
        let (user, via) = (n % args.users, n % 2);
        n += 1;
        let res = client
            .post(format!("{}/briefings", bases[via]))
            .bearer_auth(&tokens[user])
            .json(&serde_json::json!({"title": format!("Fleet {n}"), "description": "...", "duration_minutes": 10}))
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await?;
                let hash = body["briefing_id"]
                    .as_str()
                    .ok_or("no briefing_id")?
                    .to_owned();
                made.lock().await.insert(
                    hash.clone(),
                    Made {
                        user,
                        cancel_sent: None,
                    },
                );
                pending.push((Instant::now() + Duration::from_secs(1), hash, 1 - via));
            }
            _ => failures += 1,
        }
        let now = Instant::now();
        let due: Vec<_> = pending
            .iter()
            .filter(|(at, ..)| *at <= now)
            .cloned()
            .collect();
        pending.retain(|(at, ..)| *at > now);
        for (_, hash, via) in due {
            let user = made.lock().await[&hash].user;
            let sent = Instant::now();
            if let Some(m) = made.lock().await.get_mut(&hash) {
                m.cancel_sent = Some(sent);
            }
            let ok = client
                .post(format!("{}/briefings/{hash}/cancel-generation", bases[via]))
                .bearer_auth(&tokens[user])
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                failures += 1;
            }
        }
    }
    for (_, hash, via) in pending {
        let user = made.lock().await[&hash].user;
        if let Some(m) = made.lock().await.get_mut(&hash) {
            m.cancel_sent = Some(Instant::now());
        }
        let _ = client
            .post(format!("{}/briefings/{hash}/cancel-generation", bases[via]))
            .bearer_auth(&tokens[user])
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let samples = sampler.await?;

    // What every stream saw against what its user's jobs made.
    let made = made.lock().await;
    let mut by_user: HashMap<usize, Vec<&String>> = HashMap::new();
    for (hash, m) in made.iter() {
        by_user.entry(m.user).or_default().push(hash);
    }
    let (mut ended, mut resyncs, mut missed, mut twice, mut foreign, mut delivered) =
        (0, 0, 0, 0, 0, 0);
    let mut latencies = Vec::new();
    for (user, seen, task) in &streams {
        task.abort();
        let seen = seen.lock().await;
        if let Some(why) = &seen.ended {
            ended += 1;
            eprintln!("a stream of user {user} ended: {why}");
        }
        resyncs += seen.snapshots.saturating_sub(1);
        let mut got = HashSet::new();
        for (hash, change, at) in &seen.changes {
            delivered += 1;
            match made.get(hash) {
                Some(m) if m.user == *user => {}
                _ => {
                    foreign += 1;
                    continue;
                }
            }
            if !got.insert((hash.as_str(), change.as_str())) {
                twice += 1;
            }
            if change == "cancelled"
                && let Some(sent) = made[hash].cancel_sent
            {
                latencies.push(at.saturating_duration_since(sent));
            }
        }
        for hash in by_user.get(user).into_iter().flatten() {
            for change in ["created", "cancelled", "revoke"] {
                if !got.contains(&(hash.as_str(), change)) {
                    missed += 1;
                }
            }
        }
    }
    latencies.sort();
    println!(
        "fleet run: {} s, {} briefings created and cancelled ({failures} requests failed), {delivered} events delivered to {} streams",
        args.secs,
        made.len(),
        streams.len()
    );
    println!(
        "fleet delivery: unexpected disconnects {ended}, mid-stream snapshots {resyncs}, missed {missed}, delivered twice {twice}, delivered to another user {foreign}"
    );
    println!(
        "fleet latency (cancel sent -> its event read at each of the owner's streams), {} deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    for (at, each) in &samples {
        println!("fleet rss at {at:>4} s: {each:?} KiB");
    }
    let after_minute: Vec<&(u64, Vec<u64>)> = samples.iter().filter(|(at, _)| *at >= 60).collect();
    if let (Some(first), Some(last)) = (after_minute.first(), after_minute.last()) {
        for (i, (a, b)) in first.1.iter().zip(&last.1).enumerate() {
            println!(
                "fleet rss growth of server {i} from {} s to {} s: {} KiB",
                first.0,
                last.0,
                i128::from(*b) - i128::from(*a)
            );
        }
    }
    Ok(())
}
