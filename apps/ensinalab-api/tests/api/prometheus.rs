//! The cancel-rate alert, end to end: a real Prometheus (Debian's package, installed by
//! scripts/ensure-prometheus.sh) scrapes the real server's metrics listener and evaluates the
//! rules of deploy/prometheus/alerts.yml, with their 24 h ranges cut to minutes and no `for`,
//! while jobs are created and cancelled through the API; the alert is read as firing from
//! Prometheus's own HTTP API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, Settings, TestApp};

/// The rules as shipped.
fn shipped_rules() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/alerts.yml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shipped rules with windows a test can wait for: every `[24h]` range becomes `[5m]`,
/// every `for` nothing. Thresholds and guards stay as shipped.
fn rules_for_a_test(shipped: &str) -> String {
    assert!(
        shipped.contains("[24h]") && shipped.contains("for: 15m"),
        "alerts.yml changed shape: update rules_for_a_test"
    );
    shipped
        .replace("[24h]", "[5m]")
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(_) => line.split("for:").next().unwrap_or_default().to_owned() + "for: 0s",
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Prometheus scraping `target` every second, killed and its data removed when dropped.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Prometheus {
    fn start(target: &str, rules: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ensinalab-prometheus-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("alerts.yml"), rules).expect("rules written");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\n\
             scrape_configs:\n  - job_name: ensinalab\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config written");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (install it: bash scripts/ensure-prometheus.sh)");
        Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `GET /api/v1/<path>`'s `data`, once Prometheus answers it.
    async fn api(&self, client: &reqwest::Client, path: &str) -> Option<Value> {
        let res = client
            .get(format!("{}/api/v1/{path}", self.url))
            .send()
            .await
            .ok()?;
        if res.status() != StatusCode::OK {
            return None;
        }
        let body: Value = res.json().await.ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }

    /// Polls `path` until `found` picks something out of its data.
    async fn until<T>(
        &self,
        client: &reqwest::Client,
        path: &str,
        found: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let mut last = Value::Null;
        for _ in 0..600 {
            if let Some(data) = self.api(client, path).await {
                if let Some(it) = found(&data) {
                    return it;
                }
                last = data;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus never showed what was awaited at {path}; last: {last}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Briefings whose options take long: they stay cancellable for the whole test.
fn slow_options() -> Settings {
    let mut settings = Settings::default();
    settings.local.options_duration = Duration::from_secs(600);
    settings
}

#[tokio::test]
async fn a_real_prometheus_fires_the_cancel_rate_alert_once_cancels_pass_ten_percent() {
    let app = TestApp::spawn_with(Backend::Sqlite, slow_options()).await;
    let prometheus = Prometheus::start(
        &format!("127.0.0.1:{}", app.metrics_port()),
        &rules_for_a_test(&shipped_rules()),
    );
    let client = &app.client;
    // The counters' zeros are scraped before any job: increase() then counts every job.
    prometheus
        .until(client, "query?query=ensinalab_jobs_created_total", |data| {
            data["result"]
                .as_array()
                .filter(|r| !r.is_empty())
                .map(|_| ())
        })
        .await;

    // 20 jobs, the rule's smallest volume; one of user 2's three is cancelled: 5 %.
    let (alice, bob) = (app.token(1), app.token(2));
    for n in 0..17 {
        app.create_briefing(&alice, &format!("Aula {n}")).await;
    }
    let mut bobs = Vec::new();
    for n in 0..3 {
        bobs.push(app.create_briefing(&bob, &format!("Aula {n}")).await);
    }
    for _ in 0..200 {
        let (status, body) = app.get("/tasks/active", &bob).await;
        assert_eq!(status, StatusCode::OK);
        if body["tasks"].as_array().is_some_and(|t| t.len() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = bobs[0]["briefing_id"].as_str().expect("a briefing id");
    let (status, body) = app
        .post(&format!("/briefings/{first}/cancel-generation"), &bob)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Once Prometheus's data holds the cancel, the rule (evaluated every second on the same
    // data) must not fire at 5 %.
    let ratio = "query?query=sum(increase(ensinalab_cancellations_total[5m]))\
                 /sum(increase(ensinalab_jobs_created_total[5m]))";
    prometheus
        .until(client, ratio, |data| {
            let value = data["result"][0]["value"][1]
                .as_str()?
                .parse::<f64>()
                .ok()?;
            ((value - 0.05).abs() < 1e-9).then_some(())
        })
        .await;
    let firing = |data: &Value| {
        data["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "EnsinaLabCancelRateHigh" && a["state"] == "firing"
                })
                .cloned()
        })
    };
    let alerts = prometheus.api(client, "alerts").await.expect("alerts");
    assert_eq!(firing(&alerts), None, "silent at 5 %: {alerts}");

    // The other two: 15 %.
    let (status, body) = app.post("/tasks/cancel-all", &bob).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let alert = prometheus.until(client, "alerts", firing).await;
    let rate: f64 = alert["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("the alert's value");
    assert!((rate - 0.15).abs() < 1e-9, "3 of 20 cancelled: {alert}");
    assert_eq!(alert["labels"]["severity"], "warning");
    drop(prometheus);
    app.cleanup().await;
}
