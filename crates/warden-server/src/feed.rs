//! The change feed: what wakes long-polling devices, across server replicas.
//!
//! Every change a device must hear of (a decision on its request, a new policy, its revocation)
//! is a row in `changes`, written in the same transaction as the change itself. After commit,
//! the writing replica wakes its own waiters through an in-process broadcast; on PostgreSQL the
//! same transaction also runs `pg_notify`, which every replica's `LISTEN` connection turns into
//! the same local wake-up. A woken waiter re-reads `changes`, so a lost or duplicated wake-up
//! costs at most a query, never a missed change.

use crate::store::{Backend, Store};
use sqlx::postgres::PgListener;
use sqlx::{Any, Transaction};
use std::time::Duration;
use tokio::sync::broadcast;
use warden_api::{Change, ChangeKind};

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "warden_changes";

/// Whom a wake-up concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    Device(String),
    Everyone,
}

impl Wake {
    pub fn concerns(&self, device: &str) -> bool {
        match self {
            Wake::Everyone => true,
            Wake::Device(id) => id == device,
        }
    }

    fn payload(&self) -> String {
        match self {
            Wake::Everyone => "*".into(),
            Wake::Device(id) => id.clone(),
        }
    }

    fn from_payload(payload: &str) -> Wake {
        if payload == "*" { Wake::Everyone } else { Wake::Device(payload.to_owned()) }
    }
}

/// In-process side of the feed.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<Wake>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed { sender: broadcast::channel(1024).0 }
    }
}

impl ChangeFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<Wake> {
        self.sender.subscribe()
    }

    /// Wakes local waiters (call after the transaction committed).
    pub fn wake(&self, wake: Wake) {
        // No receivers is fine: nobody is waiting.
        let _ = self.sender.send(wake);
    }

    /// Relays PostgreSQL notifications from other replicas into this process until dropped.
    pub fn spawn_postgres_relay(&self, url: String) -> tokio::task::JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move {
            loop {
                match relay(&feed, &url).await {
                    Ok(()) => return,
                    Err(error) => {
                        eprintln!("warden-server: LISTEN {CHANNEL} failed ({error}); retrying in 1 s");
                        // Whatever was notified meanwhile: let every waiter re-check.
                        feed.wake(Wake::Everyone);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }
}

async fn relay(feed: &ChangeFeed, url: &str) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    loop {
        match listener.try_recv().await? {
            Some(notification) => feed.wake(Wake::from_payload(notification.payload())),
            // The connection dropped and will be re-established by the next call; anything sent
            // in between is lost, so everyone re-checks.
            None => feed.wake(Wake::Everyone),
        }
    }
}

/// Records a change inside the caller's transaction (and, on PostgreSQL, notifies at commit).
pub async fn record(
    store: &Store,
    transaction: &mut Transaction<'_, Any>,
    wake: &Wake,
    kind: ChangeKind,
    subject: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let device = match wake {
        Wake::Device(id) => Some(id.as_str()),
        Wake::Everyone => None,
    };
    sqlx::query("INSERT INTO changes (device_id, kind, subject, at) VALUES ($1, $2, $3, $4)")
        .bind(device)
        .bind(kind_name(kind))
        .bind(subject)
        .bind(now)
        .execute(&mut **transaction)
        .await?;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(wake.payload()).execute(&mut **transaction).await?;
    }
    Ok(())
}

pub fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Exception => "exception",
        ChangeKind::Policy => "policy",
        ChangeKind::Revoked => "revoked",
    }
}

fn kind_of(name: &str) -> Option<ChangeKind> {
    [ChangeKind::Exception, ChangeKind::Policy, ChangeKind::Revoked].into_iter().find(|kind| kind_name(*kind) == name)
}

/// Changes for `device` after `since`, oldest first.
pub async fn changes_since(store: &Store, device: &str, since: i64) -> Result<Vec<Change>, sqlx::Error> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT seq, kind, subject FROM changes WHERE seq > $1 AND (device_id = $2 OR device_id IS NULL) \
         ORDER BY seq LIMIT 200",
    )
    .bind(since)
    .bind(device)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(seq, kind, subject)| Some(Change { seq, kind: kind_of(&kind)?, subject }))
        .collect())
}

/// The newest change number.
pub async fn latest_seq(store: &Store) -> Result<i64, sqlx::Error> {
    let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM changes").fetch_one(&store.pool).await?;
    Ok(seq)
}
