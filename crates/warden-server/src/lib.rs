//! Warden's governance server: one source of truth for policy, and where exception requests
//! are filed and decided.
//!
//! [`prepare`] opens the database (SQLite file or PostgreSQL) and bootstraps it; [`run`] serves
//! [`app`] on a listener until a shutdown future completes. Tests bind `127.0.0.1:0` and call
//! both; the `warden-server` binary does the same with its command line.

pub mod accounts;
mod admin_audit;
mod admin_page;
pub mod alerts;
pub mod api_tokens;
mod auth;
mod bootstrap;
pub mod client;
mod devices;
mod enrollment;
mod events;
mod exception_store;
mod exceptions;
mod export;
mod extract;
mod failure;
mod feed;
mod fleet;
mod inventory;
mod limits;
pub mod oidc;
mod openapi;
mod policies;
mod retention;
mod routes;
pub mod seed;
mod store;
pub mod stream;
mod wait;

pub use auth::{ADMIN_TOKEN_PREFIX, DEVICE_TOKEN_PREFIX};
pub use bootstrap::{
    BootstrapError, Bootstrapped, Credentials, MIN_ADMIN_TOKEN_CHARS, MIN_ENROLL_SECRET_CHARS, rotate_signing_key,
};
pub use limits::LimitSettings;
pub use openapi::openapi_json;
pub use routes::{Access, Route, SECURITY_HEADERS, app, openapi_document, routes};
pub use store::{Backend, Store, StoreError, sqlite_path};

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warden_api::PolicySigningKey;

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://PATH?mode=rwc` or `postgres://…`.
    pub database_url: String,
    pub credentials: Credentials,
    /// How often approvals past their expiry are recorded as `expired`.
    pub sweep_interval: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How often devices are expected to sync (each sync is a heartbeat); a device not heard
    /// from for more than two of these is flagged silent. Default 60 s, the devices' default.
    pub sync_interval: Duration,
    /// A connection whose request header has not arrived within this is closed (default 10 s).
    pub header_read_timeout: Duration,
    /// Open connections one client address may hold (default 256; a NAT in front of many devices
    /// needs more: each device holds one long-poll).
    pub max_connections_per_client: usize,
    /// Open connections in all (default: the open-file limit less 128 kept for the database and
    /// the server itself), so a flood can never take the last file descriptor.
    pub max_connections: usize,
    /// Rate limits on enrollment and event uploads.
    pub limits: LimitSettings,
    /// Serve HTTPS with this certificate and key ([`tls_config`]); `None`: plain HTTP.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// PEM certificates enrollment codes carry for devices to pin ([`chain_root_pem`] or
    /// `--enrollment-ca`); `None`: devices trust the system's roots.
    pub enrollment_ca: Option<String>,
    /// The base URL enrollment codes name (`--public-url`); `None`: the `Host` the console was
    /// reached at.
    pub public_url: Option<String>,
    /// Sign-in through the company's identity provider; `None`: local accounts only.
    pub oidc: Option<oidc::OidcSettings>,
    /// Stream events and audit rows to a webhook ([`stream`]); `None`: no stream.
    pub stream: Option<stream::StreamSettings>,
    /// Events older than this are rolled up into daily counts and removed; `None`: kept forever.
    pub retain_events: Option<Duration>,
    /// Thresholds of the alert rules ([`alerts`]).
    pub alert_rules: alerts::AlertRules,
}

/// Reading the TLS certificate or key failed.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// The TLS configuration from a PEM certificate chain and its PEM private key (PKCS#8, PKCS#1 or
/// SEC1), as certbot and most CAs hand them out.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, TlsError> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("{}: no certificate in it", cert.display())));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
    let mut config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError(format!("the certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate devices should pin from a PEM chain file: the last certificate (the issuing
/// CA, as certbot's `fullchain.pem` and most CAs' bundles end) when the chain has more than one;
/// `None` for a lone certificate, which is the leaf — pinning it would cut every device off at the
/// next renewal (give `--enrollment-ca` then, or use a publicly trusted certificate).
pub fn chain_root_pem(cert: &std::path::Path) -> Result<Option<String>, TlsError> {
    let text = std::fs::read_to_string(cert).map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    let blocks = pem_certificates(&text);
    Ok(if blocks.len() > 1 { blocks.last().cloned() } else { None })
}

/// The `CERTIFICATE` blocks of a PEM text, each with its BEGIN and END lines.
pub fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(length) = rest[start..].find(END) else { break };
        blocks.push(format!("{}\n", &rest[start..start + length + END.len()]));
        rest = &rest[start + length + END.len()..];
    }
    blocks
}

/// Open connections in all unless configured: the soft open-file limit less 128, at least 64.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse::<usize>().ok()
    });
    soft.unwrap_or(1024).saturating_sub(128).max(64)
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Config {
        Config {
            database_url: database_url.into(),
            credentials: Credentials::default(),
            sweep_interval: Duration::from_secs(5),
            max_body_bytes: 2 * 1024 * 1024,
            sync_interval: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_client: 256,
            max_connections: default_max_connections(),
            limits: LimitSettings::default(),
            tls: None,
            enrollment_ca: None,
            public_url: None,
            oidc: None,
            stream: None,
            retain_events: None,
            alert_rules: alerts::AlertRules::default(),
        }
    }
}

/// Failures starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start: {0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
}

