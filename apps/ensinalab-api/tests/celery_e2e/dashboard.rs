//! The dashboard in a real headless Chromium, over the app and a real Celery worker: a job
//! created through the API appears without a reload and its progress moves; its `Cancelar`
//! kills the worker's pool process; `Cancelar tudo`, confirmed in the page with the keyboard,
//! empties the list. Screenshots go to `<target>/tmp/dashboard/`. Each job that leaves the
//! list says why in the page's history (completed, failed with its error, cancelled by the
//! user, by "Cancelar tudo" or by the automatic timeout), which a reload keeps; a video waiting
//! for approval stays listed; a new `#token=` link opened in the tab switches users without a
//! reload. And, over a server process on the zero-setup default, the page takes a pasted token,
//! reconnects by itself after the server restarts and marks a stuck job "travado".

use std::path::PathBuf;
use std::time::Duration;

use crate::common::app::authenticator;
use crate::common::process::ServerProcess;
use crate::common::servers::free_port;
use crate::support::browser::Browser;
use crate::support::{
    Backend, CeleryApp, DeathWatch, Durations, TestDb, VIDEO_TIMES_OUT, Worker, option_of,
    parent_of, process_is_dead, redis_url, str_of, unique_queue,
};

/// Redis DB of this test alone (see main.rs).
const DB: u8 = 4;

const ENTER: &str = "\u{E007}";

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")
}

