//! Every route, in one table: the router is built from it and the OpenAPI test compares it
//! with `openapi.json`, so neither can gain a route the other lacks.

use crate::failure::Failure;
use crate::{
    AppState, accounts, admin_audit, admin_page, alerts, devices, enrollment, events, exceptions, fleet, inventory,
    oidc, openapi, policies, retention, wait,
};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post, put};
use serde::Serialize;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Access {
    Public,
    Device,
    Admin,
    /// The admin page's static files (not part of the API description).
    Page,
}

/// (method, path, access) of every route; [`app`] serves exactly these.
pub const ROUTE_TABLE: &[(&str, &str, Access)] = &[
    ("GET", "/", Access::Page),
    ("GET", "/admin", Access::Page),
    ("GET", "/admin/app.js", Access::Page),
    ("GET", "/admin/app.css", Access::Page),
    ("GET", "/admin/fleet.js", Access::Page),
    ("GET", "/admin/vendor/uPlot.iife.min.js", Access::Page),
    ("GET", "/admin/vendor/uPlot.min.css", Access::Page),
    ("GET", "/api/v1/health", Access::Public),
    ("GET", "/api/v1/openapi.json", Access::Public),
    ("POST", "/api/v1/enroll", Access::Public),
    ("POST", "/api/v1/session", Access::Public),
    ("GET", "/api/v1/session", Access::Public),
    ("DELETE", "/api/v1/session", Access::Public),
    ("GET", "/api/v1/session/methods", Access::Public),
    ("GET", "/api/v1/session/oidc", Access::Public),
    ("GET", "/api/v1/session/oidc/callback", Access::Public),
    ("GET", "/api/v1/device/me", Access::Device),
    ("POST", "/api/v1/device/token", Access::Device),
    ("GET", "/api/v1/device/signing-keys", Access::Device),
    ("GET", "/api/v1/device/policy", Access::Device),
    ("POST", "/api/v1/device/events", Access::Device),
    ("GET", "/api/v1/device/exceptions", Access::Device),
    ("POST", "/api/v1/device/exceptions", Access::Device),
    ("GET", "/api/v1/device/exceptions/{id}", Access::Device),
    ("POST", "/api/v1/device/exceptions/{id}/withdraw", Access::Device),
    ("GET", "/api/v1/device/wait", Access::Device),
    ("PUT", "/api/v1/device/inventory", Access::Device),
    ("GET", "/api/v1/admin/policies", Access::Admin),
    ("POST", "/api/v1/admin/policies", Access::Admin),
    ("GET", "/api/v1/admin/policies/active", Access::Admin),
    ("POST", "/api/v1/admin/policies/{version}/activate", Access::Admin),
    ("GET", "/api/v1/admin/devices", Access::Admin),
    ("POST", "/api/v1/admin/devices/{id}/revoke", Access::Admin),
    ("GET", "/api/v1/admin/devices/{id}/inventory", Access::Admin),
    ("GET", "/api/v1/admin/events", Access::Admin),
    ("GET", "/api/v1/admin/inventory", Access::Admin),
    ("GET", "/api/v1/admin/event-counts", Access::Admin),
    ("GET", "/api/v1/admin/exceptions", Access::Admin),
    ("POST", "/api/v1/admin/exceptions/{id}/approve", Access::Admin),
    ("POST", "/api/v1/admin/exceptions/{id}/deny", Access::Admin),
    ("POST", "/api/v1/admin/exceptions/{id}/revoke", Access::Admin),
    ("GET", "/api/v1/admin/exceptions/{id}/audit", Access::Admin),
    ("GET", "/api/v1/admin/audit", Access::Admin),
    ("GET", "/api/v1/admin/overview", Access::Admin),
    ("GET", "/api/v1/admin/tools", Access::Admin),
    ("GET", "/api/v1/admin/tools/{id}", Access::Admin),
    ("GET", "/api/v1/admin/exceptions/report", Access::Admin),
    ("GET", "/api/v1/admin/alerts", Access::Admin),
    ("GET", "/api/v1/admin/admin-audit", Access::Admin),
    ("POST", "/api/v1/admin/enrollment-codes", Access::Admin),
];

