//! The dashboard over HTTP: its page, assets and icon load for anyone, however many anonymous
//! requests an address (a school behind one NAT) has made; and the stream's `listed` tells the
//! page which jobs to keep.

use ensinalab_api::config::{RateLimitBackend, RateLimitConfig};
use reqwest::StatusCode;

use crate::both;
use crate::helpers::{Settings, TestApp};

fn anonymous_quota_of_three() -> Settings {
    Settings {
        rate_limit: RateLimitConfig {
            per_min: 3,
            cancel_per_min: 3,
            backend: RateLimitBackend::Memory,
        },
        ..Settings::default()
    }
}

async fn anonymous_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .send()
        .await
        .expect("request sent")
}

async fn the_page_and_its_assets_load_after_the_anonymous_quota_is_spent(app: &TestApp) {
    let mut spent = false;
    for _ in 0..10 {
        if anonymous_get(app, "/tasks/active").await.status() == StatusCode::TOO_MANY_REQUESTS {
            spent = true;
            break;
        }
    }
    assert!(spent, "the address's quota is spent");
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/dashboard.js", "text/javascript; charset=utf-8"),
        ("/dashboard.css", "text/css; charset=utf-8"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        for _ in 0..5 {
            let res = anonymous_get(app, path).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()["content-type"], content_type, "{path}");
            assert!(
                res.headers().get("ratelimit").is_none(),
                "{path} is not counted"
            );
        }
    }
    let refused = anonymous_get(app, "/tasks/active").await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "data routes stay limited"
    );
}
both!(
    the_page_and_its_assets_load_after_the_anonymous_quota_is_spent,
    anonymous_quota_of_three
);

async fn the_page_links_its_icon_and_the_icon_is_an_svg_of_its_own(app: &TestApp) {
    let page = anonymous_get(app, "/").await.text().await.expect("page");
    assert!(
        page.contains(r#"<link rel="icon" href="/favicon.ico" type="image/svg+xml">"#),
        "{page}"
    );
    let icon = anonymous_get(app, "/favicon.ico").await;
    assert!(
        icon.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .starts_with("default-src 'self'")
    );
    let body = icon.text().await.expect("icon");
    assert!(body.starts_with("<svg"), "{body}");
}
both!(the_page_links_its_icon_and_the_icon_is_an_svg_of_its_own);

async fn a_change_says_whether_the_job_is_still_listed(app: &TestApp) {
    let token = app.token(1);
    let mut sse = app.stream(&token, None).await.expect("stream");
    assert_eq!(sse.expect().await.event, "snapshot");
    app.create_briefing(&token, "Listada").await;
    let created = sse.until(|d| d["change"] == "created").await;
    assert_eq!(created.data["listed"], true, "{}", created.data);
    let ready = sse.until(|d| d["change"] == "options_ready").await;
    assert_eq!(ready.data["listed"], false, "{}", ready.data);
}
both!(a_change_says_whether_the_job_is_still_listed);