/// Everything a request handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub signing_key: PolicySigningKey,
    pub admin_token_hash: String,
    pub enroll_secret_hash: String,
    pub feed: feed::ChangeFeed,
    pub sweep_interval: Duration,
    pub max_body_bytes: usize,
    pub sync_interval: Duration,
    pub header_read_timeout: Duration,
    pub max_connections_per_client: usize,
    pub max_connections: usize,
    pub limits: limits::Limits,
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub enrollment_ca: Option<String>,
    pub public_url: Option<String>,
    pub oidc: Option<oidc::OidcSettings>,
    /// The identity provider's discovery document, read at the first sign-in.
    pub oidc_provider: oidc::Discovered,
    /// The webhook stream, when configured: records go to `stream_outbox` with what they record.
    pub stream: Option<stream::StreamSettings>,
    /// Wakes the stream's sender when a record was added.
    pub stream_wake: tokio::sync::Notify,
    pub retain_events: Option<Duration>,
    pub alert_rules: alerts::AlertRules,
    /// Long-polls each device holds now (`wait::MAX_WAITS_PER_DEVICE` at most).
    pub waiting: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// Becomes true when the server shuts down, so long-polls return at once.
    pub closing: watch::Receiver<bool>,
    closing_sender: watch::Sender<bool>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Opens (creating or migrating) the database and bootstraps it. The returned
/// [`Bootstrapped`] says which credentials were generated by this start, to print once.
pub async fn prepare(config: &Config) -> Result<(AppState, Bootstrapped), StartError> {
    let store = Store::open(&config.database_url).await?;
    let bootstrapped = bootstrap::bootstrap(&store, &config.credentials, now()).await?;
    let (closing_sender, closing) = watch::channel(false);
    let state = AppState(Arc::new(Shared {
        store,
        signing_key: bootstrapped.signing_key.clone(),
        admin_token_hash: bootstrapped.admin_token_hash.clone(),
        enroll_secret_hash: bootstrapped.enroll_secret_hash.clone(),
        feed: feed::ChangeFeed::default(),
        sweep_interval: config.sweep_interval,
        max_body_bytes: config.max_body_bytes,
        sync_interval: config.sync_interval,
        header_read_timeout: config.header_read_timeout,
        max_connections_per_client: config.max_connections_per_client.max(1),
        max_connections: config.max_connections.max(1),
        limits: limits::Limits::new(config.limits),
        tls: config.tls.clone(),
        enrollment_ca: config.enrollment_ca.clone(),
        public_url: config.public_url.clone(),
        oidc: config.oidc.clone(),
        oidc_provider: oidc::Discovered::default(),
        stream: config.stream.clone(),
        stream_wake: tokio::sync::Notify::new(),
        retain_events: config.retain_events,
        alert_rules: config.alert_rules,
        waiting: std::sync::Mutex::default(),
        closing,
        closing_sender,
    }));
    Ok((state, bootstrapped))
}

/// Serves until `shutdown` completes, then lets in-flight requests (and long-polls) finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let relay =
        (state.store.backend == Backend::Postgres).then(|| state.feed.spawn_postgres_relay(state.store.url.clone()));
    let sweeper = tokio::spawn({
        let state = state.clone();
        async move {
            let mut ticks = tokio::time::interval(state.sweep_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(failure) = exceptions::sweep_expired(&state).await {
                    eprintln!("warden-server: expiry sweep failed: {}", failure.body.message);
                }
                if let Err(failure) = alerts::sweep_silent(&state).await {
                    eprintln!("warden-server: the silent-device alert rule failed: {}", failure.body.message);
                }
                if let Some(retain) = state.retain_events
                    && let Err(failure) = retention::roll_up(&state, retain).await
                {
                    eprintln!("warden-server: rolling up old events failed: {}", failure.body.message);
                }
            }
        }
    });
    let streamer = state.stream.clone().map(|settings| tokio::spawn(stream::run(state.clone(), settings)));
    let closing = state.closing_sender.clone();
    serve_connections(listener, state, shutdown).await;
    let _ = closing.send(true);
    sweeper.abort();
    if let Some(streamer) = streamer {
        streamer.abort();
    }
    if let Some(relay) = relay {
        relay.abort();
    }
    Ok(())
}

/// The client address of the connection a request came on (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Accepts connections until `shutdown`, each served on its own task with a header deadline and
/// counted against its client address's limit and the total; one over either is closed at once,
/// unanswered. Then waits for the requests under way (long-polls return as `closing` flips).
async fn serve_connections(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::collections::HashMap;
    let app = app(state.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>> = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Ok((stream, peer)) = accepted else {
            // EMFILE and the like: pause instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let client = peer.ip();
        {
            let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
            let total: usize = open.values().sum();
            let mine = open.entry(client).or_insert(0);
            if *mine >= state.max_connections_per_client || total >= state.max_connections {
                continue;
            }
            *mine += 1;
        }
        let _ = stream.set_nodelay(true);
        let service =
            hyper_util::service::TowerToHyperService::new(app.clone().layer(axum::Extension(ClientAddr(client))));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(state.header_read_timeout);
        let open = open.clone();
        let tls = state.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let deadline = state.header_read_timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                }
                // The handshake has the header's deadline too: a client that stalls in it is dropped.
                Some(acceptor) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                    }
                }
            }
            let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = open.get_mut(&client) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.remove(&client);
                }
            }
        });
    }
    drop(listener);
    let closing = state.closing_sender.clone();
    let _ = closing.send(true);
    graceful.shutdown().await;
}
