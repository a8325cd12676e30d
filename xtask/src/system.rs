//! `cargo xtask run`: the whole system on one machine — a local `warden-server` on SQLite
//! (its admin URL and credential printed); as root, the system service `wardend` enrolled to it
//! (gate on a tmpfs of its own) with the tray app (with a display) or `warden watch` (without
//! one) as its client; as anyone else, the personal mode. Ctrl-C ends everything cleanly.

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
    build.args(["build", "--quiet", "-p", "warden", "-p", "warden-server", "-p", "warden-service"]);
    if display {
        build.args(["-p", "warden-tray"]);
    }
    check(&mut build)?;
    let mut children = Children::default();
    // Ctrl-C reaches every child from the terminal; `kill -INT`/`-TERM` of xtask alone must stop
    // them too. Either way xtask stays to wait for them (a closed pipe must not be the way the
    // server learns it should stop).
    let stopping = children.pids.clone();
    ctrlc::set_handler(move || {
        for pid in stopping.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    })
    .context("handling Ctrl-C")?;
    let result = run_all(display, &mut children);
    children.stop_all();
    result
}

fn run_all(display: bool, children: &mut Children) -> Result<()> {
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
    children.add("warden-server", server);
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
    if crate::is_root() {
        let service = SystemService::prepare(&dir, &url, &secret)?;
        // The vendors' managed files go under the server's data folder, not this machine's /etc.
        let wardend = Command::new(target_bin("wardend"))
            .arg("--config")
            .arg(&service.config)
            .arg("--root")
            .arg(dir.join("vendor-files"))
            .spawn()
            .context("starting wardend")?;
        children.add("wardend", wardend);
        service.wait_until_answering(&warden, children)?;
        println!(
            "xtask: wardend enforces as root on every process; its pre-exec gate covers {} only, its network \
             hooks the cgroup warden-xtask-run only (move a shell in: `echo $$ | sudo tee \
             <cgroup2 mount>/warden-xtask-run/cgroup.procs`). Try `{} status` as any user.",
            service.gated.display(),
            warden.display()
        );
        let front = if display {
            println!("Starting the tray app as a client of the service");
            Command::new(target_bin("warden-tray")).env("WARDEN_SOCKET", &service.socket).spawn()
        } else {
            println!("No display: following the service with `warden watch` (Ctrl-C stops everything)");
            Command::new(&warden).args(["watch", "--socket"]).arg(&service.socket).spawn()
        };
        children.add("front end", front.context("starting the front end")?);
        let ended = children.wait_any();
        children.stop_all();
        service.unmount();
        return ended;
    }

    println!(
        "xtask: not root: personal mode (the runtime runs as you; `sudo cargo xtask run` starts the system service)"
    );
    let device_token = enroll_device(&warden, &url, &secret)?;
    let front = if display {
        println!("Starting the tray app, enrolled to {url}");
        with_token(Command::new(target_bin("warden-tray")), &device_token).spawn().context("starting warden-tray")?
    } else {
        println!("No display: running `warden watch`, enrolled to {url} (Ctrl-C stops everything)");
        with_token(Command::new(&warden), &device_token).arg("watch").spawn().context("starting warden watch")?
    };
    children.add("front end", front);
    children.wait_any()
}

/// The child processes of `run`, stopped with SIGTERM (then SIGKILL after 10 s) in reverse
/// order of their start when one of them ends or on Ctrl-C.
#[derive(Default)]
struct Children {
    running: Vec<(&'static str, std::process::Child)>,
    pids: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
}

impl Children {
    fn add(&mut self, name: &'static str, child: std::process::Child) {
        self.pids.lock().unwrap_or_else(|p| p.into_inner()).push(child.id());
        self.running.push((name, child));
    }

