// SPDX-License-Identifier: GPL-2.0
// Warden's kernel half of the network layer: cgroup/connect4, connect6, sendmsg4, sendmsg6, and
// cgroup_skb/ingress for DNS answers.
//
// Every connect() and every unconnected UDP sendmsg() of a process in the cgroup the programs are
// attached to (the cgroup v2 root in the product, a test's own cgroup in tests) looks its
// destination address up in the governed prefixes (LPM tries, one per family). A hit whose
// action is BLOCK is refused (the caller gets EPERM before a byte leaves) unless the process's
// tgid is open (an approved exception's launch tree); every hit is reported on the ring buffer
// with pid, tgid, uid, address, port and protocol. Misses cost one trie lookup and return.
// A v4-mapped IPv6 destination (::ffff:a.b.c.d) in connect6/sendmsg6 is looked up as IPv4.
//
// DNS answers (UDP from port 53) reaching a socket that sent a query from this cgroup are read
// in the kernel, before the process can see them: the question's name is matched against the
// governed names (NAMES: hashes of names and of domains), and for every A/AAAA record the
// process's (tgid, address) is remembered as reached through a governed or an unrelated name
// (GOVERNED_BY, UNRELATED_BY). An address of a governed name the tries do not hold yet is added at once (learned;
// reported so the service can age it by its TTL). A prefix flagged SHARED (front ends serving
// unrelated names too) is decided by that memory: refused for a process that resolved a
// governed name to it, let through for one that resolved an unrelated name, and let through but
// reported as unnamed when the process resolved nothing we saw (a hard-coded address, a cache
// daemon, encrypted DNS).
// Compiled by Debian's clang -O2 -g -target bpf in build.rs; loaded by aya (warden-net).
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ACTION_BLOCK 1
#define ACTION_OBSERVE 2
// Held so a learned answer never blocks it (the sanctioned assistant's addresses): let through.
#define ACTION_ALLOW 3
#define ACTION_MASK 0xff
// The prefix is shared with unrelated names: decided by the name the process resolved.
#define FLAG_SHARED 0x100

#define VERDICT_DENIED 1
#define VERDICT_OBSERVED 2
#define VERDICT_OPEN 3
// A shared prefix reached by a process whose DNS answer for it we never saw: let through.
#define VERDICT_UNNAMED 4

#define HOOK_CONNECT4 1
#define HOOK_CONNECT6 2
#define HOOK_SENDMSG4 3
#define HOOK_SENDMSG6 4
// Not a connection: a `struct dns_event` (the byte at offset 14 tells the two apart).
#define HOOK_DNS 5

#define NAME_EXACT 1
#define NAME_UNDER 2

#define DNS_MAX 512
#define MAX_LABELS 32
#define MAX_ANSWERS 16
#define EVENT_ANSWERS 8
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

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

// Socket cookie -> the process that sent a DNS query on it (set by the hooks above for port 53;
// the ingress program runs in softirq context, where the current task means nothing).
struct dns_socket {
	__u32 tgid;
	__u32 uid;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dns_socket);
} DNS_SOCKETS SEC(".maps");

// (tgid, address) a process reached through a governed name (GOVERNED_BY) or an unrelated one
// (UNRELATED_BY): two maps, so that a flood of unrelated answers can never evict the record
// that keeps a governed name's address refused; a governed record wins over an unrelated one.
struct resolved_key {
	__u32 tgid;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct resolved_key);
	__type(value, __u32);
} GOVERNED_BY SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct resolved_key);
	__type(value, __u32);
} UNRELATED_BY SEC(".maps");

// Governed names: FNV-1a 64 of the name's DNS wire form, lower case, read backwards (so every
// suffix of a name is hashed in one pass), with NAME_EXACT (the name itself) or NAME_UNDER (every
// name below it) -> action | FLAG_SHARED. Filled by warden-net (`name_hash`).
struct name_key {
	__u64 hash;
	__u32 kind;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct name_key);
	__type(value, __u32);
} NAMES SEC(".maps");

// Must match warden-net's `DnsAnswer::parse` (src/kernel.rs) byte for byte.
struct dns_record {
	__u8 family; // 4 or 6
	__u8 learned; // 1: added to the tries by this answer
	__u16 pad;
	__u32 ttl; // seconds, as the answer gave it
	__u8 addr[16];
};

