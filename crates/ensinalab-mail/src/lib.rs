//! The operators' alert e-mail: [`SmtpMailer`] implements the `Mailer` port of
//! `ensinalab-ports` over SMTP (lettre), sending each digest of alerts as one plain-text
//! message to every operator.
//!
//! What is an alert, and when a digest goes, is decided elsewhere (`ensinalab_ports::is_alert`,
//! the server's mail job); this crate only writes and sends the message. The SMTP URL is
//! lettre's: `smtp://host:port` (no TLS), `smtp://host:587?tls=required` (STARTTLS),
//! `smtp://host:587?tls=opportunistic` (STARTTLS when offered), `smtps://host:465` (TLS from the
//! start), with `user:password@` when the server wants a login. A password goes only over TLS
//! that cannot be stripped (`smtps`, `tls=required`) unless the URL says `tls=none`: sending it
//! in clear is a choice someone writes down, never a default ([`plain_password`]).

use std::time::Duration;

use ensinalab_domain::{CancelReason, TaskId};
use ensinalab_ports::{ChangeKind, MailError, Mailer, Overdue, TaskChange};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use time::format_description::well_known::Rfc3339;

/// How long handing one message to the mail server may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the alerts go.
#[derive(Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// `SMTP_URL`.
    pub smtp_url: String,
    /// `ALERT_EMAIL_FROM`.
    pub from: String,
    /// `ALERT_EMAIL_TO`, one address or more.
    pub to: Vec<String>,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("MailConfig")
            .field("smtp_url", &"<set>")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

/// A configuration the mailer cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    #[error("invalid e-mail address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("no recipient")]
    NoRecipient,
    #[error(
        "a user and password without TLS would go to the mail server in clear: use smtps://, \
         ?tls=required, or ?tls=none to send them in clear on purpose"
    )]
    PlainPassword,
}

/// The URL lettre is given for `url`, once it is clear that a password in it goes over TLS or
/// that `tls=none` says it may go in clear (lettre itself knows no `tls=none`: the pair is
/// taken out). `tls=opportunistic` counts as clear: a man in the middle strips the STARTTLS
/// offer and the login follows in clear.
///
/// # Errors
/// [`MailConfigError::PlainPassword`] for a password over a plain connection,
/// [`MailConfigError::Url`] for `tls=none` on `smtps`.
pub fn plain_password(url: &str) -> Result<String, MailConfigError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    let authority = base.split('/').next().unwrap_or_default();
    let password = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let pairs: Vec<&str> = query.map(|q| q.split('&').collect()).unwrap_or_default();
    let tls = pairs.iter().find_map(|pair| pair.strip_prefix("tls="));
    if tls == Some("none") && scheme.eq_ignore_ascii_case("smtps") {
        return Err(MailConfigError::Url(
            "tls=none contradicts smtps:// (TLS from the start)".to_owned(),
        ));
    }
    let plain = scheme.eq_ignore_ascii_case("smtp") && matches!(tls, None | Some("opportunistic"));
    if password && plain {
        return Err(MailConfigError::PlainPassword);
    }
    if tls != Some("none") {
        return Ok(url.to_owned());
    }
    let kept: Vec<&str> = pairs.into_iter().filter(|p| *p != "tls=none").collect();
    let mut lettre = format!("{scheme}://{base}");
    if !kept.is_empty() {
        lettre.push('?');
        lettre.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        lettre.push('#');
        lettre.push_str(fragment);
    }
    Ok(lettre)
}

/// Sends alert digests over SMTP. Cheap to clone: clones share the transport's connections.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the addresses are shown.
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

fn mailbox(address: &str) -> Result<Mailbox, MailConfigError> {
    address.trim().parse().map_err(
        |e: lettre::address::AddressError| MailConfigError::Address {
            address: address.to_owned(),
            reason: e.to_string(),
        },
    )
}

