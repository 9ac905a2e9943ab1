#!/usr/bin/env bash
# The relay's copy path counted in system calls (strace -c), which emulation does not
# disturb as it does times: per MiB of one stream of 64 KiB writes from alpha to a sink in
# beta, and per second of that session stalled (the sink stopped with SIGSTOP while the
# stream goes on, so the relay's buffer toward it stays full). One build per argument, each
# on fresh guests. Inside the test VM only:
#
#   scripts/testvm -- bench/relay_calls.sh [BUILD...]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- build

one_build() (
	export BUILD=$1
	source tests/vm/lib.sh
	NB=$TOP/$BUILD/bench/netbench
	setup_guests
	write_relay_policy
	write_host_policy "$WORK/relay.policy"
	RELAY_DEBUG= start_relay "$WORK/relay.policy" --copy
	HELPERD_DEBUG= start_helperd alpha
	HELPERD_DEBUG= start_helperd beta
	start_bg sink shimmed beta "$NB" server --mode sink 7211
	wait_for "the sink" vsock_listening beta "$(vsock_port beta 7211)"
	relay=$(leaf_pid "$(cat "$WORK/relay.pid")")
	up() { relay_value 'd["counters"]["bytes_up"]'; }
	# the two helperds' control connections through the relay are all that is left
	controls_only() { [ "$(relay_value 'd["connections"]')" = 2 ]; }

	# bulk: every byte the session carried (counted when it ends) per call
	strace -f -c -o "$WORK/bulk.strace" -p "$relay" 2>/dev/null &
	tracer=$!
	sleep 1 # strace counts nothing until it is attached
	b0=$(up)
	shimmed alpha "$NB" stream 198.18.0.2:7211 --size 64K --streams 1 --seconds 2 >/dev/null
	wait_for "the session to end" controls_only
	kill -INT $tracer
	wait $tracer || true
	mib=$(python3 -c "print(($(up) - $b0) / 2**20)")

	# stalled: the sink stopped, the stream blocked on a full relay
	start_bg stalled shimmed alpha "$NB" stream 198.18.0.2:7211 --size 64K --streams 1 --seconds 6
	sleep 1
	kill -STOP "$(leaf_pid "$(cat "$WORK/sink.pid")")"
	sleep 1 # the relay's buffer toward it fills
	strace -f -c -o "$WORK/stall.strace" -p "$relay" 2>/dev/null &
	tracer=$!
	sleep 4
	kill -INT $tracer
	wait $tracer || true
	kill -CONT "$(leaf_pid "$(cat "$WORK/sink.pid")")"
	join_bg stalled 60 >/dev/null || true

	python3 - "$BUILD" "$mib" "$WORK/bulk.strace" "$WORK/stall.strace" <<'PY'
import re, sys
build, mib = sys.argv[1], float(sys.argv[2])
def calls(path):
    out = {}
    for line in open(path):
        p = line.split()
        if len(p) >= 5 and re.match(r"^[\d.]+$", p[0]) and p[-1] != "total":
            out[p[-1]] = int(p[3])
    return out
def show(c, per):
    return ", ".join(f"{k} {v / per:.1f}" for k, v in sorted(c.items(), key=lambda x: -x[1]))
bulk, stall = calls(sys.argv[3]), calls(sys.argv[4])
print(f"{build}: bulk, {mib:.0f} MiB: {sum(bulk.values()) / mib:.1f} calls per MiB ({show(bulk, mib)})")
print(f"{build}: one stalled session, about 4 s traced: {sum(stall.values()) / 4:.1f} calls per second ({show(stall, 4)})")
PY
	stop_bg sink
	stop_relay
	for g in alpha beta gamma host; do remove_guest "$g"; done
	ip link del "$BRIDGE"
	rm -rf "$WORK" "$RUN"/vmshim-*
)

for b in "$@"; do
	one_build "$b"
done