fn progress_of(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_jobs_live_and_its_buttons_kill_them() {
    // Videos that outlast the test unless cancelled.
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 60.0,
        video_steps: 60,
    };
    let queue = unique_queue("dashboard");
    let worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Painel ao vivo").await;
    let option = option_of(&briefing, "simple").to_owned();

    // A phone's width; the token arrives in the fragment and leaves the address bar.
    let browser = Browser::start(375).await;
    browser
        .goto(&format!("{}/#token={token}", app.address))
        .await;
    browser.wait_for("#connection.live").await;
    token_taken(&browser, &token).await;
    assert!(
        browser.find("#jobs li").await.is_none(),
        "nothing in flight yet"
    );
    let signin = browser.wait_for("#signin").await;
    assert!(
        !browser.displayed(&signin).await,
        "signed in: no token field"
    );
    let confirm = browser.wait_for("#confirm-yes").await;
    assert!(
        !browser.displayed(&confirm).await,
        "no confirmation before it is asked for"
    );
    assert_eq!(browser.exec("return window.innerWidth").await, 375);

    // Created through the API: appears without a reload, and its progress moves.
    let video = app.select(&token, &option).await;
    let task = str_of(&video, "task_id").to_owned();
    let item = format!(r#"li[data-task-id="{task}"]"#);
    let li = browser.wait_for(&item).await;
    let text = browser.text(&li).await;
    assert!(text.contains("Painel ao vivo"), "the title: {text}");
    assert!(
        text.contains("Vídeo") && (text.contains("na fila") || text.contains("em andamento")),
        "kind and status: {text}"
    );
    let bar = browser.wait_for(&format!("{item} progress")).await;
    let first = browser
        .until("progress above zero", |b| {
            let bar = bar.clone();
            async move {
                let p = progress_of(&b.property(&bar, "value").await);
                (p > 0.0).then_some(p)
            }
        })
        .await;
    let later = browser
        .until("progress moves on", |b| {
            let bar = bar.clone();
            async move {
                let p = progress_of(&b.property(&bar, "value").await);
                (p > first).then_some(p)
            }
        })
        .await;
    assert!(later > first);
    let text = browser.text(&li).await;
    assert!(text.contains("em andamento"), "running: {text}");
    let button = browser.wait_for(&format!("{item} button")).await;
    assert!(browser.text(&button).await.starts_with("Cancelar"));
    assert!(
        browser
            .exec("return document.documentElement.scrollWidth <= window.innerWidth")
            .await
            .as_bool()
            .unwrap_or_default(),
        "the page scrolls sideways at 375 px"
    );
    browser.screenshot(&shots().join("dashboard.png")).await;

    // Its Cancelar kills the pool process running it, and it leaves the list.
    let pid = app.running_pid(&token, &task).await;
    assert_eq!(
        parent_of(pid),
        Some(worker.pid()),
        "pid {pid} is not this worker's"
    );
    let watch = DeathWatch::start(pid, Duration::from_secs(20));
    browser.click(&button).await;
    assert!(
        watch.died_at().await.is_some(),
        "pool process {pid} still alive"
    );
    assert!(process_is_dead(pid));
    browser
        .until("the job leaves the list", |b| {
            let item = item.clone();
            async move { b.find(&item).await.is_none().then_some(()) }
        })
        .await;
    let outcome = browser.wait_for("#outcome").await;
    let said = browser
        .until("the page says what the cancel did", |b| {
            let outcome = outcome.clone();
            async move { Some(b.text(&outcome).await).filter(|t| t.contains("cancelado")) }
        })
        .await;
    assert!(
        said.contains("cancelado") && said.contains("interrompida"),
        "{said}"
    );

    // Two more, then Cancelar tudo and Confirmar, with the keyboard alone.
    for _ in 0..2 {
        let v = app.select(&token, &option).await;
        browser
            .wait_for(&format!(r#"li[data-task-id="{}"]"#, str_of(&v, "task_id")))
            .await;
    }
    let all = browser.wait_for("#cancel-all").await;
    assert_eq!(browser.text(&all).await, "Cancelar tudo");
    browser.keys(&all, ENTER).await;
    assert!(
        browser.displayed(&confirm).await,
        "the in-page confirmation shows"
    );
    assert_eq!(browser.text(&confirm).await, "Confirmar");
    assert!(
        browser.find("#jobs li").await.is_some(),
        "nothing cancelled before Confirmar"
    );
    browser.keys(&confirm, ENTER).await;
    browser
        .until("the list empties", |b| async move {
            b.find("#jobs li").await.is_none().then_some(())
        })
        .await;
    let said = browser
        .until("the page says what cancel-all did", |b| {
            let outcome = outcome.clone();
            async move { Some(b.text(&outcome).await).filter(|t| t.contains("tarefa(s)")) }
        })
        .await;
    assert!(said.contains("2 tarefa(s) cancelada(s)"), "{said}");
    let (_, list) = app.get("/tasks/active", &token).await;
    assert_eq!(list["total"], 0, "{list}");
    browser
        .screenshot(&shots().join("dashboard-empty.png"))
        .await;

    browser.quit().await;
    app.cleanup().await;
}

/// The page's history entry for the job `kind:hash` once it holds `needle`; returns its text.
async fn notice(browser: &Browser, kind: &str, hash: &str, needle: &str) -> String {
    browser
        .wait_for_text(&format!(r#"#notices li[data-key="{kind}:{hash}"]"#), needle)
        .await
}

/// The page took `token` from the address: it is kept for the tab and gone from the address bar.
async fn token_taken(browser: &Browser, token: &str) {
    assert!(
        !browser.url().await.contains("token"),
        "{}",
        browser.url().await
    );
    assert_eq!(
        browser
            .exec("return sessionStorage.getItem('ensinalab.token')")
            .await,
        token
    );
}

fn listed(kind: &str, hash: &str) -> String {
    format!(r#"#jobs li[data-key="{kind}:{hash}"]"#)
}

/// What the reference worker raises for a title starting with `[fail]`.
const WORKER_ERROR: &str = "ConnectionError: Failed to connect to OpenAI API";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_says_why_each_job_left_and_keeps_what_the_server_lists() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 4.0,
        video_steps: 4,
    };
    let queue = unique_queue("dashboard-history");
    let _worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    let app = CeleryApp::spawn(Backend::Postgres, DB, &queue).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Histórico").await;
    let browser = Browser::start(375).await;
    browser
        .goto(&format!("{}/#token={token}", app.address))
        .await;
    browser.wait_for("#connection.live").await;
    let history = browser.wait_for("#history").await;
    assert!(!browser.displayed(&history).await, "no history yet");

    // An avatar video ends waiting for a human: still listed and cancellable. A simple one
    // completes and leaves, saying so.
    let avatar = app.select(&token, option_of(&briefing, "avatar")).await;
    let avatar = str_of(&avatar, "video_id").to_owned();
    let simple = app.select(&token, option_of(&briefing, "simple")).await;
    let simple = str_of(&simple, "video_id").to_owned();
    let said = notice(&browser, "video", &simple, "concluído").await;
    assert!(said.contains("Histórico"), "the title: {said}");
    let waiting = browser
        .wait_for_text(&listed("video", &avatar), "aguardando aprovação")
        .await;
    assert!(waiting.contains("Cancelar"), "{waiting}");
    assert!(browser.find(&listed("video", &simple)).await.is_none());
    assert!(browser.displayed(&history).await);

    // A failed job's notice carries its error.
    let failing = app.create_briefing(&token, "[fail] Painel").await;
    let failing = str_of(&failing, "briefing_id").to_owned();
    let said = notice(&browser, "briefing", &failing, WORKER_ERROR).await;
    assert!(
        said.contains(&format!("[fail] Painel”: falhou: {WORKER_ERROR}")),
        "{said}"
    );

    // Cancelled with its own button.
    let mine = app.select(&token, option_of(&briefing, "simple")).await;
    let mine = str_of(&mine, "video_id").to_owned();
    let button = browser
        .wait_for(&format!("{} button", listed("video", &mine)))
        .await;
    browser.click(&button).await;
    notice(&browser, "video", &mine, "Cancelado pelo usuário").await;

    // Cancelar tudo takes the waiting video and a running one.
    let other = app.select(&token, option_of(&briefing, "simple")).await;
    let other = str_of(&other, "video_id").to_owned();
    browser.wait_for(&listed("video", &other)).await;
    assert!(
        browser.find(&listed("video", &avatar)).await.is_some(),
        "still waiting for approval, still listed"
    );
    let all = browser.wait_for("#cancel-all").await;
    browser.click(&all).await;
    let confirm = browser.wait_for("#confirm-yes").await;
    browser.click(&confirm).await;
    for hash in [&avatar, &other] {
        notice(&browser, "video", hash, "Cancelado por “Cancelar tudo”").await;
    }
    let newest = browser.wait_for("#notices li").await;
    let text = browser.text(&newest).await;
    assert!(text.contains("Cancelar tudo"), "newest first: {text}");
    browser
        .screenshot(&shots().join("dashboard-history.png"))
        .await;

    // Another user's link opened in the same tab: no reload, the new token takes effect at once
    // and leaves the address bar, and the old user's history goes with the old token.
    let token2 = app.token(2);
    let theirs = app.briefing_with_options(&token2, "Outra conta").await;
    let theirs = app.select(&token2, option_of(&theirs, "avatar")).await;
    let theirs = str_of(&theirs, "video_id").to_owned();
    browser.exec("window.samePage = true; return null").await;
    browser
        .goto(&format!("{}/#token={token2}", app.address))
        .await;
    browser.wait_for(&listed("video", &theirs)).await;
    assert_eq!(browser.exec("return window.samePage === true").await, true);
    token_taken(&browser, &token2).await;
    assert!(
        !browser.displayed(&history).await,
        "user 1's history is gone"
    );
    let (_, cancelled) = app.post(&format!("/videos/{theirs}/cancel"), &token2).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    notice(&browser, "video", &theirs, "Cancelado pelo usuário").await;

    browser.quit().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_server_times_out_stays_in_the_history_with_the_servers_words() {
    let durations = Durations {
        options_secs: 0.3,
        video_secs: 60.0,
        video_steps: 60,
    };
    let queue = unique_queue("dashboard-timeout");
    let _worker = Worker::start(&redis_url(DB), &queue, durations, &[]).await;
    // Videos are timed out a second after they start; briefings are left alone.
    let app = CeleryApp::spawn_with(Backend::Postgres, DB, &queue, &VIDEO_TIMES_OUT).await;
    let token = app.token(1);
    let briefing = app.briefing_with_options(&token, "Longo demais").await;
    let browser = Browser::start(375).await;
    browser
        .goto(&format!("{}/#token={token}", app.address))
        .await;
    browser.wait_for("#connection.live").await;
    let video = app.select(&token, option_of(&briefing, "simple")).await;
    let hash = str_of(&video, "video_id").to_owned();
    browser.wait_for(&listed("video", &hash)).await;
    let said = notice(&browser, "video", &hash, "automaticamente").await;
    let (_, row) = app.get(&format!("/videos/{hash}/status"), &token).await;
    let written = str_of(&row, "error_message");
    assert_eq!(written, "Cancelado automaticamente: tempo limite excedido");
    assert!(
        said.contains("“Longo demais") && said.ends_with(&format!("”: {written}.")),
        "{said}"
    );
    assert!(browser.find(&listed("video", &hash)).await.is_none());

    // A reload keeps the session's history.
    browser.goto(&format!("{}/", app.address)).await;
    browser.wait_for("#connection.live").await;
    let again = notice(&browser, "video", &hash, "automaticamente").await;
    assert_eq!(again, said);

    browser.quit().await;
    app.cleanup().await;
}

/// An `ensinalab-api` process on the zero-setup default (a SQLite file, the in-process
/// broker) on `port`.
fn server(port: u16, database_url: &str) -> ServerProcess {
    ServerProcess::start_on(
        port,
        &[
            ("DATABASE_URL", database_url),
            // Options that take long enough to stay in flight through the restart.
            ("LOCAL_OPTIONS_SECS", "600"),
            // Stuck after a second, and never cancelled for it: the page must say "travado".
            ("TASK_TIME_LIMIT_SECS", "1"),
            ("AUTO_CANCEL_FACTOR", "0"),
        ],
    )
}

/// `POST /briefings` once the server is up; the task id.
async fn create(server: &ServerProcess, token: &str, title: &str) -> String {
    server.ready().await;
    let created = server.http.create_briefing(token, title).await;
    str_of(&created, "task_id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reconnects_by_itself_after_the_server_restarts() {
    let port = free_port();
    let db = TestDb::on_disk(Backend::Sqlite).await;
    let base = format!("http://127.0.0.1:{port}");
    let token = authenticator().mint(1, false, 600).expect("token");
    let client = reqwest::Client::new();

    let server = server(port, db.url());
    let before = create(&server, &token, "Antes do reinício").await;
    // Without a token in the address, the page asks for one; pasted and sent with Enter.
    let browser = Browser::start(375).await;
    browser.goto(&format!("{base}/")).await;
    let field = browser.wait_for("#token").await;
    assert!(browser.displayed(&field).await, "the token field shows");
    browser.keys(&field, &format!("{token}{ENTER}")).await;
    browser
        .wait_for(&format!(r#"li[data-task-id="{before}"]"#))
        .await;

    // Past its time limit before the restart, so the snapshot after it says so.
    browser
        .until("the server flags the job stuck", |_| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let list: serde_json::Value = client
                    .get(format!("{base}/tasks/active"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (list["tasks"][0]["elapsed_time"]["is_stuck"] == true).then_some(())
            }
        })
        .await;
    server.stop();
    browser
        .until("the page says it is reconnecting", |b| async move {
            let el = b.find("#connection").await?;
            b.text(&el).await.starts_with("Reconectando").then_some(())
        })
        .await;

    let server = self::server(port, db.url());
    let after = create(&server, &token, "Depois do reinício").await;
    // No reload: the page reconnected, got a snapshot and then the new job.
    browser
        .wait_for(&format!(r#"li[data-task-id="{after}"]"#))
        .await;
    browser.wait_for("#connection.live").await;
    let again = browser
        .find(&format!(r#"li[data-task-id="{before}"]"#))
        .await
        .expect("the job still in flight is listed again");
    let text = browser.text(&again).await;
    assert!(
        text.contains("travado"),
        "stuck past TASK_TIME_LIMIT_SECS: {text}"
    );
    browser.quit().await;
    drop(server);
}
