//! Every route, once: each API handler's `#[utoipa::path]` names its method, path, access
//! (`security`) and answers; the router and the OpenAPI document are both built from those
//! annotations, so neither can gain a route the other lacks.

use crate::failure::Failure;
use crate::{
    AppState, accounts, admin_audit, admin_page, alerts, api_tokens, devices, enrollment, events, exceptions, fleet,
    inventory, oidc, openapi, policies, retention, wait,
};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::PathItem;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Who may call a route: read from the operation's `security` (`device`, `admin`, none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Access {
    Public,
    Device,
    Admin,
    /// The admin page's static files (not part of the API description).
    Page,
}

/// One route as the tests walk them: method, path, who may call it.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub access: Access,
}

/// The admin page's files: plain routes, outside the API description.
const PAGES: [&str; 7] = [
    "/",
    "/admin",
    "/admin/app.js",
    "/admin/app.css",
    "/admin/fleet.js",
    "/admin/vendor/uPlot.iife.min.js",
    "/admin/vendor/uPlot.min.css",
];

fn pages() -> Router<AppState> {
    Router::new()
        .route(PAGES[0], get(admin_page::root))
        .route(PAGES[1], get(admin_page::index))
        .route(PAGES[2], get(admin_page::script))
        .route(PAGES[3], get(admin_page::style))
        .route(PAGES[4], get(admin_page::fleet_script))
        .route(PAGES[5], get(admin_page::chart_script))
        .route(PAGES[6], get(admin_page::chart_style))
}

/// Every API handler, each with its operation.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi::serve))
        .routes(routes!(enrollment::enroll))
        .routes(routes!(accounts::sign_in, accounts::current, accounts::sign_out))
        .routes(routes!(oidc::methods))
        .routes(routes!(oidc::begin))
        .routes(routes!(oidc::finish))
        .routes(routes!(devices::me))
        .routes(routes!(enrollment::rotate_token))
        .routes(routes!(policies::signing_keys))
        .routes(routes!(policies::fetch))
        .routes(routes!(events::upload))
        .routes(routes!(exceptions::list_own, exceptions::create))
        .routes(routes!(exceptions::get_own))
        .routes(routes!(exceptions::withdraw))
        .routes(routes!(wait::wait))
        .routes(routes!(inventory::put))
        .routes(routes!(policies::list, policies::upload))
        .routes(routes!(policies::active))
        .routes(routes!(policies::activate))
        .routes(routes!(devices::list))
        .routes(routes!(devices::revoke))
        .routes(routes!(inventory::history))
        .routes(routes!(events::query))
        .routes(routes!(inventory::list))
        .routes(routes!(retention::list))
        .routes(routes!(exceptions::list_all))
        .routes(routes!(exceptions::approve))
        .routes(routes!(exceptions::deny))
        .routes(routes!(exceptions::revoke))
        .routes(routes!(exceptions::audit_of))
        .routes(routes!(exceptions::audit_recent))
        .routes(routes!(fleet::overview))
        .routes(routes!(fleet::tools))
        .routes(routes!(fleet::footprint))
        .routes(routes!(fleet::exception_report))
        .routes(routes!(alerts::list))
        .routes(routes!(admin_audit::list))
        .routes(routes!(enrollment::create_code))
        .routes(routes!(api_tokens::list, api_tokens::create))
        .routes(routes!(api_tokens::revoke))
}

/// The API's OpenAPI 3.1 document, generated from the handlers' annotations and the wire types.
pub fn openapi_document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| api().into_openapi())
}

/// Every route, API and page: the tests walk this list (who may call what, garbage to each).
pub fn routes() -> Vec<Route> {
    let mut all: Vec<Route> =
        PAGES.iter().map(|path| Route { method: "GET".into(), path: (*path).into(), access: Access::Page }).collect();
    for (path, item) in &openapi_document().paths.paths {
        for (method, operation) in operations(item) {
            let security = serde_json::to_value(&operation.security).unwrap_or_default();
            let requires = |scheme: &str| security.as_array().into_iter().flatten().any(|r| r.get(scheme).is_some());
            let access = if requires("admin") {
                Access::Admin
            } else if requires("device") {
                Access::Device
            } else {
                Access::Public
            };
            all.push(Route { method: method.into(), path: path.clone(), access });
        }
    }
    all
}

fn operations(item: &PathItem) -> Vec<(&'static str, &utoipa::openapi::path::Operation)> {
    [("GET", &item.get), ("POST", &item.post), ("PUT", &item.put), ("DELETE", &item.delete), ("PATCH", &item.patch)]
        .into_iter()
        .filter_map(|(method, operation)| operation.as_ref().map(|operation| (method, operation)))
        .collect()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    backend: &'static str,
    version: &'static str,
}

#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "public",
    summary = "Liveness and backend",
    responses(
        (status = 200, description = "Up", body = crate::routes::Health),
    ),
)]
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
    let (router, _) = api().split_for_parts();
    router
        .merge(pages())
        .fallback(|| async { Failure::not_found("route") })
        .method_not_allowed_fallback(|| async {
            Failure::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}
