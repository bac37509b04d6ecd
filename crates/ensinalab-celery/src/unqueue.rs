//! Taking cancelled tasks' messages out of the Redis queue, off the response path: a worker
//! that does not claim (a stock Celery worker) runs any message it pops that it heard no revoke
//! for, so the messages of tasks a cancel claimed are removed, not only claimed.
//!
//! **What is owed.** The cancel's pipeline (`crate::broker`, its claims) also `SADD`s every id
//! it names to the owed set `ensinalab.unqueue.<queue>` ([`SET_CHUNK`] ids per command): the
//! same round trip, O(1) per id, no command that reads the queue, and nothing waits on its
//! outcome. Whether the cancel's claim won is known only from the replies, so the pass sorts
//! that out instead of a second round trip on the response path: it reads the owed ids' result
//! keys (`MGET`, [`SET_CHUNK`] at a time) and drops at once every id whose key holds anything
//! but REVOKED (a worker claimed it, so its message is out of the list; or it is finished). A
//! REVOKED key is the cancel's claim, a worker's discard or an earlier cancel's claim (a
//! revoke delivered twice); an absent one, a claim that expired: those are looked for, and
//! dropped after two walks if not found. The set lives in Redis, so it is durable and shared: a pass
//! cut short (crash, restart, error) leaves it as it was and the next pass, on any server,
//! starts over.
//!
//! **A pass** ([`CeleryBroker::unqueue_pass`]): an O(1) `SCARD` when nothing is owed (the
//! job's idle check); else it takes the lease `ensinalab.unqueue.<queue>.lease`
//! (`SET .. NX PX`, renewed while the pass runs, released at its end), so one pass at a time
//! runs across servers: a removal in the middle of the list shifts the positions another walk
//! relies on. It reads the owed ids (`SSCAN`, [`SET_CHUNK`] at a time) and sorts them as above,
//! then walks every list of the queue (its four priority lists) from the tail to the head,
//! [`CHUNK`] messages per `LRANGE` with indexes counted from the tail. kombu's producers
//! `LPUSH` at the head and its workers `BRPOP` from the tail, so the walk looks first where a
//! worker takes its next message: a cancelled message about to be taken is removed in the
//! walk's first milliseconds, and one deep in a backlog has the whole backlog ahead of it. A
//! push leaves tail-counted indexes alone; a pop moves every message one place toward the
//! tail, so each read overlaps the previous one by [`OVERLAP`] messages, and a message the
//! walk still skips (more pops than that between two reads) is found by the next walk. A
//! message is matched by
//! its `headers.id`: a cheap scan for the `"id"` key's value, looked up in the owed ids, then a
//! JSON parse to confirm it (a cleanup's kwargs name its job's task id too).
//!
//! **A removal** is one command, and only of the exact bytes read:
//! - within [`NEAR_END`] of the tail, `LREM q -1 <bytes>`; within [`NEAR_END`] of the head,
//!   `LREM q 1 <bytes>`. LREM walks the list from one end to the message, comparing each
//!   element, so it is kept to short distances;
//! - farther in, where any walk to the message would hold Redis for milliseconds with a
//!   backlog of 100,000 (docs/benchmarks.md), one script finds the bytes among the
//!   [`SHIFT_WINDOW`] elements from where they were read toward the tail (workers' pops since
//!   the read move them that way), overwrites them (`LSET`, which reaches an index by skipping whole
//!   list nodes, not elements) with a copy of the head element, and `LPOP`s the head. Atomic,
//!   so nothing is lost or doubled; the one visible effect is that the newest message moves to
//!   the removed one's place, ahead of the older ones between them. Celery promises no order
//!   across workers, prefetch and priorities; a message is never delayed by it.
//!
//! Only a removal Redis confirms (1) is reported, by the pass that made it, so a message is
//! reported once however many passes run. Removed ids leave the owed set. An owed id not
//! found in a complete walk is marked missed (`ensinalab.unqueue.<queue>.missed`); missed in a
//! second complete walk, it is dropped (a worker took its message, or the task was never
//! queued). Two walks, not one: a message published after its cancel (a retry's), or skipped, is
//! found by the next walk.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ensinalab_domain::{CeleryState, TaskId};
use ensinalab_ports::{BrokerError, TakenOut};
use redis::Script;
use serde_json::Value;

