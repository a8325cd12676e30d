//! Compiles the kernel half (`bpf/connect.bpf.c`) with clang for the BPF target into
//! `$OUT_DIR/connect.bpf.o`, which `src/kernel.rs` embeds. A Rust BPF toolchain cannot be fetched
//! here; Debian's `clang -O2 -g -target bpf` with `libbpf-dev`'s headers is what was measured to
//! work (see ARCHITECTURE.md).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/connect.bpf.c");
    println!("cargo:rerun-if-env-changed=CLANG");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("connect.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    // <linux/types.h> includes <asm/types.h>, which Debian keeps under the multiarch folder.
    let multiarch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-target", "bpf"])
        .arg(format!("-I/usr/include/{multiarch}"))
        .args(["-c", "bpf/connect.bpf.c", "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "warden-net: `{clang} -target bpf` failed ({s}) compiling bpf/connect.bpf.c; is libbpf-dev installed \
             (`cargo xtask setup`, or `apt-get install clang libbpf-dev`)?"
        ),
        Err(e) => panic!(
            "warden-net: cannot run `{clang}` ({e}): the eBPF program is compiled by clang. Install it with \
             `cargo xtask setup` (or `apt-get install clang libbpf-dev`), or point CLANG at a clang binary."
        ),
    }
}
