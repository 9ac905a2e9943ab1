#!/usr/bin/env bash
# Where one spliced stream through the relay spends its time, in counts that the emulation
# does not disturb as it does times: one stream of S-byte writes for T s from alpha to a
# sink in beta through vmshim-relay (sockmap where the kernel can splice), and the same
# stream over native vsock. For each: the bytes and rate, the vsock packets each hop carried
# by kind (the vsock:virtio_transport_alloc_pkt tracepoint), the runs of the relay's
# BPF programs (kernel.bpf_stats_enabled); for the relay also its kernel queue, sampled
# every 100 ms from `vmshim-relay status`, and whether it took the stream back; for the third
# stream also the runs of the kernel's sending work (workqueue tracepoints). Inside the
# test VM only, on a kernel that splices:
#
#   scripts/testvm --kernel 6.12 -- bench/splice_probe.sh [SIZE [SECONDS [RELAY OPTION...]]]
#
# (defaults 64K 2; RELAY OPTIONs go to vmshim-relay, e.g. --copy).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-64K} seconds=${2:-2}
shift $(($# < 2 ? $# : 2))
source tests/vm/lib.sh
NB=$TOP/$BUILD/bench/netbench
setup_guests
write_relay_policy
write_host_policy "$WORK/relay.policy"
start_relay "$WORK/relay.policy" "$@"
HELPERD_DEBUG= start_helperd alpha
HELPERD_DEBUG= start_helperd beta
start_bg sink shimmed beta "$NB" server --mode sink 7211
start_bg vsink in_guest beta "$NB" server --mode sink --vsock 40001
wait_for "the sink" vsock_listening beta "$(vsock_port beta 7211)"
wait_for "alpha to know beta's sink" serves alpha beta 7211
sysctl -qw kernel.bpf_stats_enabled=1
TRACE=/sys/kernel/tracing
EVENTS=vsock/virtio_transport_alloc_pkt
mountpoint -q $TRACE || mount -t tracefs nodev $TRACE
echo 65536 >$TRACE/buffer_size_kb
echo "kernel $(uname -r), $(nproc) cpus; relay: $(relay_value 'd["forwarding"]') $*"

# bpf_runs: the run counts of the relay's programs, "name=N ...".
bpf_runs() {
	bpftool -j prog show | python3 -S -c '
import json, sys
print(" ".join("%s=%s" % (p["name"], p.get("run_cnt", 0)) for p in json.load(sys.stdin)
               if p.get("name", "").startswith("splice_")))'
}

# packets FILE: the vsock:virtio_transport_alloc_pkt events in FILE (the trace buffer) by hop
# and kind: count, bytes, the commonest sizes.
packets() {
	python3 -S - "$1" <<'PY'
import re, sys
hops = {}
for line in open(sys.argv[1]):
    m = re.search(r"(\d+):(\d+) -> (\d+):(\d+) len=(\d+) .*op=(\w+)", line)
    if not m:
        continue
    key, n = (m[2], m[4], m[6]), int(m[5])
    c = hops.setdefault(key, [0, 0, {}])
    c[0] += 1; c[1] += n; c[2][n] = c[2].get(n, 0) + 1
for (src, dst, op), (n, b, sizes) in sorted(hops.items(), key=lambda x: -x[1][0]):
    if n >= 10:
        common = ", ".join(f"{k} B x{v}" for k, v in sorted(sizes.items(), key=lambda x: -x[1])[:3])
        print(f"    port {src} -> {dst} {op}: {n} packets, {b} bytes, {b / n:.0f} per packet; most: {common}")
PY
}

# backlog_runs FILE: the runs of the psock's sending work (sk_psock_backlog) in FILE's
# workqueue events, if traced: how many, how long in all, over how long.
backlog_runs() {
	python3 -S - "$1" <<'PY'
import re, sys
runs, busy, first, last, open_at = 0, 0.0, None, None, {}
for line in open(sys.argv[1]):
    m = re.search(r"-(\d+)\s+\[\d+\].*?\s(\d+\.\d+): workqueue_execute_(start|end): .*sk_psock_backlog", line)
    if not m:
        continue
    pid, t, what = m[1], float(m[2]), m[3]
    if what == "start":
        open_at[pid] = t
        first = t if first is None else first
    elif pid in open_at:
        runs += 1
        busy += t - open_at.pop(pid)
        last = t
if runs:
    print(f"  sk_psock_backlog: {runs} runs, busy {busy:.3f} s of {last - first:.3f} s, {1000 * busy / runs:.2f} ms a run")
PY
}

# stream NAME TARGET HOW: the stream, traced; prints what it saw.
stream() {
	local name=$1 target=$2 how=$3 runs0 runs1
	runs0=$(bpf_runs)
	echo >$TRACE/trace
	for e in $EVENTS; do echo 1 >"$TRACE/events/$e/enable"; done
	( for i in $(seq 600); do
		echo "$(date +%s.%N) $("$RELAY" -r "$RUN/vmshim-relay" status | tr -d '\n')"
		sleep 0.1
	done ) >"$WORK/$name.samples" 2>/dev/null &
	local sampler=$!
	local t0=$(date +%s.%N)
	if [ "$how" = shim ]; then
		shimmed alpha "$NB" stream "$target" --size "$size" --streams 1 --seconds "$seconds"
	else
		in_guest alpha "$NB" stream "$target" --size "$size" --streams 1 --seconds "$seconds"
	fi | sed "s/^/$name: /"
	kill "$sampler" 2>/dev/null || true
	for e in $EVENTS; do echo 0 >"$TRACE/events/$e/enable"; done
	cat $TRACE/trace >"$WORK/$name.trace"
	runs1=$(bpf_runs)
	echo "  bpf runs before: $runs0"
	echo "  bpf runs after:  $runs1"
	echo "  vsock packets:"
	packets "$WORK/$name.trace"
	backlog_runs "$WORK/$name.trace"
	python3 -S - "$WORK/$name.samples" "$t0" "$(vsock_port beta 7211)" <<'PY'
import json, sys
t0, port = float(sys.argv[2]), int(sys.argv[3])
rows, d = [], None
for line in open(sys.argv[1]):
    t, _, js = line.partition(" ")
    try:
        d = json.loads(js)
    except ValueError:
        continue
    for s in d["sessions"]:
        if s["port"] == port and s["state"] == "forward":
            rows.append((float(t) - t0, s))
if rows:
    print("  relay session, sampled (s: path, bytes_up, queued_up, window_full_up):")
    for t, s in rows[:: max(1, len(rows) // 30)]:
        print(f"    {t:6.2f} {s['path']:16} {s['bytes_up']:>11} {s['queued_up']:>10} {s.get('window_full_up', 0):>6}")
    print(f"  largest queue seen: {max(s['queued_up'] for _, s in rows)}")
c = d["counters"] if d else {"spliced": "?", "taken_back": "?", "rescued": "?"}
print(f"  relay counters: spliced {c['spliced']} taken_back {c['taken_back']} rescued {c['rescued']}")
PY
	true
}

stream relay 198.18.0.2:7211 shim
grep -h 'taken back' "$WORK/relay.log" | head -n 5 | sed 's/^/  relay log: /' || true
stream native vsock:1:40001 plain

# The kernel's path alone: the take-back's bound (the buffer) at its largest, 64 MiB.
stop_relay
write_host_policy "$WORK/relay-big.policy" "buffer 67108864"
start_relay "$WORK/relay-big.policy" "$@"
wait_for "alpha to know beta's sink again" serves alpha beta 7211
echo "relay with buffer 64 MiB:"
EVENTS="$EVENTS workqueue/workqueue_execute_start workqueue/workqueue_execute_end"
stream relay-64m 198.18.0.2:7211 shim

stop_bg sink
stop_bg vsink
stop_relay
for g in alpha beta gamma host; do remove_guest "$g"; done
ip link del "$BRIDGE"
rm -rf "$WORK" "$RUN"/vmshim-*
