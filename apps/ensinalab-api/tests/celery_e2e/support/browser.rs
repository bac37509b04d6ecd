//! Headless Chromium driven over the W3C WebDriver protocol (Debian's `chromedriver`,
//! scripts/ensure-chromium.sh installs it), with the HTTP client the tests already have.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::servers::free_port;

/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session, ended (and its driver stopped) when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    client: reqwest::Client,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts `chromedriver` on a free port and a headless Chromium `width` px wide.
    pub async fn start(width: u32) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver on PATH (scripts/ensure-chromium.sh)");
        let client = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while client.get(format!("{root}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=800,900"],
                // A phone's viewport: headless windows have a minimum width of their own.
                "mobileEmulation": {"deviceMetrics": {"width": width, "height": 800, "pixelRatio": 1}}
            }
        }}});
        let session: Value = client
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .expect("session request")
            .json()
            .await
            .expect("session body");
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"));
        Self {
            base: format!("{root}/session/{id}"),
            driver,
            client,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res: Value = req
            .send()
            .await
            .expect("webdriver request")
            .json()
            .await
            .expect("webdriver body");
        res["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        let v = self
            .call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
        assert!(v.is_null(), "{v}");
    }

    pub async fn url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str().expect("url").to_owned()
    }

    /// Runs `script` (a function body) in the page and returns its result.
    pub async fn exec(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().map(|id| Element(id.to_owned()))
    }

    /// Waits until an element matches `css` (20 s at most, a guard against a hang).
    pub async fn wait_for(&self, css: &str) -> Element {
        self.until(css, |b| async move { b.find(css).await }).await
    }

    /// Waits until `check` gives `Some` (20 s at most), naming `what` if it never does.
    pub async fn until<'a, T, F, Fut>(&'a self, what: &str, check: F) -> T
    where
        F: Fn(&'a Self) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = check(self).await {
                return v;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "never: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an element matches `css` and its text holds `needle`; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        self.until(&format!("{css} says {needle:?}"), |b| async move {
            let el = b.find(css).await?;
            Some(b.text(&el).await).filter(|t| t.contains(needle))
        })
        .await
    }

    pub async fn text(&self, el: &Element) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/text", el.0),
                None,
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    pub async fn property(&self, el: &Element, name: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/property/{name}", el.0),
            None,
        )
        .await
    }

    /// Whether `el` is shown (not `hidden`, not `display: none`).
    pub async fn displayed(&self, el: &Element) -> bool {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/displayed", el.0),
            None,
        )
        .await
        .as_bool()
        .expect("displayed")
    }

    pub async fn click(&self, el: &Element) {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/click", el.0),
                Some(json!({})),
            )
            .await;
        assert!(v.is_null(), "click: {v}");
    }

    /// Focuses `el` and types `keys` into it (`"\u{E007}"` is Enter).
    pub async fn keys(&self, el: &Element, keys: &str) {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/value", el.0),
                Some(json!({"text": keys})),
            )
            .await;
        assert!(v.is_null(), "keys: {v}");
    }

    /// Saves a PNG of the page to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 png"))
            .expect("png");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("screenshot written");
    }
}

impl Browser {
    /// Ends the session (Chromium exits), then the driver.
    pub async fn quit(self) {
        let _ = self.client.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