impl SmtpMailer {
    /// Checks the configuration and builds the transport, without connecting (a mail server
    /// that is down shows when the first digest is sent, and is retried then).
    ///
    /// # Errors
    /// [`MailConfigError`] naming what is wrong.
    pub fn new(config: &MailConfig) -> Result<Self, MailConfigError> {
        let url = plain_password(&config.smtp_url)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| MailConfigError::Url(e.to_string()))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let to = config
            .to
            .iter()
            .map(|a| mailbox(a))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(MailConfigError::NoRecipient);
        }
        Ok(Self {
            transport,
            from: mailbox(&config.from)?,
            to,
        })
    }
}

impl Mailer for SmtpMailer {
    async fn send(&self, alerts: &[TaskChange]) -> Result<(), MailError> {
        let (subject, body) = digest(alerts);
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(body)
            .map_err(|e| MailError::Refused(e.to_string()))?;
        self.transport.send(message).await.map_err(|e| {
            if e.is_permanent() {
                MailError::Refused(e.to_string())
            } else {
                MailError::Unavailable(Box::new(e))
            }
        })?;
        tracing::info!(
            alerts = alerts.len(),
            to = self.to.len(),
            "alert e-mail sent"
        );
        Ok(())
    }
}

/// `n thing` or `n things`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The job a change is about, as operators read it: `video 7, task <uuid>, user 1`.
fn job(change: &TaskChange) -> String {
    let (kind, id) = change.resource;
    let task = change.task_id.as_ref().map_or("none", TaskId::as_str);
    format!(
        "{} {id}, task {task}, user {}",
        kind.as_str(),
        change.user_id.get()
    )
}

