//! The admin web page: static HTML, JavaScript and CSS compiled into the binary. Its security
//! headers (CSP without inline script or style, no framing) are set on every response by
//! `routes::security_headers`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX_HTML: &str = include_str!("../admin/index.html");
const APP_JS: &str = include_str!("../admin/app.js");
const APP_CSS: &str = include_str!("../admin/app.css");

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
