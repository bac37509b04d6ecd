//! The dashboard: one page and its assets, compiled into the binary (no CDN, no build
//! step). The page holds no data: it signs in with a token the user brings and reads
//! everything through the API, the live stream first.

use actix_web::HttpResponse;
use actix_web::http::header;

const PAGE: &str = include_str!("../../assets/dashboard.html");
const SCRIPT: &str = include_str!("../../assets/dashboard.js");
const STYLE: &str = include_str!("../../assets/dashboard.css");
const ICON: &str = include_str!("../../assets/favicon.svg");

/// Only the page's own script, style and API: nothing inline, nothing from elsewhere, never in
/// a frame.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

/// `GET /`: the page.
pub async fn dashboard() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /dashboard.js`.
pub async fn dashboard_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard.css`.
pub async fn dashboard_css() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /favicon.ico`: an SVG under the name browsers ask for by themselves, so that no
/// browser's console shows a 404 and no second icon format is kept in step.
pub async fn favicon() -> HttpResponse {
    asset("image/svg+xml", ICON)
}
