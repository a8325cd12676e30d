//! The nftables fallback for real, on test-owned things only: a network namespace this test
//! creates (`ip netns`; the table lives there, never in the machine's own ruleset), loopback
//! addresses inside it, and a cgroup v2 folder the test creates for the exception launch trees.
//! Everything is removed at the end, also on failure (Drop guards). Needs root and `nft`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;
use warden_net::kernel::{KernelAction, KernelRule};
use warden_net::nft::{NftFallback, NftOptions};
use warden_policy::Cidr;

/// A network namespace owned by the test, with its loopback up; deleted on drop.
struct TestNetns {
    name: String,
    children: Vec<Child>,
}

impl TestNetns {
    fn new() -> TestNetns {
        let name = format!("warden-nft-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
        assert!(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]).status().unwrap().success());
        // IPv6: the governed address and, apart from it, the address clients send from (a refusal
        // answers the sender; were it the governed address itself, the answer would be refused too).
        for address in [CLIENT_V6, GOVERNED_V6] {
            let cidr = format!("{address}/128");
            let added = Command::new("ip").args(["-n", &name, "addr", "add", &cidr, "dev", "lo", "nodad"]).status();
            assert!(added.unwrap().success());
        }
        TestNetns { name, children: Vec::new() }
    }

    /// The command prefix that runs a program in the namespace (the network namespace only: the
    /// cgroup hierarchy stays the machine's, which `socket cgroupv2` paths are resolved against).
    fn enter(&self) -> Vec<OsString> {
        vec!["nsenter".into(), format!("--net=/run/netns/{}", self.name).into()]
    }

    fn command(&self, program: &str) -> Command {
        let prefix = self.enter();
        let mut command = Command::new(&prefix[0]);
        command.args(&prefix[1..]).arg(program);
        command
    }

    /// Listens on each TCP `address` inside the namespace until the test ends.
    fn listen(&mut self, addresses: &[&str]) {
        let code = r#"
import socket, sys, threading, time
for address in sys.argv[1:]:
    host, port = address.rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port))); s.listen(64)
    threading.Thread(target=lambda s=s: [s.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
print("listening", flush=True)
time.sleep(600)
"#;
        let mut child =
            self.command("python3").arg("-c").arg(code).args(addresses).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "listening");
        self.children.push(child);
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A client inside the namespace: a shell that runs one python probe per line it reads (each
/// probe a child of the shell, so it is born in whatever cgroup the shell is in now).
struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const CLIENT_V6: &str = "fd00::1";
const GOVERNED_V6: &str = "fd00::21";

/// Tries `proto:host:port` (IPv6 from fd00::1); prints `ok` or the errno's name.
const PROBE: &str = r#"
import errno, socket, sys
proto, rest = sys.argv[1].split(":", 1)
host, port = rest.rsplit(":", 1)
family = socket.AF_INET6 if ":" in host else socket.AF_INET
try:
    if proto == "tcp":
        s = socket.socket(family, socket.SOCK_STREAM); s.settimeout(2)
        if family == socket.AF_INET6: s.bind(("fd00::1", 0))
        s.connect((host, int(port)))
    else:
        s = socket.socket(family, socket.SOCK_DGRAM); s.sendto(b"x", (host, int(port)))
    print("ok", flush=True)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)), flush=True)
"#;

impl Client {
    fn start(netns: &TestNetns) -> Client {
        let mut child = netns
            .command("/bin/sh")
            .arg("-c")
            .arg("while read target; do /usr/bin/python3 -c \"$0\" \"$target\"; done")
            .arg(PROBE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Client { child, stdin, stdout }
    }

    fn try_each(&mut self, targets: &[&str]) -> Vec<String> {
        targets
            .iter()
            .map(|target| {
                writeln!(self.stdin, "{target}").unwrap();
                self.stdin.flush().unwrap();
                let mut line = String::new();
                self.stdout.read_line(&mut line).unwrap();
                line.trim().to_owned()
            })
            .collect()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts.lines().find(|l| l.split(' ').nth(2) == Some("cgroup2")).expect("a cgroup2 mount");
    PathBuf::from(line.split(' ').nth(1).unwrap())
}

/// The test's own cgroup v2 folder (the fallback's exception cgroup goes below it); removed last.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.0.display());
    }
}