fn handler(method: &str, path: &str) -> MethodRouter<AppState> {
    match (method, path) {
        ("GET", "/") => get(admin_page::root),
        ("GET", "/admin") => get(admin_page::index),
        ("GET", "/admin/app.js") => get(admin_page::script),
        ("GET", "/admin/app.css") => get(admin_page::style),
        ("GET", "/admin/fleet.js") => get(admin_page::fleet_script),
        ("GET", "/admin/vendor/uPlot.iife.min.js") => get(admin_page::chart_script),
        ("GET", "/admin/vendor/uPlot.min.css") => get(admin_page::chart_style),
        ("GET", "/api/v1/health") => get(health),
        ("GET", "/api/v1/openapi.json") => get(openapi::serve),
        ("POST", "/api/v1/enroll") => post(enrollment::enroll),
        ("POST", "/api/v1/session") => post(accounts::sign_in),
        ("GET", "/api/v1/session") => get(accounts::current),
        ("DELETE", "/api/v1/session") => axum::routing::delete(accounts::sign_out),
        ("GET", "/api/v1/session/methods") => get(oidc::methods),
        ("GET", "/api/v1/session/oidc") => get(oidc::begin),
        ("GET", "/api/v1/session/oidc/callback") => get(oidc::finish),
        ("GET", "/api/v1/device/me") => get(devices::me),
        ("POST", "/api/v1/device/token") => post(enrollment::rotate_token),
        ("GET", "/api/v1/device/signing-keys") => get(policies::signing_keys),
        ("GET", "/api/v1/device/policy") => get(policies::fetch),
        ("POST", "/api/v1/device/events") => post(events::upload),
        ("GET", "/api/v1/device/exceptions") => get(exceptions::list_own),
        ("POST", "/api/v1/device/exceptions") => post(exceptions::create),
        ("GET", "/api/v1/device/exceptions/{id}") => get(exceptions::get_own),
        ("POST", "/api/v1/device/exceptions/{id}/withdraw") => post(exceptions::withdraw),
        ("GET", "/api/v1/device/wait") => get(wait::wait),
        ("PUT", "/api/v1/device/inventory") => put(inventory::put),
        ("GET", "/api/v1/admin/policies") => get(policies::list),
        ("POST", "/api/v1/admin/policies") => post(policies::upload),
        ("GET", "/api/v1/admin/policies/active") => get(policies::active),
        ("POST", "/api/v1/admin/policies/{version}/activate") => post(policies::activate),
        ("GET", "/api/v1/admin/devices") => get(devices::list),
        ("POST", "/api/v1/admin/devices/{id}/revoke") => post(devices::revoke),
        ("GET", "/api/v1/admin/devices/{id}/inventory") => get(inventory::history),
        ("GET", "/api/v1/admin/events") => get(events::query),
        ("GET", "/api/v1/admin/inventory") => get(inventory::list),
        ("GET", "/api/v1/admin/event-counts") => get(retention::list),
        ("GET", "/api/v1/admin/exceptions") => get(exceptions::list_all),
        ("POST", "/api/v1/admin/exceptions/{id}/approve") => post(exceptions::approve),
        ("POST", "/api/v1/admin/exceptions/{id}/deny") => post(exceptions::deny),
        ("POST", "/api/v1/admin/exceptions/{id}/revoke") => post(exceptions::revoke),
        ("GET", "/api/v1/admin/exceptions/{id}/audit") => get(exceptions::audit_of),
        ("GET", "/api/v1/admin/audit") => get(exceptions::audit_recent),
        ("GET", "/api/v1/admin/overview") => get(fleet::overview),
        ("GET", "/api/v1/admin/tools") => get(fleet::tools),
        ("GET", "/api/v1/admin/tools/{id}") => get(fleet::footprint),
        ("GET", "/api/v1/admin/exceptions/report") => get(fleet::exception_report),
        ("GET", "/api/v1/admin/alerts") => get(alerts::list),
        ("GET", "/api/v1/admin/admin-audit") => get(admin_audit::list),
        ("POST", "/api/v1/admin/enrollment-codes") => post(enrollment::create_code),
        // The table and this match are side by side; a test builds the router, so a missing
        // arm fails every test at once.
        _ => unreachable!("route {method} {path} is in ROUTE_TABLE without a handler"),
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    backend: &'static str,
    version: &'static str,
}

async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> axum::Json<Health> {
    axum::Json(Health { status: "ok", backend: state.store.backend.name(), version: env!("CARGO_PKG_VERSION") })
}

/// Headers every response carries, API and page alike: scripts and styles only from this server
/// (no inline code, so text a device sent can never run on the admin page even if it slipped past
/// the page's encoding), no framing, no content sniffing, no referrer.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Adds [`SECURITY_HEADERS`] to a response.
async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut response = next.run(request).await;
    for (name, value) in SECURITY_HEADERS {
        response.headers_mut().insert(*name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let mut router = Router::new();
    for (method, path, _) in ROUTE_TABLE {
        router = router.route(path, handler(method, path));
    }
    router
        .fallback(|| async { Failure::not_found("route") })
        .method_not_allowed_fallback(|| async {
            Failure::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}
