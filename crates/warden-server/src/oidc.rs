//! Signing in through the company's identity provider with OpenID Connect (the `openidconnect`
//! crate; only here): authorization code flow with PKCE, a nonce and a one-time state, the ID
//! token verified against the provider's published keys, its groups claim mapped to a role.
//!
//! `GET /session/oidc` sends the browser to the provider; the provider sends it back to
//! `GET /session/oidc/callback`, which starts an ordinary session (`accounts::start_session`)
//! for the account the provider vouched for. The login's state lives in the database
//! (`oidc_logins`, hashed, 10 minutes), so any replica can finish a login another began.

use crate::accounts::{self, Role};
use crate::auth::token_hash;
use crate::extract::QueryParams;
use crate::failure::{Answer, Failure};
use crate::{AppState, now};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use serde::Serialize;
use std::future::Future;

/// How long a started login may take at the provider, in seconds.
const LOGIN_SECONDS: i64 = 600;

/// The identity provider, as configured.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer URL (`https://login.corp.example/realms/corp`); its discovery document is read
    /// at the first sign-in.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The claim holding the person's groups (default `groups`).
    pub groups_claim: String,
    /// (group, role): a member of several gets the most powerful; members of none are
    /// developers (they may enroll their own devices).
    pub roles: Vec<(String, Role)>,
    /// What the sign-in button says.
    pub label: String,
}

/// The discovered provider, kept after the first sign-in.
#[derive(Debug, Default)]
pub struct Discovered(tokio::sync::OnceCell<CoreProviderMetadata>);

/// The HTTP client the flow uses: this server's reqwest, redirects off (the crate's advice:
/// a provider must not be able to bounce the server to another address).
fn http_client() -> Answer<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(Failure::internal)
}

/// `openidconnect`'s HTTP interface over reqwest: a function of the request whose future owns
/// its client (a clone: one connection pool).
fn fetcher(
    http: &reqwest::Client,
) -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send>> {
    let http = http.clone();
    move |request| {
        let http = http.clone();
        Box::pin(async move { send(http, request).await })
    }
}

async fn send(
    http: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let response = http.execute(reqwest::Request::try_from(request)?).await?;
    let mut answer = axum::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(answer.body(body).expect("a status and headers from a response make a response"))
}

fn settings(state: &AppState) -> Answer<&OidcSettings> {
    state.oidc.as_ref().ok_or_else(|| {
        Failure::new(StatusCode::NOT_FOUND, "oidc_not_configured", "this server has no identity provider configured")
    })
}

async fn provider<'a>(state: &'a AppState, http: &reqwest::Client) -> Answer<&'a CoreProviderMetadata> {
    let settings = settings(state)?;
    state
        .oidc_provider
        .0
        .get_or_try_init(|| async {
            let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(Failure::internal)?;
            CoreProviderMetadata::discover_async(issuer, &fetcher(http)).await.map_err(|error| {
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    "identity_provider_unreachable",
                    format!("the identity provider {} could not be read: {error}", settings.issuer),
                )
            })
        })
        .await
}

fn redirect_url(state: &AppState, headers: &axum::http::HeaderMap) -> Answer<RedirectUrl> {
    let base = crate::enrollment::public_url(state, headers)?;
    RedirectUrl::new(format!("{base}/api/v1/session/oidc/callback")).map_err(Failure::internal)
}

fn see_other(location: &str) -> Answer<Response> {
    let location = HeaderValue::from_str(location).map_err(Failure::internal)?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

/// The client as discovery leaves it: authorization and token endpoints (the user-info one maybe).
type DiscoveredClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// This server as the provider's client, answering at the callback under the public URL.
async fn client(state: &AppState, headers: &axum::http::HeaderMap, http: &reqwest::Client) -> Answer<DiscoveredClient> {
    let settings = settings(state)?;
    let metadata = provider(state, http).await?.clone();
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    )
    .set_redirect_uri(redirect_url(state, headers)?))
}

