// SPDX-License-Identifier: GPL-2.0
// Warden's kernel half of the network layer: cgroup/connect4, connect6, sendmsg4, sendmsg6.
//
// Every connect() and every unconnected UDP sendmsg() of a process in the cgroup the programs are
// attached to (the cgroup v2 root in the product, a test's own cgroup in tests) looks its
// destination address up in the governed prefixes (LPM tries, one per family). A hit whose
// action is BLOCK is refused (the caller gets EPERM before a byte leaves) unless the process's
// tgid is open (an approved exception's launch tree); every hit is reported on the ring buffer
// with pid, tgid, uid, address, port and protocol. Misses cost one trie lookup and return.
// A v4-mapped IPv6 destination (::ffff:a.b.c.d) in connect6/sendmsg6 is looked up as IPv4.
// Compiled by Debian's clang -O2 -g -target bpf in build.rs; loaded by aya (warden-net).
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ACTION_BLOCK 1
#define ACTION_OBSERVE 2

#define VERDICT_DENIED 1
#define VERDICT_OBSERVED 2
#define VERDICT_OPEN 3

#define HOOK_CONNECT4 1
#define HOOK_CONNECT6 2
#define HOOK_SENDMSG4 3
#define HOOK_SENDMSG6 4

struct v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

// Must match warden-net's `RawEvent` (src/kernel.rs) byte for byte.
struct event {
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u8 family; // 4 or 6 (a v4-mapped address is reported as 4)
	__u8 verdict;
	__u8 hook;
	__u8 protocol; // IPPROTO_TCP, IPPROTO_UDP
	__u8 addr[16];
	__u16 port; // host order
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct v4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} GOVERNED_V4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct v6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} GOVERNED_V6 SEC(".maps");

// tgid -> grant number (an approved exception's launch tree); children are added by the fork
// program below, so a tool's helpers inherit its opening.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} OPEN_TGIDS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} EVENTS SEC(".maps");

static __always_inline int decide(__u32 action, __u8 family, const __u8 *addr, __u16 port, __u8 hook,
				  __u32 protocol)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u8 verdict;
	if (bpf_map_lookup_elem(&OPEN_TGIDS, &tgid))
		verdict = VERDICT_OPEN;
	else if (action == ACTION_BLOCK)
		verdict = VERDICT_DENIED;
	else
		verdict = VERDICT_OBSERVED;
	struct event *e = bpf_ringbuf_reserve(&EVENTS, sizeof(struct event), 0);
	if (e) {
		e->pid = (__u32)pid_tgid;
		e->tgid = tgid;
		e->uid = (__u32)bpf_get_current_uid_gid();
		e->family = family;
		e->verdict = verdict;
		e->hook = hook;
		e->protocol = (__u8)protocol;
		__builtin_memset(e->addr, 0, sizeof(e->addr));
		if (family == 4)
			__builtin_memcpy(e->addr, addr, 4);
		else
			__builtin_memcpy(e->addr, addr, 16);
		e->port = port;
		e->pad = 0;
		bpf_ringbuf_submit(e, 0);
	}
	return verdict == VERDICT_DENIED ? 0 : 1;
}

static __always_inline int check4(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct v4_key key = { .prefixlen = 32 };
	__u32 ip = ctx->user_ip4;
	__builtin_memcpy(key.addr, &ip, 4);
	__u32 *action = bpf_map_lookup_elem(&GOVERNED_V4, &key);
	if (!action)
		return 1;
	return decide(*action, 4, key.addr, bpf_ntohs((__u16)ctx->user_port), hook, ctx->protocol);
}

static __always_inline int check6(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff)) {
		struct v4_key key = { .prefixlen = 32 };
		__builtin_memcpy(key.addr, &w3, 4);
		__u32 *action = bpf_map_lookup_elem(&GOVERNED_V4, &key);
		if (!action)
			return 1;
		return decide(*action, 4, key.addr, port, hook, ctx->protocol);
	}
	struct v6_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, &w0, 4);
	__builtin_memcpy(key.addr + 4, &w1, 4);
	__builtin_memcpy(key.addr + 8, &w2, 4);
	__builtin_memcpy(key.addr + 12, &w3, 4);
	__u32 *action = bpf_map_lookup_elem(&GOVERNED_V6, &key);
	if (!action)
		return 1;
	return decide(*action, 6, key.addr, port, hook, ctx->protocol);
}

SEC("cgroup/connect4")
int warden_connect4(struct bpf_sock_addr *ctx)
{
	return check4(ctx, HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int warden_connect6(struct bpf_sock_addr *ctx)
{
	return check6(ctx, HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int warden_sendmsg4(struct bpf_sock_addr *ctx)
{
	return check4(ctx, HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int warden_sendmsg6(struct bpf_sock_addr *ctx)
{
	return check6(ctx, HOOK_SENDMSG6);
}

// Only the two fields read below; clang records CO-RE relocations for them, and the loader fixes
// their offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).
struct task_struct {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

// A new process whose parent's tgid is open joins the opening (same grant): the launch tree of an
// approved exception's tool, its helpers included. Threads share their tgid and need nothing.
SEC("tp_btf/sched_process_fork")
int warden_fork(__u64 *ctx)
{
	struct task_struct *child = (struct task_struct *)ctx[1];
	__u32 parent_tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 *grant = bpf_map_lookup_elem(&OPEN_TGIDS, &parent_tgid);
	if (!grant)
		return 0;
	__u32 child_tgid = child->tgid;
	if (child_tgid == parent_tgid)
		return 0;
	__u32 value = *grant;
	bpf_map_update_elem(&OPEN_TGIDS, &child_tgid, &value, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
