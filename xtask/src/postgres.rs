//! A throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, a new cluster in a
//! temp dir, listening on a free loopback port, stopped and deleted when dropped.
//!
//! The tests read its URL from `WARDEN_TEST_POSTGRES_URL`; each test creates its own database.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; stopping it is the drop.
#[derive(Debug)]
pub struct PostgresFixture {
    dir: PathBuf,
    bin: PathBuf,
    pub url: String,
}

/// The newest installed PostgreSQL's bin directory (`/usr/lib/postgresql/N/bin`).
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("reading /usr/lib/postgresql (is Debian's postgresql package installed?)")?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context("no PostgreSQL server binaries under /usr/lib/postgresql")
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (the server refuses root).
fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Result<()> {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    let mut command = if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        command
    } else {
        Command::new(bin.join(tool))
    };
    command.args(args).current_dir("/");
    let shown = format!("{tool} {}", args.join(" "));
    let output = command.output().with_context(|| format!("starting {shown}"))?;
    if !output.status.success() {
        bail!(
            "{shown} failed with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl PostgresFixture {
    pub fn start() -> Result<PostgresFixture> {
        let bin = bin_dir()?;
        let dir = std::env::temp_dir().join(format!("warden-test-postgres-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing a stale {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
        if root {
            let status = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status()?;
            if !status.success() {
                bail!("chown postgres {} failed", dir.display());
            }
        }
        let data = dir.join("data");
        let data_text = data.to_string_lossy().into_owned();
        let dir_text = dir.to_string_lossy().into_owned();
        as_postgres(&bin, "initdb", &["-D", &data_text, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])?;
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {dir_text} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300"
        );
        let fixture = PostgresFixture {
            dir: dir.clone(),
            bin: bin.clone(),
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        as_postgres(
            &bin,
            "pg_ctl",
            &["-D", &data_text, "-o", &options, "-l", &format!("{dir_text}/server.log"), "-w", "-t", "60", "start"],
        )?;
        println!("xtask: PostgreSQL test server at {} ({})", fixture.url, bin.display());
        Ok(fixture)
    }
}

impl Drop for PostgresFixture {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        if let Err(error) = as_postgres(&self.bin, "pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]) {
            eprintln!("xtask: stopping the PostgreSQL test server: {error:#}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cargo xtask bench-server`: the server benchmark on SQLite and on a throwaway PostgreSQL.
pub fn bench_server(args: &[String]) -> Result<()> {
    // `cargo xtask bench-server -- --seconds 8`: the separator is the shell habit, not an argument.
    let args = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
    let postgres = PostgresFixture::start()?;
    // The bench starts the `warden-server` built beside it: `cargo run` alone builds only the bench.
    crate::check(crate::cargo().args(["build", "--release", "--quiet", "-p", "warden-server", "--bins"]))?;
    let mut command = crate::cargo();
    command.args(["run", "--release", "--quiet", "-p", "warden-server", "--bin", "server-bench", "--", "--postgres"]);
    command.arg(&postgres.url).args(args);
    crate::check(&mut command)
}