/// `GET /api/v1/session/oidc`: begins a sign-in at the identity provider.
#[utoipa::path(
    get,
    path = "/api/v1/session/oidc",
    tag = "session",
    summary = "Begin signing in at the company's identity provider (OpenID Connect, code flow with PKCE)",
    responses(
        (status = 303, description = "To the identity provider (or, after the callback, to the console)", headers(("Location" = String, description = "Where the browser goes next"))),
        (status = 404, description = "No identity provider configured (`oidc_not_configured`)", body = warden_api::ApiError),
        (status = 502, description = "The identity provider could not be read (`identity_provider_unreachable`)", body = warden_api::ApiError),
    ),
)]
pub async fn begin(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Answer<Response> {
    let settings = settings(&state)?;
    let http = http_client()?;
    let client = client(&state, &headers, &http).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new(settings.groups_claim.clone()))
        .set_pkce_challenge(challenge)
        .url();
    let now = now();
    {
        let _writer = state.store.write_guard().await;
        sqlx::query("DELETE FROM oidc_logins WHERE created_at <= $1")
            .bind(now - LOGIN_SECONDS)
            .execute(&state.store.pool)
            .await?;
        sqlx::query("INSERT INTO oidc_logins (state_hash, verifier, nonce, created_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash(csrf.secret()))
            .bind(verifier.secret())
            .bind(nonce.secret())
            .bind(now)
            .execute(&state.store.pool)
            .await?;
    }
    see_other(url.as_str())
}

/// The provider's answer.
#[derive(Debug, Deserialize)]
pub struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    /// Set when the provider refused (the person cancelled, no access).
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

fn refused(message: impl Into<String>) -> Failure {
    Failure::new(StatusCode::FORBIDDEN, "oidc_refused", message)
}

/// `GET /api/v1/session/oidc/callback`: finishes the sign-in and opens the console.
#[utoipa::path(
    get,
    path = "/api/v1/session/oidc/callback",
    tag = "session",
    summary = "The identity provider's answer: starts a session and opens the console",
    params(
        ("code" = Option<String>, Query),
        ("state" = Option<String>, Query),
        ("error" = Option<String>, Query),
        ("error_description" = Option<String>, Query),
    ),
    responses(
        (status = 303, description = "Signed in: to the console, with the session cookie", headers(("Location" = String, description = "/admin?signed-in"), ("Set-Cookie" = String, description = "The session (HttpOnly, SameSite=Strict)"))),
        (status = 400, description = "Malformed query", body = warden_api::ApiError),
        (status = 403, description = "The provider refused, the login is unknown, used or too old, or the token does not verify (`oidc_refused`); a disabled account (`account_disabled`)", body = warden_api::ApiError),
        (status = 404, description = "No identity provider configured (`oidc_not_configured`)", body = warden_api::ApiError),
        (status = 422, description = "No code or state", body = warden_api::ApiError),
        (status = 502, description = "The identity provider could not be read", body = warden_api::ApiError),
    ),
)]
pub async fn finish(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    QueryParams(callback): QueryParams<Callback>,
) -> Answer<Response> {
    let settings = settings(&state)?;
    if let Some(error) = &callback.error {
        let detail = callback.error_description.as_deref().unwrap_or("");
        return Err(refused(format!("the identity provider said {error}: {detail}")));
    }
    let (Some(code), Some(login)) = (callback.code.as_deref(), callback.state.as_deref()) else {
        return Err(Failure::invalid("code", "the identity provider's answer has no code or state"));
    };
    // One use per login: the row goes whether or not the rest succeeds.
    let row: Option<(String, String, i64)> = {
        let _writer = state.store.write_guard().await;
        let mut transaction = state.store.pool.begin().await?;
        let row = sqlx::query_as("SELECT verifier, nonce, created_at FROM oidc_logins WHERE state_hash = $1")
            .bind(token_hash(login))
            .fetch_optional(&mut *transaction)
            .await?;
        sqlx::query("DELETE FROM oidc_logins WHERE state_hash = $1")
            .bind(token_hash(login))
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        row
    };
    let Some((verifier, nonce, _)) = row.filter(|(_, _, at)| now() - at < LOGIN_SECONDS) else {
        return Err(refused("this sign-in is unknown, used or too old: sign in again"));
    };
    let http = http_client()?;
    let client = client(&state, &headers, &http).await?;
    let fetch = fetcher(&http);
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(Failure::internal)?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&fetch)
        .await
        .map_err(|error| refused(format!("the identity provider did not accept the code: {error}")))?;
    let id_token = tokens.id_token().ok_or_else(|| refused("the identity provider sent no ID token"))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce))
        .map_err(|error| refused(format!("the ID token does not verify: {error}")))?;
    let name = claims
        .email()
        .map(|email| email.as_str().to_owned())
        .or_else(|| claims.preferred_username().map(|name| name.as_str().to_owned()))
        .unwrap_or_else(|| claims.subject().as_str().to_owned());
    let name = accounts::normalized_name(&name).map_err(|e| refused(e.to_string()))?;
    // The token verified above; its payload also carries the groups claim, which the crate's
    // standard claims do not model.
    let groups = groups_of(&id_token.to_string(), &settings.groups_claim);
    let role = role_for(&settings.roles, &groups);
    let role = accounts::sign_in_from_provider(&state.store, &name, role, now()).await?;
    let (cookie, _) = accounts::start_session(&state, name, role).await?;
    let mut answer = see_other("/admin?signed-in")?;
    answer.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(answer)
}

