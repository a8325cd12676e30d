//! The OpenAPI document's frame (title, description, security schemes) and the route that serves
//! it; its paths and schemas are generated from the handlers' annotations and the wire types
//! (`routes::openapi_document`).

use crate::routes::openapi_document;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's frame; `routes::api` adds every operation and the schemas they name.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warden governance server",
        version = "1",
        description = "Devices enroll, fetch the signed policy, upload events of every kind (each upload also \
            their heartbeat), file exception requests and long-poll for decisions; admins upload policy and decide \
            requests. Every error is an ApiError body. Device routes take the device token as `Authorization: \
            Bearer`. Admin routes accept the admin token (`Authorization: Bearer`) or a signed-in account's session \
            cookie; with a session every changing request carries X-CSRF-Token, and the account's role (admin, \
            approver, auditor, developer) limits what it may do (403 role_forbids).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    // Types only query parameters name (the operations' bodies register the rest).
    components(schemas(crate::export::Format, warden_api::EventKind)),
    modifiers(&BearerSchemes),
)]
pub struct ApiDoc;

/// The two bearer credentials: `device` (from `/api/v1/enroll`) and `admin` (the break-glass
/// admin token; a session cookie is accepted on the same routes).
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build(),
            )
        };
        components.add_security_scheme("device", bearer("Device token from /api/v1/enroll"));
        components.add_security_scheme(
            "admin",
            bearer("Admin token (WARDEN_ADMIN_TOKEN, or printed at first start), or a signed-in account's session"),
        );
    }
}

/// What every admin route may answer before its handler runs: the credential (session, admin token,
/// API token) and the role. A description only — never built; an operation lists it beside its
/// own answers (`responses(…, AdminAuthErrors)`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AdminAuthErrors {
    #[response(status = 401, description = "Not signed in, or a missing, unknown, expired or revoked token")]
    Unauthorized(warden_api::ApiError),
    #[response(
        status = 403,
        description = "A device token on an admin route, a role that may not do this (`role_forbids`), a changing request without the session's X-CSRF-Token, or an action only a signed-in person may take (`person_required`, `sign_in_required`)"
    )]
    Forbidden(warden_api::ApiError),
}

/// What every device route may answer before its handler runs. A description only — never built.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum DeviceAuthErrors {
    #[response(status = 401, description = "Missing, unknown or revoked device token")]
    Unauthorized(warden_api::ApiError),
}

/// The document as JSON text, made once.
pub fn openapi_json() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| openapi_document().to_pretty_json().expect("the OpenAPI document serializes"))
}

/// `GET /api/v1/openapi.json`
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "public",
    summary = "This description",
    responses(
        (status = 200, description = "OpenAPI 3.1 document", body = serde_json::Value),
    ),
)]
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], openapi_json())
}