    /// Waits until any child ends; its failure is the result.
    fn wait_any(&mut self) -> Result<()> {
        loop {
            for (name, child) in &mut self.running {
                if let Some(status) = child.try_wait().with_context(|| format!("waiting for {name}"))? {
                    // 130/143 and death by SIGINT/SIGTERM are the asked-for ends.
                    use std::os::unix::process::ExitStatusExt;
                    let asked = matches!(status.code(), Some(0 | 130 | 143)) || matches!(status.signal(), Some(2 | 15));
                    if asked {
                        return Ok(());
                    }
                    bail!("{name} ended: {status}");
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn stop_all(&mut self) {
        while let Some((name, mut child)) = self.running.pop() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                if child.try_wait().ok().flatten().is_none() {
                    eprintln!("xtask: {name} did not stop within 10 s; killing it");
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
    }
}

/// `wardend` as `cargo xtask run` starts it: its own configuration, state and enroll secret
/// under the server's data folder, the default socket, and the pre-exec gate on a tmpfs of its
/// own (not `/`: a developer's machine keeps running while they try Warden).
struct SystemService {
    config: PathBuf,
    socket: PathBuf,
    gated: PathBuf,
}

impl SystemService {
    fn prepare(dir: &Path, url: &str, secret: &str) -> Result<SystemService> {
        use std::os::unix::fs::PermissionsExt;
        let gated = dir.join("gated");
        std::fs::create_dir_all(&gated)?;
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .any(|line| line.split(' ').nth(1) == Some(&*gated.to_string_lossy()));
        if !mounted {
            check(
                Command::new("mount").args(["-t", "tmpfs", "-o", "mode=1777,size=256m", "warden-gated"]).arg(&gated),
            )?;
        }
        let secret_file = dir.join("enroll-secret");
        std::fs::write(&secret_file, secret)?;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600))?;
        // The developer who ran `sudo cargo xtask run` is the device's owner.
        let login = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "root".into());
        let socket = PathBuf::from("/run/warden/warden.sock");
        // The network hooks on a cgroup of their own, as the gate on a tmpfs: a shell moved into it
        // (`echo $$ | sudo tee …/cgroup.procs`) is governed, the rest of the machine is not.
        let cgroup = std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .find(|l| l.split(' ').nth(2) == Some("cgroup2"))
            .and_then(|l| l.split(' ').nth(1))
            .map(|root| Path::new(root).join("warden-xtask-run"));
        let network = match &cgroup {
            Some(cgroup) if std::fs::create_dir_all(cgroup).is_ok() => {
                format!("\n[network]\ncgroup = {:?}\n", cgroup.display().to_string())
            }
            _ => "\n[network]\nenabled = false\n".to_owned(),
        };
        let config = dir.join("wardend.toml");
        let text = format!(
            "# Written by `cargo xtask run`.\n\
             state_dir = {state:?}\nsocket = {socket:?}\ngate = [{gated:?}]\n\n\
             [server]\nurl = {url:?}\nenroll_secret_file = {secret_file:?}\nowner = \"{login}@localhost\"\n\
             local_users = [{login:?}]\n{network}",
            state = dir.join("wardend-state").display().to_string(),
            socket = socket.display().to_string(),
            gated = gated.display().to_string(),
            secret_file = secret_file.display().to_string(),
        );
        std::fs::write(&config, text)?;
        Ok(SystemService { config, socket, gated })
    }

    /// Waits (up to 30 s) until `warden status` answers through the socket.
    fn wait_until_answering(&self, warden: &Path, children: &mut Children) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let status = Command::new(warden).arg("--socket").arg(&self.socket).arg("status").output()?;
            if status.status.success() {
                print!("{}", String::from_utf8_lossy(&status.stdout));
                return Ok(());
            }
            if let Some((name, child)) = children.running.iter_mut().find(|(n, _)| *n == "wardend")
                && let Some(ended) = child.try_wait()?
            {
                bail!("{name} ended before answering: {ended}");
            }
            if std::time::Instant::now() > deadline {
                bail!("wardend did not answer on {} within 30 s", self.socket.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn unmount(&self) {
        let _ = Command::new("umount").arg(&self.gated).status();
    }
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
