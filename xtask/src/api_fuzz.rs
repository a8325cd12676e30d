//! The governance server's API under schemathesis (PyPI, pinned, in a virtualenv under
//! `~/.cache/warden-tools`): the real `warden-server` binary on SQLite and on PostgreSQL, fuzzed
//! from the OpenAPI document it generates and serves, as an admin service account (an API token a
//! signed-in admin made) and as an enrolled device, with a
//! bounded number of examples and a fixed seed (a failure reproduces). Checks: no 5xx, every
//! status code, content type, header and body as the description says, and no operation that
//! ignores its authentication.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use xtask::check;

pub const SCHEMATHESIS_VERSION: &str = "4.32.5";
const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789abcdefghijkl";
const ENROLL_SECRET: &str = "fuzz-enroll-secret-0123456789";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,ignored_auth";

fn venv() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(format!(".cache/warden-tools/schemathesis-{SCHEMATHESIS_VERSION}")))
}

/// Installs schemathesis when its pinned version is missing.
pub fn setup() -> Result<()> {
    let venv = venv()?;
    let present = Command::new(venv.join("bin/schemathesis"))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS_VERSION));
    if present {
        println!("xtask: schemathesis {SCHEMATHESIS_VERSION} present");
        return Ok(());
    }
    println!("xtask: installing schemathesis {SCHEMATHESIS_VERSION} into {}", venv.display());
    check(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))?;
    check(Command::new(venv.join("bin/pip")).args(["install", "-q", &format!("schemathesis=={SCHEMATHESIS_VERSION}")]))
}

/// A running `warden-server`, stopped when dropped.
struct Server {
    child: Child,
    base: String,
    /// How `warden-server user …` reaches the same database.
    database_args: Vec<std::ffi::OsString>,
    binary: PathBuf,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    fn start(binary: &std::path::Path, database: Option<&str>) -> Result<Server> {
        let (database_args, data): (Vec<std::ffi::OsString>, _) = match database {
            Some(url) => (vec!["--database".into(), url.into()], None),
            None => {
                let dir = tempfile::Builder::new().prefix("warden-fuzz-").tempdir().context("a temporary folder")?;
                (vec!["--data-dir".into(), dir.path().join("server").into()], Some(dir))
            }
        };
        let mut child = Command::new(binary)
            .args(&database_args)
            .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN, "--enroll-secret", ENROLL_SECRET])
            // The fuzzer is one client sending thousands of requests: the per-address and
            // per-device limits would answer most of them 429 and hide the handlers.
            .args(["--enrollments-per-minute", "100000", "--uploads-per-minute", "100000"])
            .args(["--events-per-minute", "10000000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting warden-server")?;
        let mut lines = BufReader::new(child.stdout.take().context("its output")?).lines();
        let base = loop {
            let line = lines.next().context("warden-server exited before listening")??;
            if let Some(base) = line.strip_prefix("Listening on ") {
                break base.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, base, database_args, binary: binary.to_owned(), _data: data })
    }

    /// An admin account (`warden-server user add`), signed in through the API, makes an admin
    /// API token: the service account the admin operations are fuzzed as.
    fn admin_api_token(&self) -> Result<String> {
        const NAME: &str = "fuzz-admin@corp.example";
        const PASSWORD: &str = "fuzz-password-0123456789";
        let mut add = Command::new(&self.binary)
            .args(&self.database_args)
            .args(["user", "add", NAME, "--role", "admin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("starting warden-server user add")?;
        std::io::Write::write_all(&mut add.stdin.take().context("its input")?, format!("{PASSWORD}\n").as_bytes())?;
        if !add.wait()?.success() {
            bail!("warden-server user add failed");
        }
        let jar = tempfile::NamedTempFile::new().context("a cookie jar")?;
        let session = curl_json(
            &["-c", &jar.path().to_string_lossy()],
            &format!(r#"{{"name":"{NAME}","password":"{PASSWORD}"}}"#),
            &format!("{}/api/v1/session", self.base),
        )?;
        let csrf = json_string(&session, "csrf_token").with_context(|| format!("signing in answered {session}"))?;
        let made = curl_json(
            &["-b", &jar.path().to_string_lossy(), "-H", &format!("x-csrf-token: {csrf}")],
            r#"{"name":"schemathesis","role":"admin","valid_days":1}"#,
            &format!("{}/api/v1/admin/api-tokens", self.base),
        )?;
        json_string(&made, "token").with_context(|| format!("making an API token answered {made}"))
    }

    /// Enrolls a device with the shared secret (before any account exists); returns its token.
    fn device_token(&self) -> Result<String> {
        let body = r#"{"secret":"fuzz-enroll-secret-0123456789","hostname":"fuzz","user":"dev","platform":"linux"}"#;
        let text = curl_json(&[], body, &format!("{}/api/v1/enroll", self.base))?;
        json_string(&text, "device_token").with_context(|| format!("enrolling a device answered {text}"))
    }

    /// schemathesis on the operations tagged `tag`, with `token`.
    fn fuzz(&self, tag: &str, token: &str, exclude_paths: &[&str]) -> Result<()> {
        println!("xtask: schemathesis on the {tag} operations of {}", self.base);
        let mut command = Command::new(venv()?.join("bin/schemathesis"));
        command
            .args(["--no-color", "run"])
            .arg(format!("{}/api/v1/openapi.json", self.base))
            .args(["--url", &self.base, "-H", &format!("Authorization: Bearer {token}")])
            .args(["--include-tag", tag, "--checks", CHECKS, "--max-examples", "25", "--seed", "14", "-w", "2"]);
        for path in exclude_paths {
            command.args(["--exclude-path", path]);
        }
        check(&mut command)
    }
}

/// POSTs `body` as JSON with curl (extra arguments first); the answer's text.
fn curl_json(extra: &[&str], body: &str, url: &str) -> Result<String> {
    let out = Command::new("curl")
        .args(["-sS", "-m", "10", "-H", "content-type: application/json"])
        .args(extra)
        .args(["--data-binary", body, url])
        .output()
        .context("running curl")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A top-level string field of a JSON answer.
fn json_string(text: &str, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get(field)?.as_str().map(str::to_owned)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CI step: both backends (a throwaway PostgreSQL cluster), admin and device operations.
pub fn fuzz_server() -> Result<()> {
    let postgres = crate::postgres::PostgresFixture::start().context("starting the PostgreSQL test server")?;
    let postgres_url = postgres.url.as_str();
    let binary = xtask::target_dir().join("debug/warden-server");
    if !binary.exists() {
        bail!("{} is missing (the Rust tests step builds it)", binary.display());
    }
    for database in [None, Some(postgres_url)] {
        let server = Server::start(&binary, database)?;
        let device = server.device_token()?;
        // The device first: the admin run follows links from the device list to revoking it.
        // Rotating the token mid-run would leave every later case unauthenticated; the long-poll
        // holds each call up to its timeout (its bounds are tested in the server's own tests).
        server.fuzz("device", &device, &["/api/v1/device/token", "/api/v1/device/wait"])?;
        // Then as a service account, which needs an account (after which the shared secret no
        // longer enrolls: the device above came first).
        let service_account = server.admin_api_token()?;
        server.fuzz("admin", &service_account, &[])?;
    }
    Ok(())
}
