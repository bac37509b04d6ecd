//! `live`: the live stream's figures against a running server (`scripts/bench-live.sh`).
//!
//! - latency: one user's stream open; CHANGES jobs of that user created beforehand; each is
//!   cancelled in turn, timed from the moment the cancel request is sent to the moment its
//!   `cancelled` event is read from the stream; p50 and p99 (and, for comparison, of the same
//!   requests' responses: the event is emitted before the response is written).
//! - memory: the server's resident memory (`VmRSS`) before and after STREAMS idle streams are
//!   opened (one per user, each past its snapshot), divided by STREAMS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::AnyError;

#[derive(clap::Args)]
pub struct LiveArgs {
    /// `http://127.0.0.1:PORT`
    #[arg(long)]
    base: String,
    /// The server's `JWT_SECRET`.
    #[arg(long, env = "JWT_SECRET")]
    secret: String,
    /// The server's process id, for its memory.
    #[arg(long)]
    pid: u32,
    #[arg(long, default_value_t = 1000)]
    changes: usize,
    #[arg(long, default_value_t = 1000)]
    streams: usize,
}

pub(crate) fn token(secret: &str, user: i64) -> Result<String, AnyError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims =
        serde_json::json!({"sub": user.to_string(), "iat": now, "nbf": now, "exp": now + 3000});
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Opens `user`'s stream and hands each event's (name, data) to `tx`.
pub(crate) async fn stream(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    tx: mpsc::UnboundedSender<(String, Value)>,
) -> Result<tokio::task::JoinHandle<()>, AnyError> {
    let mut res = client
        .get(format!("{base}/tasks/events"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?;
    Ok(tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = res.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut event, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).ok();
                    }
                }
                if let (Some(event), Some(data)) = (event, data)
                    && tx.send((event, data)).is_err()
                {
                    return;
                }
            }
        }
    }))
}

pub(crate) fn rss_kib(pid: u32) -> Result<u64, AnyError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

pub async fn run(args: LiveArgs) -> Result<(), AnyError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()?;
    let base = args.base.trim_end_matches('/');

    // Latency: cancel -> event.
    let user = token(&args.secret, 1)?;
    let mut hashes = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        let res: Value = client
            .post(format!("{base}/briefings"))
            .bearer_auth(&user)
            .json(&serde_json::json!({"title": format!("Bench {i}"), "description": "...", "duration_minutes": 10}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        hashes.push(
            res["briefing_id"]
                .as_str()
                .ok_or("no briefing_id")?
                .to_owned(),
        );
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = stream(&client, base, &user, tx).await?;
    match rx.recv().await {
        Some((event, _)) if event == "snapshot" => {}
        other => return Err(format!("expected a snapshot, got {other:?}").into()),
    }
    let mut latencies = Vec::with_capacity(hashes.len());
    let mut responses = Vec::with_capacity(hashes.len());
    let mut early: HashMap<String, Instant> = HashMap::new();
    for hash in &hashes {
        let sent = Instant::now();
        client
            .post(format!("{base}/briefings/{hash}/cancel-generation"))
            .bearer_auth(&user)
            .send()
            .await?
            .error_for_status()?;
        responses.push(sent.elapsed());
        let arrived = loop {
            if let Some(at) = early.remove(hash) {
                break at;
            }
            let (event, data) = rx.recv().await.ok_or("the stream ended")?;
            if event == "change" && data["change"] == "cancelled" {
                let id = data["resource_id"].as_str().unwrap_or_default().to_owned();
                if &id == hash {
                    break Instant::now();
                }
                early.insert(id, Instant::now());
            }
        };
        latencies.push(arrived.saturating_duration_since(sent));
    }
    reader.abort();
    latencies.sort();
    responses.sort();
    println!(
        "cancel response (sent -> its response read), for comparison: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&responses, 0.50).as_secs_f64() * 1e3,
        percentile(&responses, 0.99).as_secs_f64() * 1e3,
    );
    println!(
        "live latency (cancel sent -> its event read), {} changes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // Memory: idle streams.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(args.pid)?;
    let mut open = Vec::with_capacity(args.streams);
    for n in 0..args.streams {
        let user = 1_000 + i64::try_from(n)?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reader = stream(&client, base, &token(&args.secret, user)?, tx).await?;
        rx.recv().await.ok_or("no snapshot")?;
        open.push((reader, rx));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(args.pid)?;
    println!(
        "live memory: {} idle streams open: server RSS {before} KiB -> {after} KiB, {:.1} KiB per stream",
        open.len(),
        (after.saturating_sub(before)) as f64 / open.len().max(1) as f64
    );
    for (reader, _) in open {
        reader.abort();
    }
    Ok(())
}