/// The string values of `claim` in a (verified) JWT's payload: a list of groups, or one.
fn groups_of(jwt: &str, claim: &str) -> Vec<String> {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else {
        return Vec::new();
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    match &value[claim] {
        serde_json::Value::Array(items) => items.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
        serde_json::Value::String(one) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// The most powerful role any of `groups` maps to; none: developer.
fn role_for(roles: &[(String, Role)], groups: &[String]) -> Role {
    roles
        .iter()
        .filter(|(group, _)| groups.iter().any(|g| g == group))
        .map(|(_, role)| *role)
        .max_by_key(|role| role.rank())
        .unwrap_or(Role::Developer)
}

/// `GET /api/v1/session/methods`: how people sign in here (the console shows the buttons).
#[utoipa::path(
    get,
    path = "/api/v1/session/methods",
    tag = "session",
    summary = "How people sign in here",
    responses(
        (status = 200, description = "The sign-in methods", body = crate::oidc::SignInMethods),
    ),
)]
pub async fn methods(State(state): State<AppState>) -> axum::Json<SignInMethods> {
    axum::Json(SignInMethods {
        password: true,
        oidc: state.oidc.as_ref().map(|sign_in| ProviderButton { label: sign_in.label.clone() }),
    })
}

/// `GET /api/v1/session/methods`' answer: `{"password": true, "oidc": {"label": "Corp SSO"} | null}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignInMethods {
    /// Local accounts sign in with a password (always offered: the break-glass path).
    pub password: bool,
    /// The identity provider's button, when `--oidc-issuer` is set.
    pub oidc: Option<ProviderButton>,
}

/// The console's button for the identity provider.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderButton {
    /// `--oidc-label` (`Company SSO` by default).
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_the_most_powerful_role() {
        let roles = vec![("sec-approvers".to_owned(), Role::Approver), ("warden-admins".to_owned(), Role::Admin)];
        let cases: [(&[&str], Role); 4] = [
            (&[], Role::Developer),
            (&["engineering"], Role::Developer),
            (&["sec-approvers"], Role::Approver),
            (&["sec-approvers", "warden-admins"], Role::Admin),
        ];
        for (groups, role) in cases {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            assert_eq!(role_for(&roles, &groups), role, "{groups:?}");
        }
    }

    #[test]
    fn groups_are_read_from_the_token_payload() {
        let encode = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let jwt = format!("h.{}.s", encode(r#"{"sub":"a","groups":["x","y"],"team":"z","n":3}"#));
        assert_eq!(groups_of(&jwt, "groups"), ["x", "y"]);
        assert_eq!(groups_of(&jwt, "team"), ["z"]);
        assert!(groups_of(&jwt, "n").is_empty() && groups_of(&jwt, "missing").is_empty());
        assert!(groups_of("not a token", "groups").is_empty());
    }
}