use crate::broker::CeleryBroker;
use crate::message::queue_keys;
use crate::result::{META_PREFIX, decode_state};

/// Messages per `LRANGE` of the walk: each read stays far under a millisecond with 1 KB
/// messages (docs/benchmarks.md). More than [`OVERLAP`].
pub(crate) const CHUNK: usize = 128;
/// How far from an end a message is removed with `LREM` (which walks to it from that end).
pub(crate) const NEAR_END: usize = 1_000;
/// How far toward the tail a message may have moved between its read and its removal.
pub(crate) const SHIFT_WINDOW: usize = 64;
/// Elements each `LRANGE` of the walk reads again of the previous one: workers may pop that
/// many between two reads without the walk skipping one.
const OVERLAP: usize = 16;
/// Ids per `SSCAN`, `SREM` and `SADD` of the owed sets.
pub(crate) const SET_CHUNK: usize = 500;
/// How long a pass's lease lives unless renewed; a crashed pass's lease frees itself after it.
const LEASE: Duration = Duration::from_secs(30);
/// How often a running pass renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Removes the message `ARGV[2]` read at index `ARGV[1]` (negative: counted from the tail) of
/// list `KEYS[1]`, far from both ends: finds it in the next [`SHIFT_WINDOW`] elements toward
/// the tail (workers' pops move it that way), overwrites it with the head element and pops the
/// head. 1 when removed, 0 when not there.
static TAKE_OUT_DEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local at = tonumber(ARGV[1])
local stop = math.min(at + tonumber(ARGV[3]) - 1, -1)
local window = redis.call('LRANGE', KEYS[1], at, stop)
for k, message in ipairs(window) do
  if message == ARGV[2] then
    local index = at + k - 1
    if index > -redis.call('LLEN', KEYS[1]) then
      redis.call('LSET', KEYS[1], index, redis.call('LINDEX', KEYS[1], 0))
    end
    redis.call('LPOP', KEYS[1])
    return 1
  end
end
return 0
",
    )
});

/// Renews the lease `KEYS[1]` for `ARGV[2]` ms if `ARGV[1]` holds it. 1 when renewed.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Frees the lease `KEYS[1]` if `ARGV[1]` holds it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// A list index for Redis (lists are far shorter than `i64::MAX`).
fn as_index(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The set of task ids whose message the queue `queue` still owes a removal.
pub(crate) fn owed_key(queue: &str) -> String {
    format!("ensinalab.unqueue.{queue}")
}

/// The Redis keys of one queue's removals.
struct Keys {
    owed: String,
    missed: String,
    lease: String,
    lists: [String; 4],
}

impl Keys {
    fn of(queue: &str) -> Self {
        let owed = owed_key(queue);
        Self {
            missed: format!("{owed}.missed"),
            lease: format!("{owed}.lease"),
            owed,
            lists: queue_keys(queue),
        }
    }
}

/// One pass's state: the connection, the lease it holds, what it found.
struct Pass<'a> {
    broker: &'a CeleryBroker,
    conn: deadpool_redis::Connection,
    keys: &'a Keys,
    me: String,
    renewed: Instant,
    owed: HashSet<String>,
    removed_ids: HashSet<String>,
}

