//! The same messages as on Redis, framed as AMQP: on RabbitMQ kombu sends the body as the
//! content itself (JSON text, no base64), the message headers as the AMQP header table, and
//! `content_type`, `correlation_id`, `delivery_mode`, ... as basic properties.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::Value;

use super::{Outgoing, PIDBOX};

/// A task message built (and validated) as a kombu envelope by `crate::message`, for the
/// queue's exchange and routing key: both the queue's name, as Celery declares them.
///
/// # Errors
/// The envelope's body is not base64.
pub(crate) fn task<'a>(envelope: &Value, queue: &'a str) -> Result<Outgoing<'a>, String> {
    let body = match envelope["body"].as_str() {
        Some(b64) => B64
            .decode(b64)
            .map_err(|e| format!("body is not base64: {e}"))?,
        None => return Err("body must be a string".into()),
    };
    let props = &envelope["properties"];
    let mut properties = BasicProperties::default()
        .with_content_type(short(&envelope["content-type"]))
        .with_content_encoding(short(&envelope["content-encoding"]))
        .with_headers(table(&envelope["headers"]))
        .with_correlation_id(short(&props["correlation_id"]))
        .with_delivery_mode(2)
        .with_priority(0);
    if let Some(reply_to) = props["reply_to"].as_str().filter(|r| !r.is_empty()) {
        properties = properties.with_reply_to(reply_to.into());
    }
    Ok(Outgoing {
        exchange: queue,
        routing_key: queue,
        body,
        properties,
    })
}

/// A control request (`crate::message::control_body`) for the `celery.pidbox` fanout, with the
/// headers kombu's mailbox sends; transient, as kombu declares the exchange.
pub(crate) fn control(body: &Value, expires_at: f64) -> Outgoing<'static> {
    let mut headers = FieldTable::default();
    headers.insert("clock".into(), AMQPValue::LongLongInt(1));
    headers.insert("expires".into(), AMQPValue::Double(expires_at));
    Outgoing {
        exchange: PIDBOX,
        routing_key: "",
        body: body.to_string().into_bytes(),
        properties: BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_headers(headers)
            .with_delivery_mode(1),
    }
}

fn short(v: &Value) -> ShortString {
    v.as_str().unwrap_or_default().into()
}

/// A JSON object as an AMQP field table (anything else: an empty one).
pub(crate) fn table(v: &Value) -> FieldTable {
    let mut out = FieldTable::default();
    if let Value::Object(map) = v {
        for (k, v) in map {
            out.insert(k.as_str().into(), value(v));
        }
    }
    out
}

/// JSON to AMQP, as py-amqp reads it back: null is void, integers are 64-bit, strings long.
fn value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(value).collect::<Vec<_>>(),
        )),
        Value::Object(_) => AMQPValue::FieldTable(table(v)),
    }
}

/// An AMQP header value as JSON (for the headers of replies and events).
pub(crate) fn json_of(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => (*i).into(),
        AMQPValue::ShortShortUInt(i) => (*i).into(),
        AMQPValue::ShortInt(i) => (*i).into(),
        AMQPValue::ShortUInt(i) => (*i).into(),
        AMQPValue::LongInt(i) => (*i).into(),
        AMQPValue::LongUInt(i) => (*i).into(),
        AMQPValue::LongLongInt(i) => (*i).into(),
        AMQPValue::Timestamp(t) => (*t).into(),
        AMQPValue::Float(f) => f64::from(*f).into(),
        AMQPValue::Double(f) => (*f).into(),
        AMQPValue::ShortString(s) => s.as_str().into(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into(),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(json_of).collect()),
        AMQPValue::FieldTable(t) => Value::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), json_of(v)))
                .collect(),
        ),
        AMQPValue::DecimalValue(_) | AMQPValue::ByteArray(_) | AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ensinalab_domain::{BriefingId, TaskId};
    use ensinalab_ports::{TaskKind, TaskRequest};

    #[test]
    fn a_task_goes_to_its_queues_exchange_with_its_json_body_and_celerys_headers() {
        let request = TaskRequest {
            id: TaskId::parse("dd6c6817-1f0c-4c1b-9a5e-3c1f0f6f1b2a").unwrap(),
            kind: TaskKind::GenerateOptions {
                briefing_id: BriefingId(7),
                title: "Fotossíntese".into(),
                description: "6º ano".into(),
                duration_minutes: 5,
            },
        };
        let envelope = crate::message::task_envelope(&request, "videos", "rust@test", "tag");
        let msg = task(&envelope, "videos").unwrap();
        assert_eq!((msg.exchange, msg.routing_key), ("videos", "videos"));
        let body: Value = serde_json::from_slice(&msg.body).unwrap();
        assert_eq!(body[1]["title"], "Fotossíntese");
        let headers = msg.properties.headers().clone().unwrap();
        let headers = json_of(&AMQPValue::FieldTable(headers));
        assert_eq!(headers["task"], "ensinalab.generate_options");
        assert_eq!(headers["id"], request.id.as_str());
        assert_eq!(headers["timelimit"], serde_json::json!([null, null]));
        assert_eq!(headers["retries"], 0);
        assert_eq!(msg.properties.delivery_mode(), &Some(2));
        assert_eq!(
            msg.properties
                .content_type()
                .as_ref()
                .map(ShortString::as_str),
            Some("application/json")
        );
    }
}
