//! The browser policy Warden writes, read by Debian's real Chromium: a blocked AI web app's page
//! is refused by the browser (`ERR_BLOCKED_BY_ADMINISTRATOR`) before any request leaves it, and
//! a page the policy does not block loads. Chromium reads its policies only from
//! `/etc/chromium/policies/managed`; the test runs it in a private mount namespace of its own
//! (`unshare -m`) where `/etc/chromium` is the scratch root's, so the machine's /etc is never
//! touched. Offline: both pages are served on loopback by the test.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use warden_policy::Policy;
use warden_service::controls::{ControlsOptions, Keeper, located};

/// A loopback page that counts the HTTP requests it gets.
fn page() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            // Chromium may open a connection ahead (preconnect); only a request counts.
            let mut buffer = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            if !matches!(stream.read(&mut buffer), Ok(n) if n > 0) {
                continue;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let body = "<html><body><p id=\"x\">the page loaded</p></body></html>";
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    (port, hits)
}

/// Chromium, headless, with `/etc/chromium` replaced by `etc_chromium` in its own mount namespace.
fn chromium(etc_chromium: &std::path::Path, profile: &std::path::Path, url: &str) -> (String, String) {
    let script = format!(
        "mount --bind {} /etc/chromium && exec chromium --headless --no-sandbox --disable-gpu --no-first-run \
         --user-data-dir={} --dump-dom {url}",
        etc_chromium.display(),
        profile.display()
    );
    let output = Command::new("timeout").args(["60", "unshare", "-m", "sh", "-c", &script]).output().unwrap();
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn chromium_refuses_the_blocked_web_app_and_loads_the_rest() {
    let (blocked_port, blocked_hits) = page();
    let (open_port, open_hits) = page();
    let text = format!(
        "name = \"browser test\"\ndefault_action = \"allow\"\n\
         [assistant]\nname = \"Internal Assistant\"\nurl = \"http://127.0.0.1:{open_port}/\"\n\
         [tools.test-web-app]\naction = \"block\"\n\
         [[catalog]]\nid = \"test-web-app\"\nname = \"Test web app\"\nvendor = \"Warden tests\"\nkind = \"desktop-app\"\n\
         web_apps = [\"127.0.0.1:{blocked_port}\"]\n"
    );
    let policy = Policy::parse("browser.toml", &text).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let options = ControlsOptions { root: root.clone(), state_dir: scratch.path().join("state"), watch: true };
    let _keeper = Keeper::start(options, &policy, &[], Box::new(|_| {})).unwrap();
    let written = std::fs::read_to_string(located(&root, "/etc/chromium/policies/managed/warden.json")).unwrap();
    assert!(written.contains(&format!("127.0.0.1:{blocked_port}")), "{written}");
    let machine_before = std::fs::read_dir("/etc/chromium").map(|d| d.count()).unwrap_or(0);

    let etc = root.join("etc/chromium");
    let (dom, log) = chromium(&etc, &scratch.path().join("profile-1"), &format!("http://127.0.0.1:{blocked_port}/"));
    assert!(log.contains("ERR_BLOCKED_BY_ADMINISTRATOR"), "not blocked:\n{log}\n{dom}");
    assert!(!dom.contains("the page loaded"));
    assert_eq!(blocked_hits.load(Ordering::SeqCst), 0, "the blocked page was requested");

    let (dom, log) = chromium(&etc, &scratch.path().join("profile-2"), &format!("http://127.0.0.1:{open_port}/"));
    assert!(dom.contains("the page loaded"), "the assistant's page did not load:\n{log}\n{dom}");
    assert!(open_hits.load(Ordering::SeqCst) >= 1);
    let machine_after = std::fs::read_dir("/etc/chromium").map(|d| d.count()).unwrap_or(0);
    assert_eq!(machine_before, machine_after, "the machine's /etc/chromium changed");
}
