//! The operators' alert e-mail against a real SMTP server the test starts: a cancel whose
//! revoke the broker never took, and automatic timeouts, each reach the operators as one
//! digest, at most one e-mail per interval whatever the volume.

use std::time::Duration;

use ensinalab_api::Application;
use ensinalab_api::auth::Authenticator;
use ensinalab_api::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const OPERATORS: [&str; 2] = ["ops@ensinalab.test", "oncall@ensinalab.test"];

/// The real application built from `env` as `main` builds it (embedded default unless
/// `REDIS_URL` is given), mailing `smtp`'s server.
async fn spawn(
    smtp: &SmtpServer,
    db: &std::path::Path,
    env: &[(&str, &str)],
) -> (Http, Authenticator) {
    let base = [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        ),
        ("JWT_SECRET", SECRET.to_owned()),
        ("METRICS_ADDR", String::new()),
        ("SMTP_URL", smtp.url()),
        ("ALERT_EMAIL_TO", OPERATORS.join(", ")),
        ("RATE_LIMIT_PER_MIN", "100000".to_owned()),
        ("CANCEL_RATE_LIMIT_PER_MIN", "100000".to_owned()),
    ];
    let config = Config::from_lookup(|key| {
        env.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| base.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()))
    })
    .expect("valid configuration");
    let app = Application::build(&config).await.expect("app starts");
    let http = Http::new(app.port(), reqwest::Client::new());
    tokio::spawn(app.run_until_stopped());
    (http, Authenticator::new(&config.jwt))
}

fn sqlite_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("alerts-{}.db", uuid::Uuid::new_v4().simple()))
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
    let db = sqlite_file();
    let redis_url = redis.url();
    let (app, auth) = spawn(
        &smtp,
        &db,
        &[
            ("REDIS_URL", &redis_url),
            ("CELERY_QUEUE", &unique_queue()),
            ("REVOKE_ALERT_AFTER_SECS", "1"),
            ("RECONCILE_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    let token = auth.mint(1, false, 600).unwrap();
    let body = json!({"title": "Sem broker", "description": "...", "duration_minutes": 10});
    let (status, created) = app.post_json("/briefings", &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
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
    let _ = std::fs::remove_file(&db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_timeouts_reach_the_operators_as_one_e_mail_per_interval() {
    let smtp = SmtpServer::start();
    let db = sqlite_file();
    let (app, auth) = spawn(
        &smtp,
        &db,
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
    let token = auth.mint(1, false, 600).unwrap();
    let body = json!({"title": "Longo demais", "description": "...", "duration_minutes": 10});
    let (status, created) = app.post_json("/briefings", &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let hash = created["briefing_id"].as_str().unwrap().to_owned();
    let option = eventually(Duration::from_secs(20), "options", || async {
        let (_, b) = app.get(&format!("/briefings/{hash}"), &token).await;
        b["options"][0]["option_id"].as_str().map(str::to_owned)
    })
    .await;
    let mut videos = Vec::new();
    for _ in 0..3 {
        let (status, video) = app.post(&format!("/options/{option}/select"), &token).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{video}");
        videos.push(video);
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
    let _ = std::fs::remove_file(&db);
}
