//! `warden-server`: starts the governance server. With no arguments it keeps a SQLite file in
//! its data directory and prints where the admin page is and how to log in.

use anyhow::{Context, Result};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use warden_server::alerts::AlertRules;
use warden_server::{Backend, Config, Credentials, LimitSettings, prepare, rotate_signing_key, run};

/// Warden governance server: signed policy, device enrollment, device events, exception requests.
#[derive(Debug, Parser)]
#[command(name = "warden-server", version, about)]
struct Args {
    /// Manage the console's accounts instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "WARDEN_LISTEN", default_value = "127.0.0.1:8470")]
    listen: String,
    /// Database: postgres://USER@HOST/DB, or sqlite://PATH. Default: a SQLite file in the data directory.
    #[arg(long, env = "WARDEN_DATABASE_URL", value_name = "URL", global = true)]
    database: Option<String>,
    /// Where the default SQLite file lives. Default: $XDG_DATA_HOME/warden-server (~/.local/share/warden-server).
    #[arg(long, env = "WARDEN_DATA_DIR", value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Admin token. Default: generated on first start, printed once, stored only as a hash.
    #[arg(long, env = "WARDEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Enroll secret devices present to enroll. Default: generated on first start, printed once.
    #[arg(long, env = "WARDEN_ENROLL_SECRET", hide_env_values = true)]
    enroll_secret: Option<String>,
    /// Replace the stored admin token with a new one and print it.
    #[arg(long)]
    rotate_admin_token: bool,
    /// Replace the stored enroll secret with a new one and print it.
    #[arg(long)]
    rotate_enroll_secret: bool,
    /// The policy-signing key's file (mode 0600; made on first start; a file others can read stops
    /// the start). Default with SQLite: `policy-signing.key` beside the database file; with PostgreSQL
    /// the key stays in the database unless this is given (give every replica the same file).
    #[arg(long, env = "WARDEN_SIGNING_KEY_FILE", value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Seconds between sweeps that record expired exceptions.
    #[arg(long, default_value_t = 5)]
    sweep_seconds: u64,
    /// Seconds between a device's syncs (each one a heartbeat); a device not heard from for more
    /// than two is flagged silent.
    #[arg(long, env = "WARDEN_SYNC_INTERVAL", default_value_t = 60)]
    sync_interval_seconds: u64,
    /// Open connections one client address may hold (each device holds one long-poll: raise it for
    /// a NAT in front of many devices).
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    max_connections_per_client: usize,
    /// Seconds a connection may take to send its request header.
    #[arg(long, default_value_t = 10)]
    header_timeout_seconds: u64,
    /// Enrollment attempts one client address may make per minute (429 with Retry-After beyond).
    #[arg(long, default_value_t = LimitSettings::default().enrollments_per_minute)]
    enrollments_per_minute: u32,
    /// Event uploads one device may make per minute.
    #[arg(long, default_value_t = LimitSettings::default().uploads_per_minute)]
    uploads_per_minute: u32,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "WARDEN_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "WARDEN_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA certificate(s) (PEM) enrollment codes carry for devices to pin. Default with
    /// --tls-cert: the chain's last certificate when it has more than one (a lone leaf is not
    /// pinned: devices then use the system's roots).
    #[arg(long, env = "WARDEN_ENROLLMENT_CA", value_name = "FILE")]
    enrollment_ca: Option<PathBuf>,
    /// The base URL devices reach this server at, written into enrollment codes (default: the
    /// address the console was opened at).
    #[arg(long, env = "WARDEN_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Sign people in through this OpenID Connect identity provider (its issuer URL; with
    /// --oidc-client-id and --oidc-client-secret-file). Register the redirect URI
    /// PUBLIC_URL/api/v1/session/oidc/callback there.
    #[arg(long, env = "WARDEN_OIDC_ISSUER", value_name = "URL", requires_all = ["oidc_client_id", "oidc_client_secret_file"])]
    oidc_issuer: Option<String>,
    #[arg(long, env = "WARDEN_OIDC_CLIENT_ID", value_name = "ID", requires = "oidc_issuer")]
    oidc_client_id: Option<String>,
    /// A file (readable by the server only) holding the client secret.
    #[arg(long, env = "WARDEN_OIDC_CLIENT_SECRET_FILE", value_name = "FILE", requires = "oidc_issuer")]
    oidc_client_secret_file: Option<PathBuf>,
    /// The ID-token claim listing the person's groups.
    #[arg(long, env = "WARDEN_OIDC_GROUPS_CLAIM", default_value = "groups")]
    oidc_groups_claim: String,
    /// GROUP=ROLE (admin, approver, auditor or developer), repeatable: members of GROUP get ROLE
    /// (the most powerful of their groups); everyone else the provider vouches for is a developer.
    #[arg(long = "oidc-role", value_name = "GROUP=ROLE")]
    oidc_roles: Vec<String>,
    /// The sign-in button's text.
    #[arg(long, default_value = "Sign in with your company account")]
    oidc_label: String,
    /// Serve plain HTTP on an address other than loopback (device tokens and decisions would cross
    /// the network readable by anyone on the path: only behind a TLS-terminating proxy).
    #[arg(long)]
    allow_plain_http: bool,
    /// Events one device may send per minute (at least one full batch).
    #[arg(long, default_value_t = LimitSettings::default().events_per_minute)]
    events_per_minute: u32,
    /// Roll events older than this many days up into daily counts (per device, kind, tool and
    /// outcome) and remove them; exception requests and their audit log are kept. Default: keep all.
    #[arg(long, env = "WARDEN_RETAIN_EVENTS_DAYS", value_name = "DAYS", value_parser = clap::value_parser!(u64).range(1..))]
    retain_events_days: Option<u64>,
    /// Stream every event and exception audit row to this webhook as signed JSON lines
    /// (https://, or http:// to loopback), with --stream-secret-file.
    #[arg(long, env = "WARDEN_STREAM_WEBHOOK", value_name = "URL", requires = "stream_secret_file")]
    stream_webhook: Option<String>,
    /// The HMAC key the stream is signed with (at least 16 bytes; readable by the server only).
    #[arg(long, env = "WARDEN_STREAM_SECRET_FILE", value_name = "FILE", requires = "stream_webhook")]
    stream_secret_file: Option<PathBuf>,
    /// Stream the same records as RFC 5424 syslog to a collector instead: tls://HOST:PORT (with
    /// --stream-syslog-ca), or tcp://HOST:PORT to a loopback address.
    #[arg(long, env = "WARDEN_STREAM_SYSLOG", value_name = "URL", conflicts_with = "stream_webhook")]
    stream_syslog: Option<String>,
    /// The CA certificates (PEM) the syslog collector's certificate must chain to.
    #[arg(long, env = "WARDEN_STREAM_SYSLOG_CA", value_name = "FILE", requires = "stream_syslog")]
    stream_syslog_ca: Option<PathBuf>,
    /// Raise a `repeated-blocks` alert when one person is blocked this many times within one
    /// clock hour.
    #[arg(long, env = "WARDEN_ALERT_BLOCKS_PER_HOUR", default_value_t = AlertRules::default().blocks_per_hour,
          value_parser = clap::value_parser!(u32).range(1..))]
    alert_blocks_per_hour: u32,
    /// Raise a `silent-device` alert when an enrolled device has not been heard from for this
    /// many hours.
    #[arg(long, env = "WARDEN_ALERT_SILENT_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..))]
    alert_silent_hours: u64,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The people who sign in to the console (local accounts).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Replaces the policy-signing key: the new key is announced signed by the old one (devices
    /// follow the announcement from the key they pinned) and the active policy is signed again.
    /// Stop every replica first and start them afterwards: they read the key at start.
    RotateSigningKey,
}

