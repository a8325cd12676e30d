//! Warden's OS edge for the network: the kernel hooks that see and refuse connections to governed
//! destinations, and the resolver that turns governed names into the addresses those hooks hold.
//!
//! - [`kernel`] (Linux): the eBPF programs `cgroup/connect4`, `connect6`, `sendmsg4`, `sendmsg6`
//!   (written in C, `bpf/connect.bpf.c`, compiled by clang in `build.rs`) plus a `tp_btf`
//!   fork hook, loaded with `aya` and attached to a cgroup v2 folder: [`kernel::Firewall`] owns
//!   them (detached on drop), updates the maps and yields [`kernel::KernelEvent`]s.
//! - [`nft`] (Linux): the fallback where the hooks cannot load — an nftables table refusing the
//!   governed `block` prefixes for every process, exception launch trees opened by moving them
//!   into a cgroup the table accepts; no per-connection events.
//! - [`resolve`]: names to addresses through the system resolver (`getaddrinfo`, so
//!   `/etc/hosts` and nsswitch apply), re-resolved on an interval, last good addresses kept.
//!
//! This crate decides nothing: the policy core (`warden_policy::decide_connect`,
//! `Destinations::ranges`) says what is governed; the service (`warden-service`) wires the two.
//! It is the only crate using `aya`.

#[cfg(target_os = "linux")]
pub mod kernel;
#[cfg(target_os = "linux")]
pub mod nft;
pub mod resolve;

pub use resolve::{Resolved, Resolver};
