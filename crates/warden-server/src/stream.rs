//! Streaming to the company's security tools: every event a device uploads, every exception audit
//! row and every alert, as JSON lines POSTed to one webhook (a SIEM's HTTP collector, a webhook
//! relay), or as RFC 5424 syslog messages over TCP or TLS (RFC 6587 / RFC 5425 octet-counted
//! frames) to a syslog collector.
//!
//! - **At least once**: a record is written to `stream_outbox` in the same transaction that stores
//!   it, and leaves the outbox only after the webhook answered 2xx for the batch holding it; a
//!   receiver that is down, slow or failing is retried with backoff (1 s doubling to 60 s), and
//!   nothing is lost across a server restart. A retried batch carries the same records with the
//!   same `id`s, so a receiver deduplicates by `id`. Replicas sharing a database may each send a
//!   batch before either deletes it: more duplicates, never a gap.
//! - **Signed**: `X-Warden-Signature: sha256=<hex HMAC-SHA256 of the body>` with the shared secret
//!   (GitHub's webhook convention); `X-Warden-Delivery` names the batch's first and last outbox
//!   sequence numbers.
//! - One line per record: `{"id", "kind": "event" | "audit" | "alert", "at", "record"}`; an event's
//!   record is `{"device_id", "event"}` (the event as the device sent it, with its `kind`), an audit
//!   row's is the `AuditEntry` without its sequence, an alert's the `Alert`.
//! - **Syslog**: one message per record, facility `audit` (13), severity `warning` for alerts and
//!   `notice` otherwise, APP-NAME `warden-server`, MSGID the record's kind, structured data
//!   `[warden@32473 id="…"]` (the record id; 32473 is the example enterprise number RFC 5612 sets
//!   aside), and the JSON line as MSG. Syslog over TCP has no acknowledgement: a batch leaves the
//!   outbox once it was written and flushed on a connection the collector has not closed (checked
//!   before each batch), and a connection that fails mid-batch sends the whole batch again
//!   (duplicates carry the same id); what the kernel had accepted when the collector crashed can
//!   be lost — the webhook is the stream that is at least once end to end.

use crate::AppState;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// Records one POST carries at most.
pub const STREAM_BATCH: i64 = 200;
/// The longest wait between two delivery attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where and how the server streams (`--stream-webhook` with `--stream-secret-file`, or
/// `--stream-syslog` with `--stream-syslog-ca`).
#[derive(Clone)]
pub enum StreamSettings {
    /// `https://…` (or `http://` to a loopback address), each body signed with `secret` (at least
    /// 16 bytes).
    Webhook { url: String, secret: Vec<u8> },
    /// `host:port` of a syslog collector; TLS when `tls` is set.
    Syslog { address: String, tls: Option<SyslogTls> },
}

/// TLS to a syslog collector: the name its certificate must carry and the trusted CAs.
#[derive(Clone)]
pub struct SyslogTls {
    server_name: tokio_rustls::rustls::pki_types::ServerName<'static>,
    config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
}

impl std::fmt::Debug for SyslogTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSettings").field("destination", &self.destination()).finish_non_exhaustive()
    }
}

/// Why stream settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamSettingsError {
    #[error("--stream-webhook {0:?} is not a URL")]
    NotAUrl(String),
    #[error("--stream-webhook must be https:// (plain http only to a loopback address), not {0:?}")]
    PlainHttp(String),
    #[error("the stream secret must be at least 16 bytes (got {0})")]
    ShortSecret(usize),
    #[error("--stream-syslog {0:?} must be tcp://HOST:PORT (loopback only) or tls://HOST:PORT")]
    NotASyslogUrl(String),
    #[error("--stream-syslog tls://… needs --stream-syslog-ca: {0}")]
    SyslogCa(String),
}