#[derive(Debug, clap::Subcommand)]
enum UserAction {
    /// Adds an account. The password is read from --password-file, or else from the first line of
    /// standard input (at least 12 characters).
    Add {
        /// The name they sign in with (a name or e-mail address; compared lowercase).
        name: String,
        /// admin (everything), approver (decides exception requests, reads everything), auditor
        /// (reads everything) or developer (makes enrollment codes for their own devices).
        #[arg(long, value_parser = ["admin", "approver", "auditor", "developer"])]
        role: String,
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Disables an account and ends its sessions.
    Disable { name: String },
    /// Lists the accounts.
    List,
}

/// `warden-server user …`: works on the database directly, like the server's own start.
async fn user_command(action: UserAction, database_url: &str) -> Result<()> {
    use warden_server::accounts::{self, Role};
    let store = warden_server::Store::open(database_url).await.with_context(|| format!("opening {database_url}"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    match action {
        UserAction::Add { name, role, password_file } => {
            let role = Role::parse(&role).context("unknown role")?;
            let password = match password_file {
                Some(file) => std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
                    line
                }
            };
            let password = password.trim_end_matches(['\n', '\r']);
            let name = accounts::add(&store, &name, role, password, now).await?;
            println!("Added {name} ({}). They sign in on the admin page with this name and password.", role.as_str());
        }
        UserAction::Disable { name } => {
            accounts::disable(&store, &name, now).await?;
            println!("Disabled {name}; their sessions ended.");
        }
        UserAction::List => {
            for (name, role, disabled) in accounts::list(&store).await? {
                println!("{name}\t{role}{}", if disabled { "\tdisabled" } else { "" });
            }
        }
    }
    Ok(())
}

fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")));
    match base {
        Some(base) => base.join("warden-server"),
        None => PathBuf::from("warden-server-data"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let database_url = match args.database.as_deref().map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => url.to_owned(),
        None => {
            let dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
            private_dir(&dir)?;
            format!("sqlite://{}?mode=rwc", dir.join("warden.db").display())
        }
    };
    if let Some(Command::User { action }) = args.command {
        return user_command(action, &database_url).await;
    }
    let signing_key_file = args.signing_key.clone().or_else(|| {
        let database = warden_server::sqlite_path(&database_url)?;
        Some(database.with_file_name("policy-signing.key"))
    });
    if let Some(Command::RotateSigningKey) = args.command {
        let store =
            warden_server::Store::open(&database_url).await.with_context(|| format!("opening {database_url}"))?;
        let credentials = Credentials { signing_key_file: signing_key_file.clone(), ..Credentials::default() };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
        let rotation = rotate_signing_key(&store, &credentials, now).await.context("rotating the signing key")?;
        println!("Signing key rotated: {} → {}", rotation.previous_public_key, rotation.public_key);
        println!("The active policy is signed again with the new key. Start the server (every replica) now:");
        println!("devices follow the announcement from the key they pinned at their next sync.");
        return Ok(());
    }
    let mut config = Config::new(database_url.clone());
    config.credentials = Credentials {
        admin_token: args.admin_token.clone().filter(|t| !t.is_empty()),
        enroll_secret: args.enroll_secret.clone().filter(|s| !s.is_empty()),
        rotate_admin_token: args.rotate_admin_token,
        rotate_enroll_secret: args.rotate_enroll_secret,
        signing_key_file: signing_key_file.clone(),
    };
    config.sweep_interval = Duration::from_secs(args.sweep_seconds.max(1));
    config.sync_interval = Duration::from_secs(args.sync_interval_seconds.max(1));
    config.max_connections_per_client = args.max_connections_per_client;
    config.header_read_timeout = Duration::from_secs(args.header_timeout_seconds.max(1));
    config.limits = LimitSettings {
        enrollments_per_minute: args.enrollments_per_minute,
        uploads_per_minute: args.uploads_per_minute,
        events_per_minute: args.events_per_minute,
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(warden_server::tls_config(cert, key)?);
        config.enrollment_ca = warden_server::chain_root_pem(cert)?;
    }
    if let Some(file) = &args.enrollment_ca {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let blocks = warden_server::pem_certificates(&text);
        if blocks.is_empty() {
            anyhow::bail!("--enrollment-ca {}: no PEM certificate in it", file.display());
        }
        config.enrollment_ca = Some(blocks.concat());
    }
    if let (Some(issuer), Some(client_id), Some(secret_file)) =
        (&args.oidc_issuer, &args.oidc_client_id, &args.oidc_client_secret_file)
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(secret_file)
            .with_context(|| format!("reading {}", secret_file.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{}: the client secret must be readable by the server only (chmod 600)",
                secret_file.display()
            );
        }
        let client_secret =
            std::fs::read_to_string(secret_file).with_context(|| format!("reading {}", secret_file.display()))?;
        let mut roles = Vec::new();
        for pair in &args.oidc_roles {
            let (group, role) = pair.split_once('=').context("--oidc-role takes GROUP=ROLE")?;
            let role = warden_server::accounts::Role::parse(role.trim())
                .with_context(|| format!("--oidc-role {pair}: the role is admin, approver, auditor or developer"))?;
            roles.push((group.trim().to_owned(), role));
        }
        config.oidc = Some(warden_server::oidc::OidcSettings {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.trim().to_owned(),
            groups_claim: args.oidc_groups_claim.clone(),
            roles,
            label: args.oidc_label.clone(),
        });
    }
    if let Some(url) = &args.public_url {
        let url = url.trim().trim_end_matches('/');
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 500 {
            anyhow::bail!("--public-url {url}: an http:// or https:// base URL");
        }
        config.public_url = Some(url.to_owned());
    }
    config.alert_rules = AlertRules {
        blocks_per_hour: args.alert_blocks_per_hour,
        silent_after: Duration::from_secs(args.alert_silent_hours * 3600),
    };
    config.retain_events = args.retain_events_days.map(|days| Duration::from_secs(days * 24 * 3600));
    if let (Some(webhook), Some(file)) = (&args.stream_webhook, &args.stream_secret_file) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            anyhow::bail!("{}: the stream secret must be readable by the server only (chmod 600)", file.display());
        }
        let secret = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        config.stream = Some(warden_server::stream::StreamSettings::new(webhook, &secret)?);
        println!("Streaming events and audit records to {webhook} (signed with HMAC-SHA256)");
    }
    if let Some(url) = &args.stream_syslog {
        let ca = match &args.stream_syslog_ca {
            Some(file) => Some(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?),
            None => None,
        };
        config.stream = Some(warden_server::stream::StreamSettings::syslog(url, ca.as_deref())?);
        println!("Streaming events, audit records and alerts to {url} as RFC 5424 syslog");
    }
    // Checked before binding: a refused configuration never opens the port at all.
    let wanted: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&args.listen)
        .with_context(|| format!("--listen {}: not an address and port", args.listen))?
        .collect();
    if config.tls.is_none() && !wanted.iter().all(|a| a.ip().is_loopback()) && !args.allow_plain_http {
        anyhow::bail!(
            "refusing to serve plain HTTP on {}: device tokens and exception decisions would cross the \
             network in the clear. Give --tls-cert and --tls-key, listen on loopback behind a TLS proxy, or \
             pass --allow-plain-http if a proxy in front terminates TLS",
            args.listen
        );
    }
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let (state, bootstrapped) = prepare(&config).await.context("starting the governance server")?;
    let base = format!("{}://{address}", if config.tls.is_some() { "https" } else { "http" });

    let database = match state.store.backend {
        Backend::Sqlite => database_url.trim_start_matches("sqlite://").split('?').next().unwrap_or("").to_owned(),
        Backend::Postgres => "PostgreSQL".to_owned(),
    };
    println!("warden-server {} ({} database: {database})", env!("CARGO_PKG_VERSION"), state.store.backend.name());
    println!("Admin page:    {base}/admin");
    match (&bootstrapped.generated_admin_token, &args.admin_token) {
        (Some(token), _) => {
            println!("Admin token:   {token}");
            println!(
                "               (generated now and shown only this once: save it; log in to the admin page with it)"
            );
        }
        (None, Some(_)) => println!("Admin token:   as configured (WARDEN_ADMIN_TOKEN / --admin-token)"),
        (None, None) => {
            println!("Admin token:   the one printed at first start (lost it? restart with --rotate-admin-token)")
        }
    }
    match (&bootstrapped.generated_enroll_secret, &args.enroll_secret) {
        (Some(secret), _) => {
            println!("Enroll secret: {secret}   (for `warden enroll --server {base} --secret …`; shown once)")
        }
        (None, Some(_)) => println!("Enroll secret: as configured (WARDEN_ENROLL_SECRET / --enroll-secret)"),
        (None, None) => {
            println!("Enroll secret: the one printed at first start (or restart with --rotate-enroll-secret)")
        }
    }
    match &signing_key_file {
        Some(file) => println!("Signing key:   {} (readable by this server's user only)", file.display()),
        None => println!("Signing key:   in the database (give replicas a shared --signing-key FILE to keep it apart)"),
    }
    println!("API:           {base}/api/v1 (description: {base}/api/v1/openapi.json)");
    println!("Listening on {base}");

    run(listener, state, shutdown_signal()).await.context("serving HTTP")?;
    // stdout may be gone by now (a closed pipe after Ctrl-C): that must not end in a panic.
    let _ = writeln!(std::io::stdout(), "warden-server stopped");
    Ok(())
}

/// Creates `dir` readable by this user alone (0700), or makes an existing one so: it holds the
/// database and the policy-signing key.
fn private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making the data directory {} private", dir.display()))?;
        eprintln!(
            "warden-server: the data directory {} was open to others (mode {:o}); now 0700",
            dir.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