struct dns_event {
	__u32 pid; // 0: not known in softirq context
	__u32 tgid;
	__u32 uid;
	__u8 family; // 0
	__u8 verdict; // 0
	__u8 hook; // HOOK_DNS
	__u8 protocol; // IPPROTO_UDP
	__u16 name_len; // bytes of wire-form name in `name`
	__u8 count; // records in `records`
	__u8 action; // the name's action
	__u8 name[256];
	struct dns_record records[EVENT_ANSWERS];
};

// Per-CPU scratch: the answer being read and the event being built (too big for the stack).
struct scratch {
	__u8 msg[DNS_MAX * 2];
	struct dns_event event;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} SCRATCH SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} EVENTS SEC(".maps");

static __always_inline int decide(__u32 value, __u8 family, const __u8 *addr, __u16 port, __u8 hook,
				  __u32 protocol)
{
	__u32 action = value & ACTION_MASK;
	if (action == ACTION_ALLOW)
		return 1;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	int named = 1;
	if (value & FLAG_SHARED) {
		struct resolved_key key = { .tgid = tgid, .family = family };
		if (family == 4)
			__builtin_memcpy(key.addr, addr, 4);
		else
			__builtin_memcpy(key.addr, addr, 16);
		if (!bpf_map_lookup_elem(&GOVERNED_BY, &key)) {
			// Reached through an unrelated name on a shared front end: not governed traffic.
			if (bpf_map_lookup_elem(&UNRELATED_BY, &key))
				return 1;
			named = 0;
		}
	}
	__u8 verdict;
	if (bpf_map_lookup_elem(&OPEN_TGIDS, &tgid))
		verdict = VERDICT_OPEN;
	else if (!named)
		verdict = VERDICT_UNNAMED;
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

// A query to port 53 (connect() of glibc's UDP socket, or sendto()): remember whose socket it is,
// so the answer can be read for that process.
static __always_inline void note_dns_socket(struct bpf_sock_addr *ctx, __u16 port)
{
	if (port != 53)
		return;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct dns_socket owner = {
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.uid = (__u32)bpf_get_current_uid_gid(),
	};
	bpf_map_update_elem(&DNS_SOCKETS, &cookie, &owner, BPF_ANY);
}

static __always_inline int check4(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct v4_key key = { .prefixlen = 32 };
	__u32 ip = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	note_dns_socket(ctx, port);
	__builtin_memcpy(key.addr, &ip, 4);
	__u32 *action = bpf_map_lookup_elem(&GOVERNED_V4, &key);
	if (!action)
		return 1;
	return decide(*action, 4, key.addr, port, hook, ctx->protocol);
}

static __always_inline int check6(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	note_dns_socket(ctx, port);
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

// One A/AAAA record of an answer to `tgid`'s question: remember which kind of name reached the
// address, learn a governed name's new address, and note it for the event.
static __always_inline void note_record(struct dns_event *e, __u32 tgid, __u32 name_value, int governed,
					__u8 family, const __u8 *addr, __u32 ttl)
{
	__u32 *entry;
	if (family == 4) {
		struct v4_key key = { .prefixlen = 32 };
		__builtin_memcpy(key.addr, addr, 4);
		entry = bpf_map_lookup_elem(&GOVERNED_V4, &key);
	} else {
		struct v6_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, addr, 16);
		entry = bpf_map_lookup_elem(&GOVERNED_V6, &key);
	}
	struct resolved_key rkey = { .tgid = tgid, .family = family };
	__builtin_memcpy(rkey.addr, addr, family == 4 ? 4 : 16);
	__u32 mark = 1;
	if (!governed) {
		// Only a shared front end needs to know an unrelated name reached it.
		if (entry && (*entry & FLAG_SHARED))
			bpf_map_update_elem(&UNRELATED_BY, &rkey, &mark, BPF_ANY);
		return;
	}
	bpf_map_update_elem(&GOVERNED_BY, &rkey, &mark, BPF_ANY);
	__u8 learned = 0;
	if (!entry) {
		// Before the process reads the answer: its connect() already finds the address.
		__u32 value = name_value & (ACTION_MASK | FLAG_SHARED);
		if (family == 4) {
			struct v4_key key = { .prefixlen = 32 };
			__builtin_memcpy(key.addr, addr, 4);
			learned = bpf_map_update_elem(&GOVERNED_V4, &key, &value, BPF_NOEXIST) == 0;
		} else {
			struct v6_key key = { .prefixlen = 128 };
			__builtin_memcpy(key.addr, addr, 16);
			learned = bpf_map_update_elem(&GOVERNED_V6, &key, &value, BPF_NOEXIST) == 0;
		}
	}
	__u8 n = e->count;
	if (n >= EVENT_ANSWERS)
		return;
	struct dns_record *r = &e->records[n & (EVENT_ANSWERS - 1)];
	r->family = family;
	r->learned = learned;
	r->pad = 0;
	r->ttl = ttl;
	__builtin_memset(r->addr, 0, sizeof(r->addr));
	__builtin_memcpy(r->addr, addr, family == 4 ? 4 : 16);
	e->count = n + 1;
}

// The state of reading one DNS answer, shared with the bpf_loop callbacks below (bpf_loop keeps
// verification linear: each callback is verified once, not once per iteration and path).
struct dns_read {
	__u32 len; // bytes of the message in SCRATCH.msg
	__u32 i; // read position
	__u32 labels; // labels of the question's name
	__u32 qend; // position of the question name's final zero
	__u32 starts[MAX_LABELS]; // where each label of the question's name starts
	__u64 hash;
	__s32 k; // next label (from the last) whose suffix is looked up
	__u32 name_value; // the longest governed match's action | FLAG_SHARED
	__u32 found;
	__u32 bad;
	__u32 answers;
	__u32 tgid;
	__u32 governed;
};

static __always_inline struct scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&SCRATCH, &zero);
}

