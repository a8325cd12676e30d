//! The database: one pool over SQLite or PostgreSQL, its migrations, and the write lock SQLite needs.
//!
//! Queries are written once, in the SQL both backends share, with `$1`-style parameters
//! (SQLite reads `$1` as a parameter too). Each backend has its own append-only migration
//! folder, embedded in the binary; sqlx records a checksum of each applied file, so an edited
//! migration stops the server at start instead of drifting silently.

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// Which database the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// (version, description, SQL) of each migration, oldest first. Append only.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/sqlite/0001_initial.sql")),
    (2, "event_kinds", include_str!("../migrations/sqlite/0002_event_kinds.sql")),
    (3, "exception_list_sequence", include_str!("../migrations/sqlite/0003_exception_list_sequence.sql")),
    (4, "exception_guardrails", include_str!("../migrations/sqlite/0004_exception_guardrails.sql")),
    (5, "device_inventory", include_str!("../migrations/sqlite/0005_device_inventory.sql")),
    (6, "stream_outbox", include_str!("../migrations/sqlite/0006_stream_outbox.sql")),
    (7, "event_counts", include_str!("../migrations/sqlite/0007_event_counts.sql")),
    (8, "fleet_views", include_str!("../migrations/sqlite/0008_fleet_views.sql")),
    (9, "launch_rollups", include_str!("../migrations/sqlite/0009_launch_rollups.sql")),
    (10, "blocks_per_hour", include_str!("../migrations/sqlite/0010_blocks_per_hour.sql")),
    (11, "admin_audit", include_str!("../migrations/sqlite/0011_admin_audit.sql")),
    (12, "accounts", include_str!("../migrations/sqlite/0012_accounts.sql")),
    (13, "enrollment_codes", include_str!("../migrations/sqlite/0013_enrollment_codes.sql")),
    (14, "signing_key_rotations", include_str!("../migrations/sqlite/0014_signing_key_rotations.sql")),
    (15, "oidc_logins", include_str!("../migrations/sqlite/0015_oidc_logins.sql")),
    (16, "api_tokens", include_str!("../migrations/sqlite/0016_api_tokens.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/postgres/0001_initial.sql")),
    (2, "event_kinds", include_str!("../migrations/postgres/0002_event_kinds.sql")),
    (3, "exception_list_sequence", include_str!("../migrations/postgres/0003_exception_list_sequence.sql")),
    (4, "exception_guardrails", include_str!("../migrations/postgres/0004_exception_guardrails.sql")),
    (5, "device_inventory", include_str!("../migrations/postgres/0005_device_inventory.sql")),
    (6, "stream_outbox", include_str!("../migrations/postgres/0006_stream_outbox.sql")),
    (7, "event_counts", include_str!("../migrations/postgres/0007_event_counts.sql")),
    (8, "fleet_views", include_str!("../migrations/postgres/0008_fleet_views.sql")),
    (9, "launch_rollups", include_str!("../migrations/postgres/0009_launch_rollups.sql")),
    (10, "blocks_per_hour", include_str!("../migrations/postgres/0010_blocks_per_hour.sql")),
    (11, "admin_audit", include_str!("../migrations/postgres/0011_admin_audit.sql")),
    (12, "accounts", include_str!("../migrations/postgres/0012_accounts.sql")),
    (13, "enrollment_codes", include_str!("../migrations/postgres/0013_enrollment_codes.sql")),
    (14, "signing_key_rotations", include_str!("../migrations/postgres/0014_signing_key_rotations.sql")),
    (15, "oidc_logins", include_str!("../migrations/postgres/0015_oidc_logins.sql")),
    (16, "api_tokens", include_str!("../migrations/postgres/0016_api_tokens.sql")),
];

/// The migration files as sqlx wants them.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        let migrations = self
            .0
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(*version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), false)
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// Failures opening the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot make the database file {path} private: {source}")]
    Private { path: String, source: std::io::Error },
}

/// The file of a `sqlite://PATH?…` URL (`None` for an in-memory database).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Makes the SQLite file readable by the server's user alone before SQLite opens it (created empty
/// with mode 0600 when missing, tightened when others could read it): it holds device tokens'
/// hashes, requests and justifications. SQLite gives its `-wal` and `-shm` files the same mode.
fn make_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            for file in [path.to_path_buf(), path.with_extension("db-wal"), path.with_extension("db-shm")] {
                if let Ok(metadata) = std::fs::metadata(&file)
                    && metadata.permissions().mode() & 0o077 != 0
                {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                }
            }
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The pool, and for SQLite the lock that serialises write transactions.
///
/// SQLite allows one writer; a transaction that reads before it writes can fail with
/// `SQLITE_BUSY` instead of waiting. One in-process lock makes writers queue politely (a SQLite
/// file belongs to one server process). PostgreSQL needs no such lock.
#[derive(Debug, Clone)]
pub struct Store {
    pub pool: AnyPool,
    pub backend: Backend,
    pub url: String,
    write_lock: Option<Arc<Mutex<()>>>,
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_at(url, i64::MAX).await
    }

    /// Connects and applies the migrations up to `version` only: a migration's tests start
    /// from the schema (and rows) before it, then [`Store::open`] the same database.
    pub async fn open_at(url: &str, version: i64) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
        {
            make_private(&path).map_err(|source| StoreError::Private { path: path.display().to_string(), source })?;
        }
        let pool = match backend {
            Backend::Sqlite => {
                options
                    .max_connections(8)
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            // WAL: readers never wait for the writer; NORMAL sync is durable across
                            // a crash of the server (not of the OS), the usual trade for WAL.
                            connection
                                .execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                                )
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await
            }
            Backend::Postgres => options.max_connections(16).connect(url).await,
        }
        .map_err(StoreError::Connect)?;
        let migrations = match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let upto = migrations.partition_point(|(v, _, _)| *v <= version);
        let migrator = Migrator::new(Embedded(&migrations[..upto])).await.map_err(StoreError::Migrate)?;
        migrator.run(&pool).await.map_err(StoreError::Migrate)?;
        let write_lock = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Store { pool, backend, url: url.to_owned(), write_lock })
    }

    /// Hold this for the length of a write transaction.
    pub async fn write_guard(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        let versions =
            |list: &[(i64, &str, &str)]| list.iter().map(|(v, d, _)| (*v, d.to_string())).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
        let folder = |name: &str| {
            let mut files: Vec<String> =
                std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(name))
                    .unwrap()
                    .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
            files.sort();
            files
        };
        // Every file in the folders is embedded, in order.
        let expected: Vec<String> = SQLITE_MIGRATIONS.iter().map(|(v, d, _)| format!("{v:04}_{d}.sql")).collect();
        assert_eq!(folder("sqlite"), expected);
        assert_eq!(folder("postgres"), expected);
    }

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(Backend::of_url("sqlite:///tmp/x.db?mode=rwc"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgres://u@127.0.0.1:5432/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("mysql://x"), None);
    }
}