fn ranges(list: &[(&str, KernelAction)]) -> BTreeMap<Cidr, KernelRule> {
    list.iter().map(|(c, a)| (c.parse().unwrap(), (*a).into())).collect()
}

#[test]
fn the_fallback_refuses_governed_prefixes_and_opens_an_exceptions_launch_tree_by_cgroup() {
    let mut netns = TestNetns::new();
    netns.listen(&["127.0.0.21:8080", "127.0.0.22:8080", "127.0.0.24:8080", &format!("{GOVERNED_V6}:8080")]);
    let test_cgroup = TestCgroup(cgroup2_mount().join(format!("warden-test-nft-{}", std::process::id())));
    std::fs::create_dir_all(&test_cgroup.0).unwrap();
    let table = format!("warden_test_{}", std::process::id());
    let mut nft = netns.enter();
    nft.push("nft".into());
    let options = NftOptions {
        table: table.clone(),
        open_cgroup: test_cgroup.0.join("open"),
        cgroup_root: cgroup2_mount(),
        nft: nft.clone(),
    };
    let mut fallback = NftFallback::install(options.clone()).expect("install in the test namespace");
    let mut governed = ranges(&[
        ("127.0.0.21/32", KernelAction::Block),
        ("127.0.0.22/32", KernelAction::Observe),
        ("fd00::21/128", KernelAction::Block),
    ]);
    // A shared front end's address: a table cannot tell the names apart, so it is never refused.
    governed.insert("127.0.0.24/32".parse().unwrap(), KernelRule { action: KernelAction::Block, shared: true });
    fallback.set_ranges(&governed).unwrap();
    let targets = [
        "tcp:127.0.0.21:8080",
        "tcp:127.0.0.22:8080",
        "tcp:fd00::21:8080",
        "udp:127.0.0.21:443",
        "udp:127.0.0.23:443",
        "tcp:127.0.0.24:8080",
    ];
    let mut client = Client::start(&netns);
    // TCP gets a reset (ECONNREFUSED), a datagram is dropped on its way out (EPERM); observe
    // prefixes pass (the fallback cannot report them), ungoverned addresses pass.
    assert_eq!(client.try_each(&targets), ["ECONNREFUSED", "ok", "ECONNREFUSED", "EPERM", "ok", "ok"]);

    // An exception opens the client's launch tree: the shell moves, its next probe is born inside.
    fallback.open(client.child.id(), 7).unwrap();
    assert_eq!(fallback.open_tgids(), [(client.child.id(), 7)]);
    assert_eq!(client.try_each(&targets), ["ok", "ok", "ok", "ok", "ok", "ok"]);
    // Another process of the same user, not in the launch tree, stays refused.
    let mut other = Client::start(&netns);
    assert_eq!(other.try_each(&targets[..1]), ["ECONNREFUSED"]);

    // Closing the grant puts the shell back where it came from: refused again.
    let origin = std::fs::read_to_string(format!("/proc/{}/cgroup", other.child.id())).unwrap();
    assert_eq!(fallback.close_grant(7).unwrap(), 1);
    assert_eq!(std::fs::read_to_string(format!("/proc/{}/cgroup", client.child.id())).unwrap(), origin);
    assert_eq!(client.try_each(&targets[..1]), ["ECONNREFUSED"]);

    // Emptied sets refuse nothing.
    fallback.set_ranges(&BTreeMap::new()).unwrap();
    assert_eq!(client.try_each(&targets[..1]), ["ok"]);

    // A malformed name or a cgroup outside /sys/fs/cgroup is refused before anything is written.
    let bad = NftOptions { table: "warden; flush ruleset".into(), ..options.clone() };
    assert!(NftFallback::install(bad).is_err());
    let elsewhere = NftOptions { open_cgroup: "/tmp/not-a-cgroup".into(), ..options.clone() };
    assert!(NftFallback::install(elsewhere).is_err());

    // Dropped: the table is gone from the namespace and the exception cgroup removed.
    drop(fallback);
    let listed = Command::new(&nft[0]).args(&nft[1..]).args(["list", "tables"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&table), "{listed:?}");
    assert!(!options.open_cgroup.exists());
    // The machine's own ruleset never had it.
    let host = Command::new("nft").args(["list", "tables"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&host.stdout).contains(&table));
}