// One label of the question's name.
static long question_label(__u64 index, void *data)
{
	struct dns_read *r = data;
	struct scratch *sc = scratch();
	if (!sc) {
		r->bad = 1;
		return 1;
	}
	__u8 l = sc->msg[r->i & (DNS_MAX - 1)];
	if (l == 0)
		return 1;
	if (l > 63 || index >= MAX_LABELS) {
		r->bad = 1;
		return 1;
	}
	r->starts[index & (MAX_LABELS - 1)] = r->i;
	r->labels = index + 1;
	r->i += l + 1;
	if (r->i >= r->len) {
		r->bad = 1;
		return 1;
	}
	return 0;
}

// One byte of the question's name, from its last byte backwards: every suffix is hashed in one
// pass, and at each label start the suffix is looked up; the longest governed match (the name
// itself last) decides. Length bytes are < 64, so lower-casing 'A'..'Z' never touches them.
static long name_byte(__u64 n, void *data)
{
	struct dns_read *r = data;
	struct scratch *sc = scratch();
	if (!sc || r->qend < 13 + n)
		return 1;
	__u32 j = r->qend - 1 - n;
	__u8 c = sc->msg[j & (DNS_MAX - 1)];
	if (c >= 'A' && c <= 'Z')
		c += 'a' - 'A';
	r->hash = (r->hash ^ c) * FNV_PRIME;
	if (r->k >= 0 && j == r->starts[r->k & (MAX_LABELS - 1)]) {
		struct name_key key = { .hash = r->hash, .kind = r->k == 0 ? NAME_EXACT : NAME_UNDER };
		__u32 *v = bpf_map_lookup_elem(&NAMES, &key);
		if (v) {
			r->name_value = *v;
			r->found = 1;
		}
		r->k--;
	}
	return 0;
}

static __always_inline __u8 msg_at(struct scratch *sc, __u32 at)
{
	return sc->msg[at & (DNS_MAX * 2 - 1)];
}

