//! Streaming to the company's security tools (a SIEM's HTTP collector, a webhook relay): every
//! event a device uploads and every exception audit row, as JSON lines POSTed to one webhook.
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
//! - One line per record: `{"id", "kind": "event" | "audit", "at", "record"}`; an event's record is
//!   `{"device_id", "event"}` (the event as the device sent it, with its `kind`), an audit row's is
//!   the `AuditEntry` without its sequence.

use crate::AppState;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// Records one POST carries at most.
pub const STREAM_BATCH: i64 = 200;
/// The longest wait between two delivery attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where and how the server streams (`--stream-webhook`, `--stream-secret-file`).
#[derive(Clone)]
pub struct StreamSettings {
    /// `https://…`, or `http://` to a loopback address.
    pub webhook: String,
    /// The HMAC key, at least 16 bytes.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for StreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSettings").field("webhook", &self.webhook).finish_non_exhaustive()
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
}

impl StreamSettings {
    /// Checks the webhook URL and the secret (surrounding whitespace of a secret file is dropped).
    pub fn new(webhook: &str, secret: &[u8]) -> Result<StreamSettings, StreamSettingsError> {
        let secret = secret.trim_ascii().to_vec();
        if secret.len() < 16 {
            return Err(StreamSettingsError::ShortSecret(secret.len()));
        }
        let url = reqwest::Url::parse(webhook).map_err(|_| StreamSettingsError::NotAUrl(webhook.to_owned()))?;
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err(StreamSettingsError::PlainHttp(webhook.to_owned())),
            _ => return Err(StreamSettingsError::NotAUrl(webhook.to_owned())),
        }
        Ok(StreamSettings { webhook: webhook.to_owned(), secret })
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

/// Delivers the outbox to the webhook until the server stops.
pub(crate) async fn run(state: AppState, settings: StreamSettings) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("warden-server: error: not streaming: {error}");
            return;
        }
    };
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    loop {
        let delivered = deliver_one_batch(&state, &settings, &client).await;
        let pause = match delivered {
            Ok(0) => {
                // Nothing waiting: until a record arrives (or a second, for another replica's).
                let _ = tokio::time::timeout(Duration::from_secs(1), state.stream_wake.notified()).await;
                continue;
            }
            Ok(_) => {
                if std::mem::take(&mut failing) {
                    eprintln!("warden-server: streaming to {} again", settings.webhook);
                }
                backoff = Duration::from_secs(1);
                continue;
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    eprintln!("warden-server: warning: streaming to {}: {error}; retrying", settings.webhook);
                }
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                pause
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// Sends the oldest batch; returns how many records the webhook acknowledged (0: none waiting).
async fn deliver_one_batch(
    state: &AppState,
    settings: &StreamSettings,
    client: &reqwest::Client,
) -> Result<usize, String> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT seq, line FROM stream_outbox ORDER BY seq LIMIT $1")
        .bind(STREAM_BATCH)
        .fetch_all(&state.store.pool)
        .await
        .map_err(|e| format!("reading the outbox: {e}"))?;
    let (Some((first, _)), Some((last, _))) = (rows.first(), rows.last()) else { return Ok(0) };
    let (first, last) = (*first, *last);
    let mut body = String::new();
    for (_, line) in &rows {
        body.push_str(line);
        body.push('\n');
    }
    let response = client
        .post(&settings.webhook)
        .header("content-type", "application/x-ndjson")
        .header("x-warden-signature", signature(&settings.secret, body.as_bytes()))
        .header("x-warden-delivery", format!("{first}-{last}"))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("sending: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the webhook answered {}", response.status()));
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
}
