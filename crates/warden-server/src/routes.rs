//! Every route, in one list of (method, path, access, handler): the router is built from it and
//! the OpenAPI test compares it with `openapi.json`, so neither can gain a route the other lacks.

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

/// One route: method, path, who may call it, and its handler.
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route(method: &'static str, path: &'static str, access: Access, handler: MethodRouter<AppState>) -> Route {
    Route { method, path, access, handler }
}

/// Every route, once: [`app`] builds the router from this list, and the tests read it (the OpenAPI
/// test compares it with `openapi.json`, so neither can gain a route the other lacks).
pub fn routes() -> Vec<Route> {
    vec![
        route("GET", "/", Access::Page, get(admin_page::root)),
        route("GET", "/admin", Access::Page, get(admin_page::index)),
        route("GET", "/admin/app.js", Access::Page, get(admin_page::script)),
        route("GET", "/admin/app.css", Access::Page, get(admin_page::style)),
        route("GET", "/admin/fleet.js", Access::Page, get(admin_page::fleet_script)),
        route("GET", "/admin/vendor/uPlot.iife.min.js", Access::Page, get(admin_page::chart_script)),
        route("GET", "/admin/vendor/uPlot.min.css", Access::Page, get(admin_page::chart_style)),
        route("GET", "/api/v1/health", Access::Public, get(health)),
        route("GET", "/api/v1/openapi.json", Access::Public, get(openapi::serve)),
        route("POST", "/api/v1/enroll", Access::Public, post(enrollment::enroll)),
        route("POST", "/api/v1/session", Access::Public, post(accounts::sign_in)),
        route("GET", "/api/v1/session", Access::Public, get(accounts::current)),
        route("DELETE", "/api/v1/session", Access::Public, axum::routing::delete(accounts::sign_out)),
        route("GET", "/api/v1/session/methods", Access::Public, get(oidc::methods)),
        route("GET", "/api/v1/session/oidc", Access::Public, get(oidc::begin)),
        route("GET", "/api/v1/session/oidc/callback", Access::Public, get(oidc::finish)),
        route("GET", "/api/v1/device/me", Access::Device, get(devices::me)),
        route("POST", "/api/v1/device/token", Access::Device, post(enrollment::rotate_token)),
        route("GET", "/api/v1/device/signing-keys", Access::Device, get(policies::signing_keys)),
        route("GET", "/api/v1/device/policy", Access::Device, get(policies::fetch)),
        route("POST", "/api/v1/device/events", Access::Device, post(events::upload)),
        route("GET", "/api/v1/device/exceptions", Access::Device, get(exceptions::list_own)),
        route("POST", "/api/v1/device/exceptions", Access::Device, post(exceptions::create)),
        route("GET", "/api/v1/device/exceptions/{id}", Access::Device, get(exceptions::get_own)),
        route("POST", "/api/v1/device/exceptions/{id}/withdraw", Access::Device, post(exceptions::withdraw)),
        route("GET", "/api/v1/device/wait", Access::Device, get(wait::wait)),
        route("PUT", "/api/v1/device/inventory", Access::Device, put(inventory::put)),
        route("GET", "/api/v1/admin/policies", Access::Admin, get(policies::list)),
        route("POST", "/api/v1/admin/policies", Access::Admin, post(policies::upload)),
        route("GET", "/api/v1/admin/policies/active", Access::Admin, get(policies::active)),
        route("POST", "/api/v1/admin/policies/{version}/activate", Access::Admin, post(policies::activate)),
        route("GET", "/api/v1/admin/devices", Access::Admin, get(devices::list)),
        route("POST", "/api/v1/admin/devices/{id}/revoke", Access::Admin, post(devices::revoke)),
        route("GET", "/api/v1/admin/devices/{id}/inventory", Access::Admin, get(inventory::history)),
        route("GET", "/api/v1/admin/events", Access::Admin, get(events::query)),
        route("GET", "/api/v1/admin/inventory", Access::Admin, get(inventory::list)),
        route("GET", "/api/v1/admin/event-counts", Access::Admin, get(retention::list)),
        route("GET", "/api/v1/admin/exceptions", Access::Admin, get(exceptions::list_all)),
        route("POST", "/api/v1/admin/exceptions/{id}/approve", Access::Admin, post(exceptions::approve)),
        route("POST", "/api/v1/admin/exceptions/{id}/deny", Access::Admin, post(exceptions::deny)),
        route("POST", "/api/v1/admin/exceptions/{id}/revoke", Access::Admin, post(exceptions::revoke)),
        route("GET", "/api/v1/admin/exceptions/{id}/audit", Access::Admin, get(exceptions::audit_of)),
        route("GET", "/api/v1/admin/audit", Access::Admin, get(exceptions::audit_recent)),
        route("GET", "/api/v1/admin/overview", Access::Admin, get(fleet::overview)),
        route("GET", "/api/v1/admin/tools", Access::Admin, get(fleet::tools)),
        route("GET", "/api/v1/admin/tools/{id}", Access::Admin, get(fleet::footprint)),
        route("GET", "/api/v1/admin/exceptions/report", Access::Admin, get(fleet::exception_report)),
        route("GET", "/api/v1/admin/alerts", Access::Admin, get(alerts::list)),
        route("GET", "/api/v1/admin/admin-audit", Access::Admin, get(admin_audit::list)),
        route("POST", "/api/v1/admin/enrollment-codes", Access::Admin, post(enrollment::create_code)),
    ]
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
    for Route { path, handler, .. } in routes() {
        router = router.route(path, handler);
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
