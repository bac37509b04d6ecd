//! Kombu/Celery protocol-2 envelopes: the task message LPUSHed onto a queue list and the
//! control message PUBLISHed on the pidbox channel, and the check every outgoing task message
//! passes before it is sent (a malformed one can crash every worker that pops it).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ensinalab_domain::TaskId;
use ensinalab_ports::{TaskKind, TaskRequest};
use serde_json::{Map, Value, json};

/// Kombu's separator between a queue name and its priority step, and inside binding members.
pub(crate) const SEP: &str = "\x06\x16";

/// The four Redis lists of a queue, one per kombu priority step (0 = highest on Redis).
pub(crate) fn queue_keys(queue: &str) -> [String; 4] {
    [
        queue.to_owned(),
        format!("{queue}{SEP}3"),
        format!("{queue}{SEP}6"),
        format!("{queue}{SEP}9"),
    ]
}

/// The kwargs of a task, per `docs/celery-contract.md`.
pub(crate) fn kwargs(kind: &TaskKind) -> Map<String, Value> {
    let value = match kind {
        TaskKind::GenerateOptions {
            briefing_id,
            title,
            description,
            duration_minutes,
        } => json!({
            "briefing_id": briefing_id.get(),
            "title": title,
            "description": description,
            "duration_minutes": duration_minutes,
        }),
        TaskKind::GenerateVideo {
            video_id,
            briefing_id,
            option_id,
            title,
            generator_type,
            duration_minutes,
        } => json!({
            "video_id": video_id.get(),
            "briefing_id": briefing_id.get(),
            "option_id": option_id.get(),
            "title": title,
            "generator_type": generator_type,
            "duration_minutes": duration_minutes,
        }),
        TaskKind::CleanupPartialFiles {
            resource: (kind, id),
            task_id,
            reason,
        } => json!({
            "resource_type": kind.as_str(),
            "resource_id": id,
            "task_id": task_id.as_str(),
            "reason": reason.as_str(),
        }),
        TaskKind::SweepOrphans {
            in_flight,
            modified_before,
        } => json!({
            "in_flight": in_flight.iter().map(TaskId::as_str).collect::<Vec<_>>(),
            "modified_before": unix_seconds(*modified_before),
        }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Epoch seconds, as Python's `time.time()` gives them.
fn unix_seconds(t: time::OffsetDateTime) -> f64 {
    // i64 seconds to f64 is exact until the year 285 million.
    #[allow(clippy::cast_precision_loss)]
    let secs = t.unix_timestamp() as f64;
    secs + f64::from(t.nanosecond()) / 1e9
}

/// The envelope Celery's own producer sends (`tests/fixtures/task-message-in-list.json`), for
/// queue `queue`, priority 0. `delivery_tag` must be unique: it is the field name in the
/// worker's `unacked`.
pub(crate) fn task_envelope(
    task: &TaskRequest,
    queue: &str,
    origin: &str,
    delivery_tag: &str,
) -> Value {
    let id = task.id.as_str();
    let kwargs = Value::Object(kwargs(&task.kind));
    let body = json!([
        [],
        kwargs,
        {"callbacks": null, "errbacks": null, "chain": null, "chord": null}
    ]);
    json!({
        "body": B64.encode(body.to_string()),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task.kind.name(),
            "id": id,
            "shadow": null,
            "eta": null,
            "expires": null,
            "group": null,
            "group_index": null,
            "retries": 0,
            "timelimit": [null, null],
            "root_id": id,
            "parent_id": null,
            "argsrepr": "()",
            "kwargsrepr": py_repr(&kwargs),
            "origin": origin,
            "ignore_result": !task.kind.generates(),
            "replaced_task_nesting": 0,
            "stamped_headers": null,
            "stamps": {},
        },
        "properties": {
            "correlation_id": id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": delivery_tag,
        },
    })
}

/// Why a task message would be refused or, worse, poison a worker.
pub(crate) fn validate_task_message(env: &Value) -> Result<(), String> {
    let str_at = |path: &[&str]| -> Option<&str> {
        path.iter()
            .try_fold(env, |v, k| v.get(*k))
            .and_then(Value::as_str)
    };
    let non_empty = |path: &[&str]| -> Result<&str, String> {
        match str_at(path) {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(format!("{} must be a non-empty string", path.join("."))),
        }
    };
    non_empty(&["headers", "task"])?;
    let id = non_empty(&["headers", "id"])?;
    if ensinalab_domain::TaskId::parse(id).is_err() {
        return Err(format!("headers.id {id:?} is not a UUID"));
    }
    non_empty(&["properties", "delivery_tag"])?;
    if str_at(&["properties", "delivery_info", "exchange"]).is_none() {
        return Err("properties.delivery_info.exchange must be a string".into());
    }
    non_empty(&["properties", "delivery_info", "routing_key"])?;
    if str_at(&["content-type"]) != Some("application/json") {
        return Err("content-type must be application/json".into());
    }
    let body = env
        .get("body")
        .and_then(Value::as_str)
        .ok_or("body must be a string")?;
    let text = match str_at(&["properties", "body_encoding"]) {
        Some("base64") => {
            let raw = B64
                .decode(body)
                .map_err(|e| format!("body is not base64: {e}"))?;
            String::from_utf8(raw).map_err(|_| "body is not UTF-8".to_owned())?
        }
        None => body.to_owned(),
        Some(other) => return Err(format!("unsupported body_encoding {other:?}")),
    };
    let decoded: Value =
        serde_json::from_str(&text).map_err(|e| format!("body is not JSON: {e}"))?;
    match decoded.as_array().map(Vec::as_slice) {
        Some(
            [
                Value::Array(_),
                Value::Object(_),
                Value::Object(_) | Value::Null,
            ],
        ) => Ok(()),
        _ => Err("body must be [args, kwargs, embed]".into()),
    }
}

/// A pidbox control request (`tests/fixtures/revoke-broadcast-message.json`). `reply` =
/// `(ticket, oid)` when replies are wanted. `expires_at` is epoch seconds.
pub(crate) fn control_envelope(
    method: &str,
    arguments: Value,
    reply: Option<(&str, &str)>,
    expires_at: f64,
    delivery_tag: &str,
) -> Value {
    let body = control_body(method, arguments, reply);
    json!({
        "body": B64.encode(body.to_string()),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"clock": 1, "expires": expires_at},
        "properties": {
            "delivery_mode": 2,
            "delivery_info": {"exchange": "celery.pidbox", "routing_key": ""},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": delivery_tag,
        },
    })
}

/// The body of a pidbox control request, whatever the transport: the method, its arguments,
/// and where to reply when `reply` = `(ticket, oid)`.
pub(crate) fn control_body(method: &str, arguments: Value, reply: Option<(&str, &str)>) -> Value {
    let mut body = json!({
        "method": method,
        "arguments": arguments,
        "destination": null,
        "pattern": null,
        "matcher": null,
    });
    if let (Some((ticket, oid)), Some(map)) = (reply, body.as_object_mut()) {
        map.insert("ticket".into(), json!(ticket));
        map.insert(
            "reply_to".into(),
            json!({"exchange": "reply.celery.pidbox", "routing_key": oid}),
        );
    }
    body
}

/// The decoded body of a kombu envelope (base64 or plain), as JSON.
pub(crate) fn envelope_body(env: &Value) -> Option<Value> {
    let body = env.get("body")?.as_str()?;
    let encoding = env
        .get("properties")
        .and_then(|p| p.get("body_encoding"))
        .and_then(Value::as_str);
    match encoding {
        Some("base64") => serde_json::from_slice(&B64.decode(body).ok()?).ok(),
        _ => serde_json::from_str(body).ok(),
    }
}

/// A Python-`repr`-like rendering for `kwargsrepr`: display only (logs, Flower, `inspect`).
pub(crate) fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ensinalab_domain::{BriefingId, CancelReason, OptionId, ResourceKind, VideoId};
    use ensinalab_ports::CleanupReason;

    fn video_task() -> TaskRequest {
        TaskRequest {
            id: TaskId::parse("dd6c6817-f134-4062-a0d2-00511a4bbfa6").unwrap(),
            kind: TaskKind::GenerateVideo {
                video_id: VideoId(7),
                briefing_id: BriefingId(3),
                option_id: OptionId(11),
                title: "Fotossíntese 'básica'".into(),
                generator_type: "simple".into(),
                duration_minutes: 5,
            },
        }
    }

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn a_built_task_message_passes_validation_and_carries_the_contract_kwargs() {
        let env = task_envelope(&video_task(), "celery", "test@host", "tag-1");
        validate_task_message(&env).unwrap();
        let body = envelope_body(&env).unwrap();
        assert_eq!(body[0], json!([]));
        assert_eq!(
            body[1],
            json!({"video_id": 7, "briefing_id": 3, "option_id": 11,
                   "title": "Fotossíntese 'básica'", "generator_type": "simple",
                   "duration_minutes": 5})
        );
        assert_eq!(env["headers"]["task"], "ensinalab.generate_video");
        assert_eq!(env["headers"]["root_id"], env["headers"]["id"]);
        assert_eq!(env["properties"]["delivery_info"]["routing_key"], "celery");
        assert!(
            env["headers"]["kwargsrepr"]
                .as_str()
                .unwrap()
                .contains(r"'title': 'Fotossíntese \'básica\''")
        );
    }

    #[test]
    fn cleanup_messages_carry_their_kwargs_and_ask_for_no_result() {
        let task = TaskId::parse("0b5a8c1e-6f1d-4c2a-9e3b-7d4f5a6b7c8d").unwrap();
        let cleanup = TaskRequest {
            id: TaskId::parse("dd6c6817-f134-4062-a0d2-00511a4bbfa6").unwrap(),
            kind: TaskKind::CleanupPartialFiles {
                resource: (ResourceKind::Video, 7),
                task_id: task.clone(),
                reason: CleanupReason::Cancelled(CancelReason::UserAll),
            },
        };
        let env = task_envelope(&cleanup, "celery", "test@host", "tag-1");
        validate_task_message(&env).unwrap();
        assert_eq!(env["headers"]["task"], "ensinalab.cleanup_partial_files");
        assert_eq!(env["headers"]["ignore_result"], true);
        assert_eq!(
            envelope_body(&env).unwrap()[1],
            json!({"resource_type": "video", "resource_id": 7,
                   "task_id": task.as_str(), "reason": "user_all"})
        );

        let sweep = TaskRequest {
            id: TaskId::parse("dd6c6817-f134-4062-a0d2-00511a4bbfa7").unwrap(),
            kind: TaskKind::SweepOrphans {
                in_flight: vec![task.clone()],
                modified_before: time::OffsetDateTime::from_unix_timestamp(1_764_600_000).unwrap()
                    + time::Duration::milliseconds(250),
            },
        };
        let env = task_envelope(&sweep, "celery", "test@host", "tag-2");
        validate_task_message(&env).unwrap();
        assert_eq!(env["headers"]["task"], "ensinalab.sweep_orphans");
        assert_eq!(
            envelope_body(&env).unwrap()[1],
            json!({"in_flight": [task.as_str()], "modified_before": 1_764_600_000.25})
        );
        assert_eq!(
            task_envelope(&video_task(), "celery", "h", "t")["headers"]["ignore_result"],
            false
        );
    }

    #[test]
    fn messages_captured_from_celery_pass_validation() {
        validate_task_message(&fixture("task-message-in-list.json")).unwrap();
        validate_task_message(&fixture("task-message-minimal-accepted.json")).unwrap();
    }

    #[test]
    fn every_mandatory_field_is_checked_before_sending() {
        let good = task_envelope(&video_task(), "celery", "test@host", "tag-1");
        type Breaker = (&'static str, fn(&mut Value));
        let breakers: [Breaker; 9] = [
            ("no task", |e| e["headers"]["task"] = Value::Null),
            ("no id", |e| e["headers"]["id"] = Value::Null),
            ("bad id", |e| e["headers"]["id"] = json!("*")),
            ("no delivery_tag", |e| {
                e["properties"]["delivery_tag"] = Value::Null
            }),
            ("no delivery_info", |e| {
                e["properties"]["delivery_info"] = json!({})
            }),
            ("no content-type", |e| e["content-type"] = Value::Null),
            ("pickle", |e| {
                e["content-type"] = json!("application/x-python-serialize")
            }),
            ("two-item body", |e| {
                e["body"] = json!(B64.encode(r#"[[], {}]"#))
            }),
            ("body not base64", |e| e["body"] = json!("%%%")),
        ];
        for (what, breaker) in breakers {
            let mut env = good.clone();
            breaker(&mut env);
            assert!(validate_task_message(&env).is_err(), "{what} accepted");
        }
    }

    #[test]
    fn queue_keys_follow_kombus_priority_steps() {
        assert_eq!(
            queue_keys("videos"),
            [
                "videos".to_owned(),
                "videos\x06\x163".to_owned(),
                "videos\x06\x166".to_owned(),
                "videos\x06\x169".to_owned()
            ]
        );
    }

    #[test]
    fn a_revoke_broadcast_has_the_shape_celery_sends() {
        let captured = fixture("revoke-broadcast-message.json");
        let ids = json!([
            "ece8fef6-c82b-46cf-be3e-b318a0723ccc",
            "8e0c16e4-613c-459e-8c0e-79aa297fff1e"
        ]);
        let env = control_envelope(
            "revoke",
            json!({"task_id": ids, "terminate": true, "signal": "SIGKILL"}),
            None,
            1.0,
            "tag",
        );
        assert_eq!(envelope_body(&env), envelope_body(&captured));
        assert_eq!(
            env["properties"]["delivery_info"],
            captured["properties"]["delivery_info"]
        );
        assert_eq!(env["content-type"], captured["content-type"]);
    }

    #[test]
    fn kwargsrepr_is_a_readable_python_literal() {
        assert_eq!(
            py_repr(&json!({"a": [1, null, true], "b": "it's\n"})),
            r"{'a': [1, None, True], 'b': 'it\'s\n'}"
        );
    }
}
