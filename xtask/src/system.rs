//! `cargo xtask run`: the whole system on one machine — a local `warden-server` on SQLite
//! (its admin URL and credential printed), this device enrolled to it, and the tray app
//! (with a display) or `warden watch` (without one) enforcing the server's policy.

use crate::{cargo, check, project_root};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const LISTEN: &str = "127.0.0.1:8470";

fn data_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .context("HOME is not set")?;
    Ok(base.join("warden-server"))
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buffer)).context("reading /dev/urandom")?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// The admin token and enroll secret of the local server: made once, kept (mode 0600) beside
/// its database so every `cargo xtask run` can print them.
fn credentials(dir: &Path) -> Result<(String, String)> {
    let file = dir.join("xtask-run-credentials");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let mut lines = text.lines();
        if let (Some(admin), Some(secret)) = (lines.next(), lines.next()) {
            return Ok((admin.to_owned(), secret.to_owned()));
        }
    }
    let admin = format!("wat_{}", random_hex(24)?);
    let secret = format!("wes_{}", random_hex(24)?);
    std::fs::create_dir_all(dir)?;
    std::fs::write(&file, format!("{admin}\n{secret}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((admin, secret))
}

fn target_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| project_root().join("target"), PathBuf::from);
    target.join("debug").join(name)
}

pub fn run() -> Result<()> {
    let display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
    let mut build = cargo();
    build.args(["build", "--quiet", "-p", "warden", "-p", "warden-server"]);
    if display {
        build.args(["-p", "warden-tray"]);
    }
    check(&mut build)?;

    let dir = data_dir()?;
    let (admin, secret) = credentials(&dir)?;
    let mut server = Command::new(target_bin("warden-server"))
        .args(["--listen", LISTEN, "--data-dir"])
        .arg(&dir)
        .env("WARDEN_ADMIN_TOKEN", &admin)
        .env("WARDEN_ENROLL_SECRET", &secret)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting warden-server")?;
    let mut lines = BufReader::new(server.stdout.take().context("server stdout")?).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("Listening on ") {
            url = Some(rest.trim().to_owned());
            break;
        }
    }
    let Some(url) = url else {
        let _ = server.wait();
        bail!("warden-server stopped before listening (is {LISTEN} in use?)");
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("[server] {line}");
        }
    });
    println!("Admin login: {url}/admin with the admin token {admin}");
    println!("Enroll secret: {secret}");

    let warden = target_bin("warden");
    let device_token = enroll_device(&warden, &url, &secret).inspect_err(|_| {
        let _ = server.kill();
    })?;

    let mut front = if display {
        println!("Starting the tray app, enrolled to {url}");
        with_token(Command::new(target_bin("warden-tray")), &device_token).spawn().context("starting warden-tray")?
    } else {
        println!("No display: running `warden watch`, enrolled to {url} (Ctrl-C stops everything)");
        with_token(Command::new(&warden), &device_token).arg("watch").spawn().context("starting warden watch")?
    };
    let result = front.wait();
    let _ = server.kill();
    let _ = server.wait();
    result.context("waiting for the front end")?;
    Ok(())
}

/// Enrolls this device to the local server unless it already is, with its token in the OS
/// keyring. Where no keyring exists (a bare server or container without a session bus),
/// falls back to the documented `--print-token` path and returns the token, which is then
/// handed to the front end in `WARDEN_DEVICE_TOKEN` (never written to a file).
fn enroll_device(warden: &Path, url: &str, secret: &str) -> Result<Option<String>> {
    let status = Command::new(warden).args(["status", "--json"]).output().context("running warden status")?;
    let status = String::from_utf8_lossy(&status.stdout);
    if status.contains(&format!("\"server\": \"{url}\"")) && status.contains("keyring") {
        return Ok(None);
    }
    if Command::new(warden).args(["enroll", "--server", url, "--secret", secret]).status()?.success() {
        return Ok(None);
    }
    println!("xtask: no OS keyring here; enrolling with the token handed over in WARDEN_DEVICE_TOKEN instead");
    let output = Command::new(warden)
        .args(["enroll", "--print-token", "--server", url, "--secret", secret])
        .stderr(Stdio::inherit())
        .output()
        .context("running warden enroll --print-token")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout.lines().find_map(|line| line.strip_prefix("WARDEN_DEVICE_TOKEN="));
    match token {
        Some(token) if output.status.success() => Ok(Some(token.trim().to_owned())),
        _ => bail!("enrolling this device failed: {}", stdout.trim()),
    }
}

fn with_token(mut command: Command, token: &Option<String>) -> Command {
    if let Some(token) = token {
        command.env("WARDEN_DEVICE_TOKEN", token);
    }
    command
}