impl CeleryBroker {
    /// One pass: see the module documentation. `more` is true when ids are still owed after a
    /// complete walk (some missed once, or owed since the pass began).
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached; what is owed stays owed, and the messages
    /// removed before the failure are reported by no one.
    pub(crate) async fn unqueue_pass(&self) -> Result<TakenOut, BrokerError> {
        let keys = Keys::of(&self.config().queue);
        let owed_key = keys.owed.clone();
        let owed: usize = self
            .on_shared(|mut conn| async move {
                redis::cmd("SCARD")
                    .arg(owed_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        if owed == 0 {
            return Ok(TakenOut::default());
        }
        let limit = self.config().command_timeout;
        let mut conn = self.pooled().await?;
        let me = uuid::Uuid::new_v4().to_string();
        let leased: Option<String> = self
            .bounded(
                limit,
                redis::cmd("SET")
                    .arg(&keys.lease)
                    .arg(&me)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(LEASE))
                    .query_async(&mut conn),
            )
            .await?;
        if leased.is_none() {
            // Another server's pass runs; it reports what it removes.
            return Ok(TakenOut::default());
        }
        let mut pass = Pass {
            broker: self,
            conn,
            keys: &keys,
            me,
            renewed: Instant::now(),
            owed: HashSet::new(),
            removed_ids: HashSet::new(),
        };
        let outcome = pass.run().await;
        let released = self
            .bounded(
                limit,
                RELEASE
                    .key(&keys.lease)
                    .arg(&pass.me)
                    .invoke_async::<i64>(&mut pass.conn),
            )
            .await;
        if let Err(err) = released {
            tracing::warn!(error = %err, "unqueue lease not released; it expires by itself");
        }
        outcome
    }
}

impl Pass<'_> {
    async fn run(&mut self) -> Result<TakenOut, BrokerError> {
        let owed = self.members(&self.keys.owed.clone()).await?;
        self.owed = self.queued_maybe(owed).await?;
        let missed = self.members(&self.keys.missed.clone()).await?;
        if self.owed.is_empty() {
            let left: usize = self.query(redis::cmd("SCARD").arg(&self.keys.owed)).await?;
            return Ok(TakenOut {
                removed: Vec::new(),
                more: left > 0,
            });
        }
        let mut complete = true;
        for list in self.keys.lists.clone() {
            if !self.walk(&list).await? {
                complete = false;
                break;
            }
        }
        let removed: Vec<String> = self.removed_ids.iter().cloned().collect();
        self.forget(&removed).await?;
        if complete {
            let (gone, once): (Vec<String>, Vec<String>) = self
                .owed
                .iter()
                .filter(|id| !self.removed_ids.contains(*id))
                .cloned()
                .partition(|id| missed.contains(id));
            self.forget(&gone).await?;
            self.set_command("SADD", &self.keys.missed.clone(), &once)
                .await?;
        }
        let left: usize = self.query(redis::cmd("SCARD").arg(&self.keys.owed)).await?;
        Ok(TakenOut {
            removed: removed
                .iter()
                .filter_map(|id| TaskId::parse(id).ok())
                .collect(),
            more: complete && left > 0,
        })
    }

    /// The ids of `owed` whose message may still be queued: their result key holds REVOKED,
    /// or nothing. The others leave the owed sets.
    async fn queued_maybe(
        &mut self,
        owed: HashSet<String>,
    ) -> Result<HashSet<String>, BrokerError> {
        let owed: Vec<String> = owed.into_iter().collect();
        let mut keep = HashSet::with_capacity(owed.len());
        let mut settled = Vec::new();
        for batch in owed.chunks(SET_CHUNK) {
            let keys: Vec<String> = batch
                .iter()
                .map(|id| [META_PREFIX, id.as_str()].concat())
                .collect();
            let values: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(keys)).await?;
            for (id, value) in batch.iter().zip(values) {
                if matches!(
                    decode_state(value.as_deref()),
                    CeleryState::Revoked | CeleryState::Pending
                ) {
                    keep.insert(id.clone());
                } else {
                    settled.push(id.clone());
                }
            }
        }
        self.forget(&settled).await?;
        Ok(keep)
    }