/// Whether `host` (a name or an address, IPv6 in brackets or not) is the loopback.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl StreamSettings {
    /// A webhook: checks the URL and the secret (surrounding whitespace of a secret file is
    /// dropped).
    pub fn new(webhook: &str, secret: &[u8]) -> Result<StreamSettings, StreamSettingsError> {
        let secret = secret.trim_ascii().to_vec();
        if secret.len() < 16 {
            return Err(StreamSettingsError::ShortSecret(secret.len()));
        }
        let url = reqwest::Url::parse(webhook).map_err(|_| StreamSettingsError::NotAUrl(webhook.to_owned()))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(url.host_str().unwrap_or_default()) => {}
            "http" => return Err(StreamSettingsError::PlainHttp(webhook.to_owned())),
            _ => return Err(StreamSettingsError::NotAUrl(webhook.to_owned())),
        }
        Ok(StreamSettings::Webhook { url: webhook.to_owned(), secret })
    }

    /// A syslog collector: `tcp://HOST:PORT` (plain, loopback only: the records name people and
    /// what they ran) or `tls://HOST:PORT`, whose certificate must chain to a CA in `ca_pem` (a
    /// PEM bundle) and name HOST.
    pub fn syslog(url: &str, ca_pem: Option<&[u8]>) -> Result<StreamSettings, StreamSettingsError> {
        let refused = || StreamSettingsError::NotASyslogUrl(url.to_owned());
        let (scheme, address) = url.split_once("://").ok_or_else(refused)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(refused)?;
        if host.is_empty() || !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return Err(refused());
        }
        let tls = match scheme {
            "tcp" if is_loopback(host) => None,
            "tls" => {
                use tokio_rustls::rustls::pki_types::pem::PemObject;
                use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
                let pem = ca_pem.ok_or_else(|| StreamSettingsError::SyslogCa("no CA file given".into()))?;
                let mut roots = tokio_rustls::rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| StreamSettingsError::SyslogCa(e.to_string()))?;
                    roots.add(cert).map_err(|e| StreamSettingsError::SyslogCa(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(StreamSettingsError::SyslogCa("no certificate in the CA file".into()));
                }
                let name = host.trim_start_matches('[').trim_end_matches(']').to_owned();
                let server_name = ServerName::try_from(name).map_err(|_| refused())?;
                let config =
                    tokio_rustls::rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
                Some(SyslogTls { server_name, config: std::sync::Arc::new(config) })
            }
            _ => return Err(refused()),
        };
        Ok(StreamSettings::Syslog { address: address.to_owned(), tls })
    }

    /// Where records go, for messages.
    pub fn destination(&self) -> String {
        match self {
            StreamSettings::Webhook { url, .. } => url.clone(),
            StreamSettings::Syslog { address, tls } => {
                format!("{}://{address}", if tls.is_some() { "tls" } else { "tcp" })
            }
        }
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`, as `X-Warden-Signature` carries it.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Adds one record to the outbox, inside the transaction that stores it.
pub(crate) async fn enqueue(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    kind: &str,
    record: serde_json::Value,
    at: i64,
) -> Result<(), sqlx::Error> {
    let line = serde_json::json!({ "id": id, "kind": kind, "at": at, "record": record }).to_string();
    sqlx::query("INSERT INTO stream_outbox (line, created_at) VALUES ($1, $2)")
        .bind(line)
        .bind(at)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

/// An open connection to the syslog collector (TCP, or TLS over it).
type SyslogConnection = Box<dyn Duplex>;
trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

/// Whether the collector closed the connection: it never sends anything, so a connection with
/// something to read has ended (EOF, a TLS close, a reset). Writing a batch to it would be
/// accepted by the kernel and lost.
async fn closed_by_peer(connection: &mut SyslogConnection) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(1), connection.read(&mut byte)).await {
        Err(_) => false, // nothing to read: still open
        Ok(Ok(_)) | Ok(Err(_)) => true,
    }
}

/// What delivers a batch: the HTTP client, or the syslog connection (opened on first use and
/// again after a failure).
enum Sink {
    Webhook(reqwest::Client),
    Syslog(Option<SyslogConnection>),
}

/// Delivers the outbox until the server stops.
pub(crate) async fn run(state: AppState, settings: StreamSettings) {
    let mut sink = match &settings {
        StreamSettings::Webhook { .. } => match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
            Ok(client) => Sink::Webhook(client),
            Err(error) => {
                eprintln!("warden-server: error: not streaming: {error}");
                return;
            }
        },
        StreamSettings::Syslog { .. } => Sink::Syslog(None),
    };
    let destination = settings.destination();
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    loop {
        let delivered = deliver_one_batch(&state, &settings, &mut sink).await;
        let pause = match delivered {
            Ok(0) => {
                // Nothing waiting: until a record arrives (or a second, for another replica's).
                let _ = tokio::time::timeout(Duration::from_secs(1), state.stream_wake.notified()).await;
                continue;
            }
            Ok(_) => {
                if std::mem::take(&mut failing) {
                    eprintln!("warden-server: streaming to {destination} again");
                }
                backoff = Duration::from_secs(1);
                continue;
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    eprintln!("warden-server: warning: streaming to {destination}: {error}; retrying");
                }
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                pause
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// One record as an RFC 5424 message in an octet-counted frame (`LEN SP MSG`, RFC 6587 §3.4.1,
/// the framing RFC 5425 makes the rule over TLS).
pub fn syslog_frame(line: &str) -> Result<String, String> {
    let record: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("an outbox line: {e}"))?;
    let kind = record["kind"].as_str().unwrap_or("event");
    let id = record["id"].as_str().unwrap_or_default();
    let severity = if kind == "alert" { fasyslog::Severity::WARNING } else { fasyslog::Severity::NOTICE };
    let mut context = fasyslog::format::SyslogContext::new();
    context.facility(fasyslog::Facility::AUDIT).appname("warden-server");
    let mut element = fasyslog::SDElement::new("warden@32473")?;
    element.add_param("id", id)?;
    let message = context.format_rfc5424(severity, Some(kind), vec![element], Some(line)).to_string();
    Ok(format!("{} {message}", message.len()))
}

async fn open_syslog(address: &str, tls: Option<&SyslogTls>) -> Result<SyslogConnection, String> {
    let connect = tokio::net::TcpStream::connect(address);
    let stream = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| format!("connecting: {e}"))?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => Ok(Box::new(stream)),
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let handshake = connector.connect(tls.server_name.clone(), stream);
            let stream = tokio::time::timeout(Duration::from_secs(10), handshake)
                .await
                .map_err(|_| "the TLS handshake timed out".to_owned())?
                .map_err(|e| format!("TLS: {e}"))?;
            Ok(Box::new(stream))
        }
    }
}

/// Sends the oldest batch; returns how many records were delivered (0: none waiting).
async fn deliver_one_batch(state: &AppState, settings: &StreamSettings, sink: &mut Sink) -> Result<usize, String> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT seq, line FROM stream_outbox ORDER BY seq LIMIT $1")
        .bind(STREAM_BATCH)
        .fetch_all(&state.store.pool)
        .await
        .map_err(|e| format!("reading the outbox: {e}"))?;
    let (Some((first, _)), Some((last, _))) = (rows.first(), rows.last()) else { return Ok(0) };
    let (first, last) = (*first, *last);
    match (sink, settings) {
        (Sink::Webhook(client), StreamSettings::Webhook { url, secret }) => {
            let mut body = String::new();
            for (_, line) in &rows {
                body.push_str(line);
                body.push('\n');
            }
            let response = client
                .post(url)
                .header("content-type", "application/x-ndjson")
                .header("x-warden-signature", signature(secret, body.as_bytes()))
                .header("x-warden-delivery", format!("{first}-{last}"))
                .body(body)
                .send()
                .await
                .map_err(|e| format!("sending: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("the webhook answered {}", response.status()));
            }
        }
        (Sink::Syslog(connection), StreamSettings::Syslog { address, tls }) => {
            use tokio::io::AsyncWriteExt as _;
            let mut frames = String::new();
            for (_, line) in &rows {
                frames.push_str(&syslog_frame(line)?);
            }
            if let Some(open) = connection.as_mut()
                && closed_by_peer(open).await
            {
                *connection = None;
            }
            if connection.is_none() {
                *connection = Some(open_syslog(address, tls.as_ref()).await?);
            }
            let open = connection.as_mut().expect("opened above");
            let written = tokio::time::timeout(Duration::from_secs(10), async {
                open.write_all(frames.as_bytes()).await?;
                open.flush().await
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                *connection = None;
                return Err(match written {
                    Ok(Err(e)) => format!("writing: {e}"),
                    _ => "writing timed out".to_owned(),
                });
            }
        }
        _ => return Err("the stream's sink does not match its settings".to_owned()),
    }
    let _writer = state.store.write_guard().await;
    sqlx::query("DELETE FROM stream_outbox WHERE seq >= $1 AND seq <= $2")
        .bind(first)
        .bind(last)
        .execute(&state.store.pool)
        .await
        .map_err(|e| format!("clearing the delivered records: {e}"))?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_hmac_sha256_test_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn webhooks_must_be_https_unless_on_loopback_and_secrets_long() {
        let secret = b"0123456789abcdef";
        assert!(StreamSettings::new("https://siem.corp.example/warden", secret).is_ok());
        assert!(StreamSettings::new("http://127.0.0.1:9000/in", secret).is_ok());
        assert!(StreamSettings::new("http://localhost:9000/in", secret).is_ok());
        assert!(matches!(
            StreamSettings::new("http://siem.corp.example/in", secret),
            Err(StreamSettingsError::PlainHttp(_))
        ));
        assert!(matches!(StreamSettings::new("ftp://x/", secret), Err(StreamSettingsError::NotAUrl(_))));
        assert!(matches!(StreamSettings::new("not a url", secret), Err(StreamSettingsError::NotAUrl(_))));
        assert!(matches!(StreamSettings::new("https://x/", b"short\n"), Err(StreamSettingsError::ShortSecret(5))));
    }

    #[test]
    fn syslog_is_plain_only_on_loopback_and_tls_needs_a_ca() {
        assert_eq!(StreamSettings::syslog("tcp://127.0.0.1:6514", None).unwrap().destination(), "tcp://127.0.0.1:6514");
        assert!(StreamSettings::syslog("tcp://[::1]:514", None).is_ok());
        for refused in ["tcp://siem.corp.example:514", "udp://127.0.0.1:514", "tls://siem:0", "tls://:6514", "siem:514"]
        {
            assert!(
                matches!(StreamSettings::syslog(refused, None), Err(StreamSettingsError::NotASyslogUrl(_))),
                "{refused}"
            );
        }
        assert!(matches!(
            StreamSettings::syslog("tls://siem.corp.example:6514", None),
            Err(StreamSettingsError::SyslogCa(_))
        ));
        assert!(matches!(
            StreamSettings::syslog("tls://siem.corp.example:6514", Some(b"not a pem")),
            Err(StreamSettingsError::SyslogCa(_))
        ));
    }

    #[test]
    fn a_syslog_frame_counts_its_octets_and_carries_the_record() {
        let line = r#"{"id":"alert:blocks:dev:1","kind":"alert","at":1,"record":{"detail":"dev was blocked 5 times — again"}}"#;
        let frame = syslog_frame(line).unwrap();
        let (length, message) = frame.split_once(' ').unwrap();
        assert_eq!(length.parse::<usize>().unwrap(), message.len(), "octets, not characters");
        // PRI = facility audit (13) × 8 + warning (4).
        assert!(message.starts_with("<108>1 "), "{message}");
        assert!(
            message.contains(" warden-server ") && message.contains(" alert [warden@32473 id=\"alert:blocks:dev:1\"] ")
        );
        assert!(message.ends_with(line));
    }
}
