//! Reading Celery's Redis result backend: `celery-task-meta-<id>` values become
//! [`TaskSnapshot`]s. Never fails: an entry it cannot read is reported as PENDING with an
//! `error`, so one bad value never hides the rest of a batch.

use std::borrow::Cow;
use std::io::Read as _;

use ensinalab_domain::{CeleryState, TaskId, progress_fraction};
use ensinalab_ports::TaskSnapshot;
use serde::Deserialize;
use serde_json::Value;

/// Prefix of the backend key (and of its change channel) for one task.
pub(crate) const META_PREFIX: &str = "celery-task-meta-";

/// What `result_compression` puts before the compressed value (Celery's
/// `COMPRESSED_PAYLOAD_MAGIC`).
const COMPRESSED_MARK: &[u8] = b"\x00celery-compressed\x00";

/// The backend key of a task.
pub(crate) fn meta_key(id: &TaskId) -> String {
    [META_PREFIX, id.as_str()].concat()
}

/// The value a worker writes when it discards a revoked message (`TaskRevokedError`,
/// `["revoked"]`), spaced as Celery's `json.dumps` writes it; `date_done` is ISO-8601 UTC. A
/// cancel writes it as its claim on a task (docs/celery-contract.md, "Cancelling").
pub(crate) fn revoked_value(id: &TaskId, date_done: &str) -> String {
    format!(
        r#"{{"status": "REVOKED", "result": {{"exc_type": "TaskRevokedError", "exc_message": ["revoked"], "exc_module": "celery.exceptions"}}, "traceback": null, "children": [], "date_done": "{date_done}", "task_id": "{id}"}}"#
    )
}

/// Decodes one backend value (`None` = no key = PENDING).
pub(crate) fn decode(task_id: TaskId, raw: Option<&[u8]>) -> TaskSnapshot {
    let Some(raw) = raw else {
        return TaskSnapshot::pending(task_id);
    };
    match parse(raw) {
        Ok((state, meta)) => from_meta(task_id, state, meta),
        Err(why) => TaskSnapshot {
            error: Some(format!("unreadable result backend value: {why}")),
            ..TaskSnapshot::pending(task_id)
        },
    }
}

/// The fields of a backend value that are read. The rest (`children`, `date_done`, `args`,
/// `kwargs`, ...) is skipped without being built: the active list decodes one value per row.
#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    status: Value,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    traceback: Value,
}

/// Only the state of one backend value (`None` = no key = PENDING), as [`decode`] reads it, an
/// unreadable value included. The status is borrowed and the rest skipped: nothing of the
/// task's meta is built, which is all the active list needs.
pub(crate) fn decode_state(raw: Option<&[u8]>) -> CeleryState {
    #[derive(Deserialize)]
    struct Status<'a> {
        #[serde(borrow)]
        status: Cow<'a, str>,
    }
    let Some(json) = raw.and_then(|raw| uncompressed(raw).ok()) else {
        return CeleryState::Pending;
    };
    serde_json::from_slice::<Status<'_>>(&json)
        .map_or(CeleryState::Pending, |s| CeleryState::parse(&s.status))
}

fn parse(raw: &[u8]) -> Result<(CeleryState, Meta), String> {
    let json = uncompressed(raw)?;
    let meta: Meta = serde_json::from_slice(&json).map_err(|e| format!("not JSON: {e}"))?;
    let state = CeleryState::parse(meta.status.as_str().ok_or("no status")?);
    Ok((state, meta))
}

fn uncompressed(raw: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    Ok(match raw.strip_prefix(COMPRESSED_MARK) {
        Some(rest) => Cow::Owned(decompress(rest)?),
        None => Cow::Borrowed(raw),
    })
}

/// `<content-type>\x00<data>`. Kombu's `gzip`/`zlib` compression is zlib data under
/// `application/x-gzip`; real gzip framing is accepted too. Other codecs (bz2, lzma, brotli,
/// zstd) are reported, not decoded.
fn decompress(rest: &[u8]) -> Result<Vec<u8>, String> {
    let split = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or("compressed value without a content type")?;
    let (content_type, data) = (&rest[..split], &rest[split + 1..]);
    let content_type = String::from_utf8_lossy(content_type);
    let mut out = Vec::new();
    match content_type.as_ref() {
        "application/x-gzip" | "application/gzip" | "application/x-zlib" | "zlib" | "gzip" => {
            let read = if data.starts_with(&[0x1f, 0x8b]) {
                flate2::read::GzDecoder::new(data).read_to_end(&mut out)
            } else {
                flate2::read::ZlibDecoder::new(data).read_to_end(&mut out)
            };
            read.map_err(|e| format!("bad {content_type} data: {e}"))?;
            Ok(out)
        }
        other => Err(format!("unsupported compression {other:?}")),
    }
}

