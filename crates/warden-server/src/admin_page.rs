//! The admin web page: static HTML, JavaScript and CSS compiled into the binary. Its security
//! headers (CSP without inline script or style, no framing) are set on every response by
//! `routes::security_headers`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX_HTML: &str = include_str!("../admin/index.html");
const APP_JS: &str = include_str!("../admin/app.js");
const APP_CSS: &str = include_str!("../admin/app.css");
const FLEET_JS: &str = include_str!("../admin/fleet.js");
/// uPlot 1.6.32 (MIT, github.com/leeoniya/uPlot), the console's chart library, as npm ships it in
/// `dist/`; the browser test checks these bytes against the npm package.
const UPLOT_JS: &str = include_str!("../admin/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../admin/vendor/uPlot.min.css");

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /admin/app.css`
pub async fn style() -> Response {
    page("text/css; charset=utf-8", APP_CSS)
}

/// `GET /admin/fleet.js`
pub async fn fleet_script() -> Response {
    page("text/javascript; charset=utf-8", FLEET_JS)
}

/// `GET /admin/vendor/uPlot.iife.min.js`
pub async fn chart_script() -> Response {
    page("text/javascript; charset=utf-8", UPLOT_JS)
}

/// `GET /admin/vendor/uPlot.min.css`
pub async fn chart_style() -> Response {
    page("text/css; charset=utf-8", UPLOT_CSS)
}

/// `GET /admin`
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /admin/app.js`
pub async fn script() -> Response {
    page("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /`: the admin page is the only page.
pub async fn root() -> Redirect {
    Redirect::to("/admin")
}
