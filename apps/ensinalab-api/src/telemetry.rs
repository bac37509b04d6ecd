//! Logging: `tracing` to stdout, human-readable or JSON (`LOG_FORMAT=json`), filtered by
//! `RUST_LOG` (default `info`).

use std::fmt::{self, Write as _};
use std::io::IsTerminal as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_set = match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .try_init(),
        // Colour escapes only for a person at a terminal: in a file or a pipe they are noise.
        LogFormat::Pretty => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
}

/// `LOG_FORMAT=json`'s lines, in the shape of `tracing-subscriber`'s own JSON format
/// (`timestamp`, `level`, `fields`, `target`, and `spans` from the root when there are any),
/// written straight into the line. That format serializes through an adaptor that checks every
/// byte as UTF-8 again and re-parses each span's stored fields on every line, which made it
/// most of the fixed cost of a request (docs/benchmarks.md, "log lines"). The spans' fields are
/// still stored by its [`JsonFields`], so they are spliced in as they are.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // An event from the `log` crate carries its own target and level.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        w.write_str("{\"timestamp\":\"")?;
        let now = timestamp(time::OffsetDateTime::now_utc());
        w.write_str(std::str::from_utf8(&now).map_err(|_| fmt::Error)?)?;
        write!(w, "\",\"level\":\"{}\",\"fields\":{{", meta.level())?;
        let mut fields = JsonFieldsOf {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str("},\"target\":")?;
        quoted(&mut w, meta.target())?;
        if let Some(scope) = ctx.event_scope() {
            w.write_str(",\"spans\":[")?;
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                let extensions = span.extensions();
                let stored = extensions
                    .get::<FormattedFields<N>>()
                    .map_or("{}", |f| f.fields.as_str());
                // `{"a":1}` becomes `{"a":1,"name":"span"}`; `{}` becomes `{"name":"span"}`.
                match stored.strip_suffix('}') {
                    Some(open) if open.len() > 1 => {
                        w.write_str(open)?;
                        w.write_char(',')?;
                    }
                    _ => w.write_char('{')?,
                }
                w.write_str("\"name\":")?;
                quoted(&mut w, span.name())?;
                w.write_char('}')?;
            }
            w.write_char(']')?;
        }
        w.write_str("}\n")
    }
}

/// `at` in RFC 3339, UTC, to the microsecond (`2026-12-03T08:15:02.123456Z`), as the subscriber's
/// own clock writes it; digit by digit, which costs a fraction of `fmt`'s padded integers.
fn timestamp(at: time::OffsetDateTime) -> [u8; 27] {
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let fields = [
        (0, 4, at.year().unsigned_abs() % 10_000),
        (5, 2, u32::from(u8::from(at.month()))),
        (8, 2, u32::from(at.day())),
        (11, 2, u32::from(at.hour())),
        (14, 2, u32::from(at.minute())),
        (17, 2, u32::from(at.second())),
        (20, 6, at.microsecond()),
    ];
    for (start, width, mut n) in fields {
        for digit in out[start..start + width].iter_mut().rev() {
            *digit = b"0123456789"[(n % 10) as usize];
            n /= 10;
        }
    }
    out
}

/// Writes an event's fields as the members of a JSON object, as `tracing-subscriber`'s JSON
/// format does: numbers and booleans as themselves, everything else as a string.
struct JsonFieldsOf<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl JsonFieldsOf<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            ","
        };
        self.result = self
            .w
            .write_str(separator)
            .and_then(|()| quoted(self.w, field.name()))
            .and_then(|()| self.w.write_char(':'))
            .and_then(|()| value(self.w));
    }
}

impl Visit for JsonFieldsOf<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| quoted(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's spelling (`1.0`, not `1`), and `null` for what JSON cannot say.
        self.member(field, |w| match serde_json::Number::from_f64(value) {
            Some(n) => write!(w, "{n}"),
            None => w.write_str("null"),
        });
    }
}

/// `s` as a JSON string.
fn quoted(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what is written through it as the inside of a JSON string.
struct Escaped<'a, W: ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut clean = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..0x20 => "",
                _ => continue,
            };
            // Every byte escaped is ASCII, so `i` is on a character boundary.
            self.0.write_str(&s[clean..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            clean = i + 1;
        }
        self.0.write_str(&s[clean..])
    }
}

/// One log line per request: method, path, status, duration, and the user when the token was
/// valid. Never the headers (tokens). The routes' own spans, which name the user too, are at
/// `debug`: sqlx enters the current span again on every row it reads, which made an `info`
/// span a cost that grew with the page (docs/benchmarks.md, "spans").
///
/// # Errors
/// Whatever the inner service returns.
pub async fn log_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path: String = req.path().chars().take(200).collect();
    let res = next.call(req).await?;
    let user_id = crate::auth::verified(res.request()).map(|identity| identity.user_id.get());
    tracing::info!(
        %method,
        path,
        status = res.status().as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        user_id,
        "request"
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::Level;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Every line written, shared with the test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            lines.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Lines {
        type Writer = Self;

        fn make_writer(&self) -> Self {
            self.clone()
        }
    }

    impl Lines {
        fn parsed(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            std::str::from_utf8(&bytes)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    /// Events of every kind of field, in and out of spans, with text that needs escaping.
    fn events() {
        tracing::info!(
            method = "GET",
            path = "/tasks/active",
            status = 200_u64,
            "request"
        );
        let outer = tracing::info_span!("list_active", user_id = %42, page = ?Some("a\"b"));
        let _outer = outer.enter();
        tracing::warn!(
            error = %"disk \"full\"\\ \n\r\t\u{8}\u{c}\u{1}\u{7f} ünï 🦀",
            count = -3_i64,
            ok = true,
            ratio = 0.5,
            whole = 2.0,
            nan = f64::NAN,
            detail = ?vec![("x", 1)],
            "{} in {}", "message with \"quotes\"", 3
        );
        let inner = tracing::info_span!("store");
        inner.in_scope(|| tracing::error!(error = "lost"));
    }

    #[test]
    fn json_lines_are_what_the_subscribers_own_json_format_writes() {
        let (ours, theirs) = (Lines::default(), Lines::default());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::INFO)
            .with_writer(ours.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, events);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::INFO)
            .with_writer(theirs.clone())
            .json()
            .with_current_span(false)
            .finish();
        tracing::subscriber::with_default(subscriber, events);

        let (mut ours, mut theirs) = (ours.parsed(), theirs.parsed());
        assert_eq!(ours.len(), 3);
        for line in &mut ours {
            let stamp = line["timestamp"].take();
            let stamp = stamp.as_str().unwrap();
            // RFC 3339 in UTC to the microsecond, as the subscriber's own clock writes it.
            assert_eq!((stamp.len(), &stamp[19..20], &stamp[26..]), (27, ".", "Z"));
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .unwrap();
        }
        for line in &mut theirs {
            line["timestamp"].take();
        }
        assert_eq!(ours, theirs);
        assert_eq!(ours[1]["spans"][0]["name"], "list_active");
        assert_eq!(ours[2]["spans"][1], serde_json::json!({ "name": "store" }));
    }

    #[test]
    fn timestamps_are_rfc3339_to_the_microsecond() {
        let at = time::macros::datetime!(2026-01-03 08:05:02.012345678 UTC);
        assert_eq!(&timestamp(at), b"2026-01-03T08:05:02.012345Z");
    }
}