fn from_meta(task_id: TaskId, state: CeleryState, meta: Meta) -> TaskSnapshot {
    let result = Some(&meta.result).filter(|v| !v.is_null());
    let exception = result.filter(|r| r.get("exc_type").is_some());
    let traceback = meta.traceback.as_str().map(str::to_owned);
    let progress = result.and_then(|r| {
        let current = r.get("current")?.as_f64()?;
        let total = r.get("total")?.as_f64()?;
        Some(progress_fraction(current, total))
    });
    let error = match state {
        CeleryState::Failure | CeleryState::Retry | CeleryState::Rejected => {
            Some(match exception {
                Some(exc) => exception_text(exc),
                None => result.map_or_else(|| state.as_str().to_owned(), value_text),
            })
        }
        CeleryState::Revoked => Some(
            exception
                .and_then(|exc| exc_message(exc).first().cloned())
                .unwrap_or_else(|| "revoked".to_owned()),
        ),
        _ => None,
    };
    let is_exception = exception.is_some();
    TaskSnapshot {
        task_id,
        info: Some(meta.result).filter(|r| !r.is_null() && !is_exception),
        progress,
        error,
        traceback,
        state,
    }
}

/// `"ValueError: boom"`, like the last line of a Python traceback.
fn exception_text(exc: &Value) -> String {
    let kind = exc["exc_type"].as_str().unwrap_or("Exception");
    let message = exc_message(exc).join(", ");
    if message.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {message}")
    }
}

