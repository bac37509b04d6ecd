//! The operators' alert e-mail against a real SMTP server the test starts: a cancel whose
//! revoke the broker never took, and automatic timeouts, each reach the operators as one
//! digest, at most one e-mail per interval whatever the volume.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const OPERATORS: [&str; 2] = ["ops@ensinalab.test", "oncall@ensinalab.test"];

/// The real application built from `env` as `main` builds it (embedded default unless
/// `REDIS_URL` is given) on a SQLite file, mailing `smtp`'s server.
async fn spawn(smtp: &SmtpServer, env: &[(&str, &str)]) -> TestApp {
    let (smtp_url, to) = (smtp.url(), OPERATORS.join(", "));
    let mailing = [
        ("METRICS_ADDR", ""),
        ("SMTP_URL", smtp_url.as_str()),
        ("ALERT_EMAIL_TO", to.as_str()),
    ];
    let env: Vec<(&str, &str)> = env.iter().chain(&mailing).copied().collect();
    TestApp::build(TestDb::on_disk(Backend::Sqlite).await, &env).await
}

fn assert_to_operators(mail: &Received) {
    let to = mail.header("To").expect("a To header");
    for operator in OPERATORS {
        assert!(to.contains(operator), "{to}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_whose_revoke_never_reached_the_broker_is_mailed_to_the_operators() {
    let smtp = SmtpServer::start();
    let mut redis = RedisServer::start();
    let (redis_url, queue) = (redis.url(), unique_queue());
    let app = spawn(
        &smtp,
        &[
            ("REDIS_URL", &redis_url),
            ("CELERY_QUEUE", &queue),
            ("REVOKE_ALERT_AFTER_SECS", "1"),
            ("RECONCILE_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    let token = app.token(1);
    let created = app.create_briefing(&token, "Sem broker").await;
    let hash = created["briefing_id"].as_str().unwrap().to_owned();
    let task = created["task_id"].as_str().unwrap().to_owned();

    // The broker goes down; the cancel holds in the database, its revoke pending.
    redis.stop();
    let (status, cancelled) = app
        .post(&format!("/briefings/{hash}/cancel-generation"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["revoke"], "pending", "{cancelled}");

    let mail = eventually(Duration::from_secs(30), "the alert e-mail", || async {
        smtp.received().into_iter().next()
    })
    .await;
    assert_to_operators(&mail);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[EnsinaLab] 1 cancel not carried out")
    );
    assert!(mail.body.contains(&format!("task {task}")), "{}", mail.body);
    assert!(mail.body.contains("revoke undelivered"), "{}", mail.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_timeouts_reach_the_operators_as_one_e_mail_per_interval() {
    let smtp = SmtpServer::start();
    let app = spawn(
        &smtp,
        &[
            ("AUTO_CANCEL_FACTOR", "1"),
            ("EXPECTED_VIDEO_SECS", "1"),
            ("EXPECTED_OPTIONS_SECS", "60"),
            ("AUTO_CANCEL_SWEEP_SECS", "1"),
            ("LOCAL_OPTIONS_SECS", "1"),
            ("LOCAL_VIDEO_SECS", "600"),
            ("ALERT_EMAIL_MIN_INTERVAL_SECS", "300"),
        ],
    )
    .await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Longo demais").await;
    let option = briefing["options"][0]["option_id"].as_str().unwrap();
    let mut videos = Vec::new();
    for _ in 0..3 {
        videos.push(app.select(&token, option).await);
    }
    for video in &videos {
        let path = format!("/videos/{}/status", video["video_id"].as_str().unwrap());
        eventually(Duration::from_secs(20), "timed out", || async {
            let (_, v) = app.get(&path, &token).await;
            (v["status"] == "cancelled").then_some(())
        })
        .await;
    }
    let first = eventually(Duration::from_secs(20), "the alert e-mail", || async {
        smtp.received().into_iter().next()
    })
    .await;
    // Past several more ticks of the mail job: the interval holds whatever else timed out.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let all = smtp.received();
    assert_eq!(all.len(), 1, "{all:?}");

    assert_to_operators(&first);
    let subject = first.header("Subject").expect("a subject");
    let named: Vec<&Value> = videos
        .iter()
        .filter(|v| {
            let task = v["task_id"].as_str().unwrap();
            first.body.contains(&format!("task {task}"))
        })
        .collect();
    assert!(!named.is_empty(), "no job of ours named:\n{}", first.body);
    let expected = match named.len() {
        1 => "[EnsinaLab] 1 job timed out".to_owned(),
        n => format!("[EnsinaLab] {n} jobs timed out"),
    };
    assert_eq!(subject, expected, "{}", first.body);
}