    /// Walks `list` from the tail, where workers take their next message, to the head,
    /// removing owed messages. `false` when the lease was lost.
    async fn walk(&mut self, list: &str) -> Result<bool, BrokerError> {
        let len: usize = self.query(redis::cmd("LLEN").arg(list)).await?;
        // How many elements lie between the chunk's tail end and the list's tail.
        let mut behind = 0_usize;
        loop {
            let chunk: Vec<Vec<u8>> = self
                .query(
                    redis::cmd("LRANGE")
                        .arg(list)
                        .arg(-as_index(behind + CHUNK))
                        .arg(-as_index(behind + 1)),
                )
                .await?;
            // An LREM shifts every element head-ward of the one it removes one place toward
            // the tail; the deep removal moves none of them.
            let mut shifted = 0;
            for (from_tail, message) in chunk.iter().rev().enumerate() {
                let Some(id) = owed_message(message, &self.owed) else {
                    continue;
                };
                let behind_it = behind + from_tail - shifted;
                let Some(by_lrem) = self.take_out(list, behind_it, len, message).await? else {
                    continue;
                };
                shifted += usize::from(by_lrem);
                self.removed_ids.insert(id);
            }
            if chunk.len() < CHUNK {
                break;
            }
            // The overlap re-reads what workers' pops moved toward the tail since the read.
            behind += CHUNK - OVERLAP - shifted;
            if !self.renew_if_due().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Removes `message`, read with `behind` elements between it and the tail of `list` (of
    /// `len` elements when the walk began, which bounds its distance from the head). `None`
    /// when Redis did not remove it; else whether an `LREM` did.
    async fn take_out(
        &mut self,
        list: &str,
        behind: usize,
        len: usize,
        message: &[u8],
    ) -> Result<Option<bool>, BrokerError> {
        let ahead = len.saturating_sub(behind + 1);
        let by_lrem = behind < NEAR_END || ahead < NEAR_END;
        let removed: i64 = if by_lrem {
            let count: i64 = if behind < NEAR_END { -1 } else { 1 };
            self.query(redis::cmd("LREM").arg(list).arg(count).arg(message))
                .await?
        } else {
            let limit = self.broker.config().command_timeout;
            self.broker
                .bounded(
                    limit,
                    TAKE_OUT_DEEP
                        .key(list)
                        .arg(-as_index(behind + 1))
                        .arg(message)
                        .arg(SHIFT_WINDOW)
                        .invoke_async(&mut self.conn),
                )
                .await?
        };
        Ok((removed == 1).then_some(by_lrem))
    }

    /// Renews the lease when due; `false` when it was lost (another pass may run now).
    async fn renew_if_due(&mut self) -> Result<bool, BrokerError> {
        if self.renewed.elapsed() < RENEW_EVERY {
            return Ok(true);
        }
        let limit = self.broker.config().command_timeout;
        let renewed: i64 = self
            .broker
            .bounded(
                limit,
                RENEW
                    .key(&self.keys.lease)
                    .arg(&self.me)
                    .arg(millis(LEASE))
                    .invoke_async(&mut self.conn),
            )
            .await?;
        self.renewed = Instant::now();
        if renewed != 1 {
            tracing::warn!("unqueue lease lost mid-pass; the next pass walks again");
        }
        Ok(renewed == 1)
    }

    /// Every member of `set`, [`SET_CHUNK`] per `SSCAN`.
    async fn members(&mut self, set: &str) -> Result<HashSet<String>, BrokerError> {
        let mut members = HashSet::new();
        let mut cursor = "0".to_owned();
        loop {
            let (next, batch): (String, Vec<String>) = self
                .query(
                    redis::cmd("SSCAN")
                        .arg(set)
                        .arg(&cursor)
                        .arg("COUNT")
                        .arg(SET_CHUNK),
                )
                .await?;
            members.extend(batch);
            if next == "0" {
                return Ok(members);
            }
            cursor = next;
        }
    }

    /// Drops `ids` from the owed and the missed sets.
    async fn forget(&mut self, ids: &[String]) -> Result<(), BrokerError> {
        self.set_command("SREM", &self.keys.owed.clone(), ids)
            .await?;
        self.set_command("SREM", &self.keys.missed.clone(), ids)
            .await
    }

    /// `SADD`/`SREM` of `ids` to `set`, [`SET_CHUNK`] ids per command.
    async fn set_command(
        &mut self,
        name: &str,
        set: &str,
        ids: &[String],
    ) -> Result<(), BrokerError> {
        for batch in ids.chunks(SET_CHUNK) {
            let _: i64 = self.query(redis::cmd(name).arg(set).arg(batch)).await?;
        }
        Ok(())
    }

    async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &mut redis::Cmd,
    ) -> Result<T, BrokerError> {
        let limit = self.broker.config().command_timeout;
        self.broker
            .bounded(limit, cmd.query_async(&mut self.conn))
            .await
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The task id of `message` when it is owed: its `headers.id`. Scans for the values of `"id"`
/// keys first (one per message, as a rule) and parses the JSON only for an owed one.
fn owed_message(message: &[u8], owed: &HashSet<String>) -> Option<String> {
    let candidate = id_values(message).find(|id| owed.contains(*id))?;
    let parsed: Value = serde_json::from_slice(message).ok()?;
    (parsed["headers"]["id"].as_str() == Some(candidate)).then(|| candidate.to_owned())
}

/// The string values of every `"id"` key in `message` (JSON with or without spaces after the
/// colon, as serde_json and Python's `json.dumps` write it).
fn id_values(message: &[u8]) -> impl Iterator<Item = &str> {
    const KEY: &[u8] = b"\"id\"";
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(found) = find(&message[from..], KEY) {
            let mut at = from + found + KEY.len();
            from = at;
            at = skip_spaces(message, at);
            if message.get(at) != Some(&b':') {
                continue;
            }
            at = skip_spaces(message, at + 1);
            if message.get(at) != Some(&b'"') {
                continue;
            }
            let rest = &message[at + 1..];
            let Some(end) = rest.iter().position(|b| *b == b'"') else {
                continue;
            };
            if let Ok(value) = std::str::from_utf8(&rest[..end]) {
                from = at + 1 + end;
                return Some(value);
            }
        }
        None
    })
}

fn skip_spaces(message: &[u8], mut at: usize) -> usize {
    while message.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1c6e7fe4-d636-474b-a4cd-c016667198bf";
    const OTHER: &str = "9b2d4c1e-0f3a-4e5b-8c7d-6a5b4c3d2e1f";

    fn owed(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn a_message_is_matched_by_its_headers_id_written_with_or_without_spaces() {
        let compact = format!(r#"{{"body":"W10=","headers":{{"id":"{ID}","root_id":"{ID}"}}}}"#);
        let spaced =
            format!(r#"{{"body": "W10=", "headers": {{"root_id": "{ID}", "id" : "{ID}"}}}}"#);
        for message in [compact, spaced] {
            assert_eq!(
                owed_message(message.as_bytes(), &owed(&[ID])).as_deref(),
                Some(ID),
                "{message}"
            );
            assert_eq!(owed_message(message.as_bytes(), &owed(&[OTHER])), None);
        }
    }

    #[test]
    fn a_message_that_only_names_an_owed_id_elsewhere_is_not_matched() {
        // A cleanup of the cancelled job: its id is in the kwargs, its own id is another.
        let cleanup = format!(
            r#"{{"headers":{{"id":"{OTHER}","kwargsrepr":"{{'task_id': '{ID}'}}","nested":{{"id":"{ID}"}}}}}}"#
        );
        assert_eq!(owed_message(cleanup.as_bytes(), &owed(&[ID])), None);
        assert_eq!(
            owed_message(cleanup.as_bytes(), &owed(&[OTHER])).as_deref(),
            Some(OTHER)
        );
    }

    #[test]
    fn a_message_that_is_not_json_is_never_matched() {
        let broken = format!(r#"{{"headers":{{"id":"{ID}""#);
        assert_eq!(owed_message(broken.as_bytes(), &owed(&[ID])), None);
        assert_eq!(id_values(b"\"id\": 3, \"id\"").count(), 0);
    }
}