/// The exception's args (`exc_message` is a list; older writers stored a string).
fn exc_message(exc: &Value) -> Vec<String> {
    match exc.get("exc_message") {
        Some(Value::Array(args)) => args.iter().map(value_text).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![value_text(other)],
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use serde_json::json;

    #[test]
    fn a_cancels_revoked_value_is_the_one_a_worker_writes_when_it_discards_a_message() {
        let (id, stored) = sample("result-revoked-queued-discarded.json");
        let ours = revoked_value(&id, "2026-11-28T14:29:30.787140+00:00");
        let mut worker: Value = serde_json::from_slice(&stored).unwrap();
        for extended in ["name", "args", "kwargs", "worker", "retries", "queue"] {
            worker.as_object_mut().unwrap().remove(extended);
        }
        assert_eq!(serde_json::from_str::<Value>(&ours).unwrap(), worker);
        let read = decode(id, Some(ours.as_bytes()));
        assert_eq!(read.state, CeleryState::Revoked);
        assert_eq!(read.error.as_deref(), Some("revoked"));
    }

    /// The Redis value of a captured sample, as the worker stored it.
    fn sample(name: &str) -> (TaskId, Vec<u8>) {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let id = TaskId::parse(file["value"]["task_id"].as_str().unwrap()).unwrap();
        (id, serde_json::to_vec(&file["value"]).unwrap())
    }

    fn decode_sample(name: &str) -> TaskSnapshot {
        let (id, raw) = sample(name);
        decode(id, Some(&raw))
    }

    #[test]
    fn an_absent_key_is_pending() {
        let id = TaskId::parse("dd6c6817-f134-4062-a0d2-00511a4bbfa6").unwrap();
        assert_eq!(decode(id.clone(), None), TaskSnapshot::pending(id));
    }

    #[test]
    fn captured_states_decode_to_snapshots() {
        let s = decode_sample("result-started.json");
        assert_eq!(s.state, CeleryState::Started);
        assert_eq!(s.info, Some(json!({"pid": 11362, "hostname": "w1@lab"})));
        assert_eq!((s.error, s.progress), (None, None));

        let s = decode_sample("result-progress.json");
        assert_eq!(s.state, CeleryState::Custom("PROGRESS".into()));
        assert_eq!(s.progress, Some(0.0));
        assert_eq!(s.info.unwrap()["total"], 30);

        let s = decode_sample("result-success.json");
        assert_eq!(s.state, CeleryState::Success);
        assert_eq!(s.info, Some(json!({"x": 40, "y": 2, "sum": 42})));
        assert_eq!(s.error, None);
    }

    #[test]
    fn failures_read_as_type_and_message_with_their_traceback() {
        let s = decode_sample("result-failure-valueerror.json");
        assert_eq!(s.state, CeleryState::Failure);
        assert_eq!(s.error.as_deref(), Some("ValueError: boom"));
        assert!(s.traceback.unwrap().ends_with("ValueError: boom\n"));
        assert_eq!(s.info, None);

        let s = decode_sample("result-failure-workerlosterror.json");
        assert_eq!(
            s.error.as_deref(),
            Some("WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 5.")
        );
        let s = decode_sample("result-failure-notregistered.json");
        assert_eq!(s.error.as_deref(), Some("NotRegistered: labapp.nope"));
        assert_eq!(s.traceback, None);
    }

    #[test]
    fn revoked_states_carry_their_reason() {
        for (name, reason) in [
            ("result-revoked-terminated.json", "terminated"),
            ("result-revoked-queued-first-write.json", "revoked"),
            ("result-revoked-queued-discarded.json", "revoked"),
            ("result-revoked-expired.json", "expired"),
        ] {
            let s = decode_sample(name);
            assert_eq!(s.state, CeleryState::Revoked, "{name}");
            assert_eq!(s.error.as_deref(), Some(reason), "{name}");
            assert_eq!(s.info, None, "{name}");
        }
    }

    #[test]
    fn retry_reads_like_a_failure() {
        let id = TaskId::parse("dd6c6817-f134-4062-a0d2-00511a4bbfa6").unwrap();
        let raw = json!({"status": "RETRY", "result": {"exc_type": "TimeoutError",
            "exc_message": [], "exc_module": "builtins"}, "traceback": "Traceback ...",
            "children": [], "date_done": null, "task_id": id.as_str()});
        let s = decode(id, Some(raw.to_string().as_bytes()));
        assert_eq!(s.state, CeleryState::Retry);
        assert_eq!(s.error.as_deref(), Some("TimeoutError"));
        assert_eq!(s.traceback.as_deref(), Some("Traceback ..."));
    }

    #[test]
    fn compressed_values_are_decoded_when_zlib_or_gzip() {
        let (id, raw) = sample("result-progress.json");
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&raw).unwrap();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&raw).unwrap();
        for data in [zlib.finish().unwrap(), gzip.finish().unwrap()] {
            let mut value = b"\x00celery-compressed\x00application/x-gzip\x00".to_vec();
            value.extend_from_slice(&data);
            let s = decode(id.clone(), Some(&value));
            assert_eq!(s.state, CeleryState::Custom("PROGRESS".into()));
            assert_eq!(s.progress, Some(0.0));
        }
    }

    #[test]
    fn unreadable_values_are_pending_with_an_error() {
        let id = TaskId::parse("dd6c6817-f134-4062-a0d2-00511a4bbfa6").unwrap();
        for raw in [
            b"\x00celery-compressed\x00application/x-bz2\x00BZh9".as_slice(),
            b"\x00celery-compressed\x00application/x-gzip\x00not zlib",
            b"{\"result\": 1}",
            b"not json",
        ] {
            let s = decode(id.clone(), Some(raw));
            assert_eq!(s.state, CeleryState::Pending);
            assert!(s.error.is_some(), "{raw:?}");
        }
    }

    #[test]
    fn the_state_alone_reads_as_the_whole_decode_does() {
        let id = TaskId::parse("dd6c6817-f134-4062-a0d2-00511a4bbfa6").unwrap();
        let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        let mut values: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("result-"))
            .map(|name| sample(&name).1)
            .collect();
        assert!(values.len() >= 8, "the captured samples are missing");
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&values[0]).unwrap();
        let mut compressed = b"\x00celery-compressed\x00application/x-gzip\x00".to_vec();
        compressed.extend_from_slice(&zlib.finish().unwrap());
        values.push(compressed);
        for odd in [
            json!({"status": "A\u{c9}\"B", "result": null}).to_string(),
            json!({"status": 3}).to_string(),
            json!({"result": 1}).to_string(),
            "not json".to_owned(),
        ] {
            values.push(odd.into_bytes());
        }
        values.push(b"\x00celery-compressed\x00application/x-bz2\x00BZh9".to_vec());
        for raw in &values {
            assert_eq!(
                decode_state(Some(raw)),
                decode(id.clone(), Some(raw)).state,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(decode_state(None), decode(id, None).state);
    }

    #[test]
    fn progress_is_clamped() {
        let id = TaskId::parse("dd6c6817-f134-4062-a0d2-00511a4bbfa6").unwrap();
        let raw = json!({"status": "PROGRESS", "result": {"current": 45, "total": 30}});
        let s = decode(id, Some(raw.to_string().as_bytes()));
        assert_eq!(s.progress, Some(1.0));
    }
}
