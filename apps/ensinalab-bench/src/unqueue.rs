//! `unqueue`: how long after a cancel the removal pass takes a claimed task's message out of a
//! queue holding a backlog, for a message where workers take their next one (the tail), one
//! in the middle and one at the head. The caller gives a Redis of its own
//! (`scripts/bench-celery.sh`): the queue is filled here and the SLOWLOG threshold is set to 0.
//! A watcher reads the three messages' places every millisecond (`LINDEX`, which skips whole
//! list nodes) and notes when each changed; the passes run back to back, as the server's job
//! runs them while something is owed (its idle check, every 100 ms, comes on top).

use std::time::{Duration, Instant};

use ensinalab_celery::{CeleryBroker, CeleryConfig};
use ensinalab_domain::TaskId;
use ensinalab_ports::TaskBroker as _;

use crate::AnyError;

/// How many places around a message's own the watcher looks.
const NEAR: i64 = 4;
use crate::queue::{Template, push, report_slowlog};

#[derive(clap::Args)]
pub struct UnqueueArgs {
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    #[arg(long, default_value = "bench-unqueue")]
    queue: String,
    /// Other users' messages queued around the three cancelled ones.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
}

pub async fn run(args: UnqueueArgs) -> Result<(), AnyError> {
    let client = redis::Client::open(args.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("DEL")
        .arg(&args.queue)
        .query_async(&mut conn)
        .await?;
    let template = Template::other_users(&args.redis_url, &mut conn).await?;
    let new_id = || uuid::Uuid::new_v4().to_string();
    let (tail, middle, head) = (new_id(), new_id(), new_id());
    let half = args.backlog / 2;
    // Pushed at the head in this order: the first is the oldest, at the tail.
    let order = std::iter::once(tail.clone())
        .chain((0..half).map(|_| new_id()))
        .chain(std::iter::once(middle.clone()))
        .chain((0..args.backlog - half).map(|_| new_id()))
        .chain(std::iter::once(head.clone()));
    push(&mut conn, &args.queue, order.map(|id| template.copy(&id))).await?;
    let len: i64 = redis::cmd("LLEN")
        .arg(&args.queue)
        .query_async(&mut conn)
        .await?;
    let places = [
        ("tail", tail, -1_i64),
        ("middle", middle, -i64::try_from(half)? - 2),
        ("head", head, -len),
    ];
    for (setting, value) in [
        ("slowlog-log-slower-than", 0),
        ("slowlog-max-len", 1_000_000),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(setting)
            .arg(value)
            .query_async(&mut conn)
            .await?;
    }
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut conn)
        .await?;

    let broker =
        CeleryBroker::new(CeleryConfig::new(args.redis_url.as_str()).with_queue(&args.queue))?;
    let ids: Vec<TaskId> = places
        .iter()
        .map(|(_, id, _)| TaskId::parse(id))
        .collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    broker.revoke(&ids).await?;
    let answered = t0.elapsed();

    let watch = tokio::spawn({
        let places: Vec<(String, i64)> =
            places.iter().map(|(_, id, at)| (id.clone(), *at)).collect();
        let queue = args.queue.clone();
        let mut conn = client.get_multiplexed_async_connection().await?;
        async move {
            let mut gone: Vec<Option<Duration>> = vec![None; places.len()];
            while gone.iter().any(Option::is_none) && t0.elapsed() < Duration::from_secs(60) {
                for (k, (id, at)) in places.iter().enumerate() {
                    if gone[k].is_some() {
                        continue;
                    }
                    // The tail's removal moves every other message one place toward the
                    // tail: look a few places around.
                    let around: Vec<String> = redis::cmd("LRANGE")
                        .arg(&queue)
                        .arg(*at - NEAR)
                        .arg((*at + NEAR).min(-1))
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    if !around.iter().any(|m| m.contains(id.as_str())) {
                        gone[k] = Some(t0.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            gone
        }
    });
    let mut passes = 0;
    let mut removed = 0;
    // When the pass that removed each message returned (the watcher sees a message that the
    // deep removal moved, the head's, as gone from its place).
    let mut reported: Vec<Option<Duration>> = vec![None; ids.len()];
    loop {
        let taken = broker.take_out_cancelled().await?.unwrap_or_default();
        passes += 1;
        removed += taken.removed.len();
        for (k, id) in ids.iter().enumerate() {
            if taken.removed.contains(id) {
                reported[k] = Some(t0.elapsed());
            }
        }
        if removed >= ids.len() || (!taken.more && taken.removed.is_empty()) {
            break;
        }
    }
    let passes_done = t0.elapsed();
    let gone = watch.await?;
    let ms = |d: Option<Duration>| {
        d.map_or("-".to_owned(), |d| {
            format!("{:.1}", d.as_secs_f64() * 1000.0)
        })
    };
    println!(
        "UNQUEUE backlog={} cancel_ms={:.1} gone_from_place_ms(tail,middle,head)={},{},{} reported_by_pass_ms={},{},{} passes={passes} removed={removed} passes_ms={:.0}",
        args.backlog,
        answered.as_secs_f64() * 1000.0,
        ms(gone[0]),
        ms(gone[1]),
        ms(gone[2]),
        ms(reported[0]),
        ms(reported[1]),
        ms(reported[2]),
        passes_done.as_secs_f64() * 1000.0,
    );
    // Every command of the cancel and the passes (and the watcher's LINDEXes).
    report_slowlog(&mut conn, 5_000).await?;
    let _: () = redis::cmd("DEL")
        .arg(&args.queue)
        .query_async(&mut conn)
        .await?;
    Ok(())
}