/// When it happened, to the second, in UTC.
fn when(change: &TaskChange) -> String {
    let at = change.at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The subject and plain-text body of one digest of `alerts`.
pub fn digest(alerts: &[TaskChange]) -> (String, String) {
    let overdue: Vec<(&TaskChange, Overdue)> = alerts
        .iter()
        .filter_map(|c| match c.kind {
            ChangeKind::RevokeOverdue(problem) => Some((c, problem)),
            _ => None,
        })
        .collect();
    let timeouts: Vec<&TaskChange> = alerts
        .iter()
        .filter(|c| c.kind == ChangeKind::Cancelled(CancelReason::Timeout))
        .collect();

    let mut parts = Vec::new();
    if !overdue.is_empty() {
        parts.push(count(
            overdue.len(),
            "cancel not carried out",
            "cancels not carried out",
        ));
    }
    if !timeouts.is_empty() {
        parts.push(count(timeouts.len(), "job timed out", "jobs timed out"));
    }
    let subject = format!("[EnsinaLab] {}", parts.join(", "));

    let mut body = String::from("EnsinaLab task control: alerts since the last e-mail.\n");
    if !overdue.is_empty() {
        body.push_str(&format!(
            "\nCancels not carried out ({}): the job is cancelled, but its task may still run.\n",
            overdue.len()
        ));
        for (change, problem) in &overdue {
            let what = match problem {
                Overdue::Undelivered => "revoke undelivered: the broker has not taken the kill",
                Overdue::StillRunning => {
                    "still running: a live worker runs the task after the kill"
                }
            };
            body.push_str(&format!("- {}: {what} ({})\n", job(change), when(change)));
        }
    }
    if !timeouts.is_empty() {
        body.push_str(&format!(
            "\nJobs cancelled by the automatic timeout ({}):\n",
            timeouts.len()
        ));
        for change in &timeouts {
            body.push_str(&format!("- {} ({})\n", job(change), when(change)));
        }
    }
    body.push_str(
        "\nEvery one is also in the server's logs; the timeouts are auto_cancelled events of \
         the security trail (GET /admin/security-events).\n",
    );
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ensinalab_domain::{ResourceKind, UserId, VideoStatus};
    use ensinalab_ports::AnyStatus;
    use time::OffsetDateTime;

    fn alert(kind: ChangeKind, id: i64) -> TaskChange {
        TaskChange {
            user_id: UserId(3),
            resource: (ResourceKind::Video, id),
            task_id: Some(TaskId::parse("0b5a8c1e-6f1d-4c2a-9e3b-7d4f5a6b7c8d").unwrap()),
            kind,
            status: AnyStatus::Video(VideoStatus::Cancelled),
            progress: None,
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_digest_counts_each_kind_in_its_subject_and_names_every_job() {
        let alerts = [
            alert(ChangeKind::RevokeOverdue(Overdue::Undelivered), 7),
            alert(ChangeKind::Cancelled(CancelReason::Timeout), 8),
            alert(ChangeKind::Cancelled(CancelReason::Timeout), 9),
        ];
        let (subject, body) = digest(&alerts);
        assert_eq!(
            subject,
            "[EnsinaLab] 1 cancel not carried out, 2 jobs timed out"
        );
        for id in [7, 8, 9] {
            let line = format!("- video {id}, task 0b5a8c1e-6f1d-4c2a-9e3b-7d4f5a6b7c8d, user 3");
            assert!(body.contains(&line), "{body}");
        }
        assert!(body.contains("revoke undelivered"), "{body}");
        assert!(body.contains("1970-01-01T00:00:00Z"), "{body}");

        let (subject, _) = digest(&alerts[1..2]);
        assert_eq!(subject, "[EnsinaLab] 1 job timed out");
    }

    #[test]
    fn a_password_goes_in_clear_only_when_the_url_says_tls_none() {
        let table = [
            ("smtp://127.0.0.1:2525", Some("smtp://127.0.0.1:2525")),
            (
                "smtp://user@127.0.0.1:2525",
                Some("smtp://user@127.0.0.1:2525"),
            ),
            ("smtp://user:pw@127.0.0.1:2525", None),
            ("smtp://user:pw@h:587?tls=opportunistic", None),
            ("SMTP://user:pw@h", None),
            (
                "smtp://user:pw@h:587?tls=required",
                Some("smtp://user:pw@h:587?tls=required"),
            ),
            ("smtps://user:pw@h:465", Some("smtps://user:pw@h:465")),
            ("smtp://user:pw@h:25?tls=none", Some("smtp://user:pw@h:25")),
            (
                "smtp://h:25/ehlo.name?tls=none",
                Some("smtp://h:25/ehlo.name"),
            ),
            // A `?` or `@` after the host is no login.
            ("smtp://h:25/a@b:c", Some("smtp://h:25/a@b:c")),
        ];
        for (url, lettre) in table {
            match (plain_password(url), lettre) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{url}"),
                (Err(MailConfigError::PlainPassword), None) => {}
                (got, _) => panic!("{url}: {got:?}"),
            }
        }
        assert!(matches!(
            plain_password("smtps://h?tls=none"),
            Err(MailConfigError::Url(_))
        ));
    }

    #[test]
    fn a_bad_configuration_is_refused_with_what_is_wrong() {
        let config = |url: &str, to: &[&str]| MailConfig {
            smtp_url: url.to_owned(),
            from: "ensinalab@localhost".to_owned(),
            to: to.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert!(SmtpMailer::new(&config("smtp://127.0.0.1:2525", &["ops@example.com"])).is_ok());
        assert!(matches!(
            SmtpMailer::new(&config("http://127.0.0.1", &["ops@example.com"])),
            Err(MailConfigError::Url(_))
        ));
        assert!(matches!(
            SmtpMailer::new(&config("smtp://127.0.0.1", &["not an address"])),
            Err(MailConfigError::Address { .. })
        ));
        assert!(matches!(
            SmtpMailer::new(&config("smtp://127.0.0.1", &[])),
            Err(MailConfigError::NoRecipient)
        ));
        assert!(matches!(
            SmtpMailer::new(&config("smtp://u:p@127.0.0.1", &["ops@example.com"])),
            Err(MailConfigError::PlainPassword)
        ));
        for url in [
            "smtp://u:p@127.0.0.1:2525?tls=none",
            "smtp://u:p@127.0.0.1:587?tls=required",
            "smtps://u:p@127.0.0.1",
        ] {
            assert!(
                SmtpMailer::new(&config(url, &["ops@example.com"])).is_ok(),
                "{url}"
            );
        }
    }
}