// One resource record of the answer section: an A or AAAA record is noted, others skipped.
static long answer_record(__u64 a, void *data)
{
	struct dns_read *r = data;
	struct scratch *sc = scratch();
	if (!sc || a >= r->answers)
		return 1;
	// The owner name: a compression pointer (every resolver compresses answers' owner names,
	// RFC 1035 4.1.4). Anything else ends the reading: what was read so far counts.
	__u32 i = r->i;
	if (i + 12 > r->len || (msg_at(sc, i) & 0xc0) != 0xc0)
		return 1;
	i += 2;
	__u16 type = ((__u16)msg_at(sc, i) << 8) | msg_at(sc, i + 1);
	__u32 ttl = ((__u32)msg_at(sc, i + 4) << 24) | ((__u32)msg_at(sc, i + 5) << 16) |
		    ((__u32)msg_at(sc, i + 6) << 8) | msg_at(sc, i + 7);
	__u16 rdlen = ((__u16)msg_at(sc, i + 8) << 8) | msg_at(sc, i + 9);
	i += 10;
	__u32 at = i & (DNS_MAX - 1);
	if (type == 1 && rdlen == 4 && i + 4 <= r->len) {
		__u8 addr[4];
		__builtin_memcpy(addr, sc->msg + at, 4);
		note_record(&sc->event, r->tgid, r->name_value, r->governed, 4, addr, ttl);
	} else if (type == 28 && rdlen == 16 && i + 16 <= r->len) {
		__u8 addr[16];
		__builtin_memcpy(addr, sc->msg + at, 16);
		note_record(&sc->event, r->tgid, r->name_value, r->governed, 6, addr, ttl);
	}
	r->i = i + rdlen;
	return 0;
}

// DNS answers over UDP to a socket that asked from this cgroup. Always lets the packet through:
// this program only reads.
SEC("cgroup_skb/ingress")
int warden_dns(struct __sk_buff *skb)
{
	// Every packet a governed socket receives comes through here: everything but UDP leaves after
	// one read of the linear header (direct packet access, no helper call).
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *data_end = (__u8 *)(long)skb->data_end;
	__u32 off;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (data + 20 > data_end || data[9] != IPPROTO_UDP)
			return 1;
		// A fragment (offset or more-fragments set) is not read.
		if ((data[6] & 0x3f) || data[7])
			return 1;
		off = (data[0] & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (data + 40 > data_end || data[6] != IPPROTO_UDP)
			return 1;
		off = 40;
	} else {
		return 1;
	}
	__u8 udp[8];
	if (bpf_skb_load_bytes(skb, off, udp, 8))
		return 1;
	if (udp[0] != 0 || udp[1] != 53)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct dns_socket *owner = bpf_map_lookup_elem(&DNS_SOCKETS, &cookie);
	if (!owner)
		return 1;
	struct scratch *sc = scratch();
	if (!sc)
		return 1;
	if (skb->len < off + 8 + 12)
		return 1;
	__u64 len = skb->len - off - 8;
	if (len > DNS_MAX)
		len = DNS_MAX;
	// Bounded where the verifier sees it (clang would drop a plain mask it can prove redundant).
	asm volatile("%[len] &= 0x3ff" : [len] "+r"(len));
	if (len < 12)
		return 1;
	if (bpf_skb_load_bytes(skb, off + 8, sc->msg, len))
		return 1;
	__u8 *m = sc->msg;
	// A response (QR), no error, one question, some answers.
	if (!(m[2] & 0x80) || (m[3] & 0x0f) || m[4] != 0 || m[5] != 1)
		return 1;
	struct dns_read r = {
		.len = len,
		.i = 12,
		.hash = FNV_OFFSET,
		.answers = ((__u32)m[6] << 8) | m[7],
		.tgid = owner->tgid,
	};
	if (r.answers == 0)
		return 1;
	if (r.answers > MAX_ANSWERS)
		r.answers = MAX_ANSWERS;
	bpf_loop(MAX_LABELS + 1, question_label, &r, 0);
	if (r.bad || r.labels == 0)
		return 1;
	r.qend = r.i;
	r.k = r.labels - 1;
	bpf_loop(256, name_byte, &r, 0);
	r.governed = r.found && (r.name_value & ACTION_MASK) != ACTION_ALLOW;
	struct dns_event *e = &sc->event;
	e->pid = 0;
	e->tgid = owner->tgid;
	e->uid = owner->uid;
	e->family = 0;
	e->verdict = 0;
	e->hook = HOOK_DNS;
	e->protocol = IPPROTO_UDP;
	e->name_len = r.qend - 12;
	e->count = 0;
	e->action = r.name_value & ACTION_MASK;
	// Past the question: its zero byte, QTYPE, QCLASS.
	r.i = r.qend + 5;
	bpf_loop(MAX_ANSWERS, answer_record, &r, 0);
	if (r.governed && e->count > 0) {
		bpf_probe_read_kernel(e->name, 255, sc->msg + 12);
		bpf_ringbuf_output(&EVENTS, e, sizeof(*e), 0);
	}
	return 1;
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
