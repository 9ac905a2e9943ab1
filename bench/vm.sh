#!/usr/bin/env bash
# The part of bench/run that runs inside the test VM (scripts/testvm --out DIR): sets up the
# guests of tests/vm/lib.sh, the servers of every path, and measures; or, sourced by
# tests/vm/t_bench_smoke (BENCH_IN_SUITE=1, BENCH_OUT=DIR), the same in the guests that
# tests/vm/run set up for it, in whichever lane it runs (lib.sh). Leaves in DIR:
#   raw.txt        one line per measurement: "result section=S path=P rep=R ... <netbench's line>"
#   commands.txt   every benchmark command exactly as run, in order
#   *.callgrind    callgrind profiles, *.strace strace -c summaries
#   log.txt        everything else: progress, servers' and helperds' output
#
# The paths, all to a server in beta (198.18.0.2), from alpha (198.18.0.1) but the relay's:
#   tcp     plain TCP over the veth link, no shim anywhere
#   shim    the same program under the shim at both ends: redirected over vsock
#   vsock   netbench's own AF_VSOCK mode: what vsock itself does, no TCP at all
#   socat   today's workaround: client -> socat TCP-LISTEN (alpha) -> vsock -> socat
#           VSOCK-LISTEN (beta) -> TCP on beta's loopback -> the plain server
#   bypass  the shim loaded in the client, destination not co-resident: beta's second address
#           198.18.0.12, in no policy, served by the plain server (the path it must leave alone)
#   relay-copy     path shim's client and server, but the client in delta (198.18.0.4), whose
#                  policy reaches beta `via relay`: vmshim-relay (namespace "host") forwards
#                  every byte by copies in user space (--copy)
#   relay-sockmap  the same, the relay splicing in the kernel (BPF sockmap); only where the
#                  relay can splice (bench/run --kernel 6.12),
#                  else skipped with the relay's reason
#   guestwide      no shim anywhere: the client in the cgroup alpha's helperd covers with
#                  --guest-wide, the server in beta's likewise; the bridges in both helperds
#                  carry the connection over vsock
# The relay paths have a client guest of their own because alpha's policy cannot reach beta
# both directly (path shim) and through the relay; the relay forwards one way at a time, so
# it is restarted between its two paths (relay_in).
#
# Sizes come from the environment (bench/run passes them; defaults are the full run).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "${BENCH_IN_SUITE:-}" = 1 ] || source "$here/../tests/vm/lib.sh"

OUT=${BENCH_OUT:-${VMSHIM_TESTVM_OUT:?run me through bench/run}}
bench_start=$SECONDS
NB=$TOP/$BUILD/bench/netbench
REPS=${REPS:-5}
STREAM_SECONDS=${STREAM_SECONDS:-2}
SIZES=${SIZES:-4K 64K 256K 1M}
STREAMS=${STREAMS:-1 4}
PP_SIZES=${PP_SIZES:-1 1K}
PP_COUNT=${PP_COUNT:-2000}
CR_COUNT=${CR_COUNT:-300}
CG_COUNT=${CG_COUNT:-200}
SC_COUNT=${SC_COUNT:-20}
SCALE_CONNS=${SCALE_CONNS:-1 64 1024}
SCALE_SECONDS=${SCALE_SECONDS:-2}
SCALE_PAUSE=${SCALE_PAUSE:-2}
MEMCPY_MIB=${MEMCPY_MIB:-2048}
PATHS=(tcp shim vsock socat bypass relay-copy relay-sockmap guestwide)
BYPASS_ADDR=198.18.0.12
ADDR[delta]=198.18.0.4
BASE[delta]=$((3000000 + LANE_PORTS))
RELAY_POLICY=$WORK/relay.policy
RAW=$OUT/raw.txt
CMDS=$OUT/commands.txt
exec 3>>"$OUT/log.txt"
: >"$RAW"
: >"$CMDS"

note() { echo "$*" >&3; echo "bench: $*" >&2; }

# Ports in beta: TCP servers (sink = reads and discards, echo = sends back) and vsock ports
# of the native server and the socat pair (vsock ports are global: these are far from the
# guests' blocks at 1000000 and 2000000, and a lane's own, as those are).
declare -A PORT=([tcp-sink]=7201 [tcp-echo]=7202 [shim-sink]=7211 [shim-echo]=7212
	[guestwide-sink]=7231 [guestwide-echo]=7232
	[vsock-sink]=$((40001 + LANE_PORTS)) [vsock-echo]=$((40002 + LANE_PORTS))
	[socat-sink]=$((40011 + LANE_PORTS)) [socat-echo]=$((40012 + LANE_PORTS))
	[alpha-socat-sink]=7221 [alpha-socat-echo]=7222)

# The argv of CMD... run in guest G, in CMD_ARGV, HOW: plain, under the shim (shim), or in
# G's cgroup of guest-wide mode (cg): the same expansion as lib.sh's in_guest, shimmed and
# in_cg, written out so that commands.txt shows it all.
guest_argv() {
	local g=$1 how=$2 cg=$CG
	shift 2
	CMD_ARGV=(ip netns exec "$(netns "$g")" env VMSHIM_RUNDIR="$(rundir "$g")")
	[ "$g" = alpha ] || cg=$CGB
	[ "$how" != cg ] || CMD_ARGV+=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg")
	[ "$how" != shim ] || CMD_ARGV+=(LD_PRELOAD="$SHIM_PRELOAD")
	CMD_ARGV+=("$@")
}

# The client side of PATH for a server of KIND (sink or echo): sets CMD_ARGV to the client
# guest's netbench MODE with the path's target, then ARGS; behind the program that WRAP (an
# array, such as strace and its options) names, if any. A relay path first has the relay
# forward its way.
WRAP=()
client_argv() {
	local path=$1 kind=$2 mode=$3
	shift 3
	local how=plain target
	case $path in
	tcp) target=${ADDR[beta]}:${PORT[tcp-$kind]} ;;
	shim) how=shim target=${ADDR[beta]}:${PORT[shim-$kind]} ;;
	vsock) target=vsock:1:${PORT[vsock-$kind]} ;;
	socat) target=127.0.0.1:${PORT[alpha-socat-$kind]} ;;
	bypass) how=shim target=$BYPASS_ADDR:${PORT[tcp-$kind]} ;;
	guestwide) how=cg target=${ADDR[beta]}:${PORT[guestwide-$kind]} ;;
	relay-copy | relay-sockmap)
		relay_in "${path#relay-}"
		how=shim target=${ADDR[beta]}:${PORT[shim-$kind]}
		;;
	*) fail "client_argv: $path" ;;
	esac
	guest_argv "$(client_guest "$path")" "$how" "${WRAP[@]}" "$NB" "$mode" "$target" "$@"
}

client_guest() { case $1 in relay-*) echo delta ;; *) echo alpha ;; esac; }

# record LABEL CMD...: logs the command under LABEL in commands.txt, runs it, and leaves
# its standard output in $WORK/last.out (standard error goes to log.txt). Fails the run if
# the command fails.
record() {
	local label=$1
	shift
	{
		printf '[%s] ' "$label"
		printf '%q ' "$@"
		echo
	} >>"$CMDS"
	local rc=0
	"$@" >"$WORK/last.out" 2>"$WORK/last.err" || rc=$?
	cat "$WORK/last.err" >>"$OUT/log.txt"
	if [ $rc -ne 0 ]; then
		note "FAILED (exit $rc): $label: $(tail -n 5 "$WORK/last.err")"
		exit 1
	fi
}

# result KEYS...: the last command's netbench line, with KEYS in front, into raw.txt.
result() { echo "result $* $(grep '^netbench mode=' "$WORK/last.out" | tail -n 1)" >>"$RAW"; }

# measure LABEL PATH CONNS: record LABEL with CMD_ARGV (client_argv's), which opens CONNS
# connections; on a relay path RELAYED then holds "relayed=N expected=CONNS", N the
# connections the relay carried meanwhile (fewer: some went over TCP), for result.
measure() {
	local label=$1 path=$2 conns=$3 before=
	RELAYED=()
	[[ $path != relay-* ]] || before=$(relayed_total)
	record "$label" "${CMD_ARGV[@]}"
	[ -z "$before" ] || RELAYED=("relayed=$(($(relayed_total) - before))" "expected=$conns")
}

# The helperds (and the relay) run without -d: logging every sibling connection would be
# measured too.
bench_helperd() {
	HELPERD_DEBUG= start_helperd "$@"
	wait_for "helperd of $1's table" test -s "$(rundir "$1")/table"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Waits (up to 30 s) until no connection of the last run is left in beta, so that its
# leftovers do not slow the next one. helperd's own connections to the other helperds
# (local ports base + 131072 .. + 1023) stay.
beta_busy() {
	ss_in beta -Hn --vsock state established |
		awk -v lo=$((BASE[beta] + 131072)) '{ split($4, a, ":"); if (a[2] < lo || a[2] > lo + 1023) busy = 1 }
			END { exit !busy }' ||
		ss_in beta -Htn state established | grep -q . ||
		ss_in beta -Htn state syn-recv | grep -q .
}
wait_drained() {
	for _ in $(seq 300); do
		beta_busy || return 0
		sleep 0.1
	done
	note "beta still busy after 30 s"
	echo "warning beta-not-drained after=$1" >>"$RAW"
}

# The paths in a different order in each repetition, so that a slow drift of the emulated
# machine hits them all alike. Of the two relay paths, the one the relay forwards for at the
# time goes first: one restart of the relay per repetition, not two.
paths_for_rep() {
	local r=$1 i n=${#PATHS[@]} order=() at=()
	for i in $(seq 0 $((n - 1))); do
		order+=("${PATHS[$(((i + r) % n))]}")
		[[ ${order[i]} != relay-* ]] || at+=("$i")
	done
	if [ ${#at[@]} = 2 ] && [ "${order[${at[1]}]}" = "relay-$RELAY_MODE" ]; then
		order[${at[1]}]=${order[${at[0]}]}
		order[${at[0]}]=relay-$RELAY_MODE
	fi
	printf '%s\n' "${order[@]}"
}

# strace_attach NAME PID: counts PID's system calls (strace -c) into $OUT/NAME.strace
# until strace_detach NAME.
strace_attach() {
	strace -f -c -o "$OUT/$1.strace" -p "$2" 2>>"$OUT/log.txt" &
	echo $! >"$WORK/strace-$1.pid"
	# strace says nothing once attached
	wait_for "strace to attach to $1" traced_by "$2" $!
}
# traced_by PID TRACER: whether every thread of PID names TRACER its tracer.
traced_by() {
	local task
	for task in /proc/"$1"/task/*; do
		[ "$(sed -n 's/^TracerPid:\t//p' "$task/status" 2>/dev/null)" = "$2" ] || return 1
	done
}
strace_detach() {
	local pid
	pid=$(cat "$WORK/strace-$1.pid")
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
# callgrind_only FILE FUNCTION: the next client runs under callgrind, which counts only what
# runs inside FUNCTION, into $OUT/FILE.
callgrind_only() {
	WRAP=(timeout 300 valgrind --tool=callgrind --callgrind-out-file="$OUT/$1"
		--collect-atstart=no --toggle-collect="$2")
}

# The "calls" column of strace -c's total line (the 4th, whether or not errors follow).
strace_total() { awk '$NF == "total" { print $4 }' "$1"; }

# held LABEL SAMPLE...: runs CMD_ARGV (a netbench hold) in the background, and SAMPLE with
# the client's pid once it holds its connections (SAMPLE sets what it read in HELD); then
# waits for the client, whose output it leaves in $WORK/last.out. (The client is the
# background job itself: ip netns exec and env exec it.)
held() {
	local label=$1 client
	shift
	echo "[$label] $(printf '%q ' "${CMD_ARGV[@]}")" >>"$CMDS"
	"${CMD_ARGV[@]}" >"$WORK/hold.out" 2>>"$OUT/log.txt" &
	client=$!
	for _ in $(seq 600); do
		grep -q hold-ready "$WORK/hold.out" && break
		kill -0 "$client" 2>/dev/null || break
		sleep 0.1
	done
	"$@" "$client"
	wait "$client" || { note "FAILED: $label: $(tail -n 3 "$OUT/log.txt")"; exit 1; }
	cp "$WORK/hold.out" "$WORK/last.out"
}

# The relay's control connections: beta's and delta's helperds each have one to the other.
relay_controls() { [ "$(relay_value 'sum(s["state"] == "forward" for s in d["sessions"])')" -ge 2 ]; }

# relay_in MODE (copy or sockmap): the relay forwarding by MODE, restarted if it forwards
# the other way. Back once both helperds have their control connections through it again
# and delta's knows beta serves the ports, so that no client falls back to TCP meanwhile.
RELAY_MODE=
relay_in() {
	local mode=$1 start kind opts=()
	[ "$mode" != "$RELAY_MODE" ] || return 0
	start=$(date +%s%N)
	[ "$mode" = sockmap ] || opts=(--copy)
	stop_relay
	RELAY_DEBUG= start_relay "$RELAY_POLICY" "${opts[@]}"
	[ "$(relay_value 'd["forwarding"]')" = "$mode" ] ||
		fail "the relay forwards by $(relay_value 'd["forwarding"]'), not $mode: $(relay_value 'd["forwarding_note"]')"
	wait_for "the helperds' control connections through the relay" relay_controls
	for kind in sink echo; do
		wait_for "delta to know beta's shim-$kind" serves delta beta "${PORT[shim-$kind]}"
	done
	RELAY_MODE=$mode
	RELAY_RESTARTS=$((RELAY_RESTARTS + 1))
	note "relay now forwards by $mode ($((($(date +%s%N) - start) / 1000000)) ms)"
}
RELAY_RESTARTS=0

# skip_path PATH REASON: PATH is not measured in this run, for REASON (into raw.txt).
skip_path() {
	local keep=() p
	for p in "${PATHS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	PATHS=("${keep[@]}")
	echo "skip path=$1 reason=$2" >>"$RAW"
	note "$1 not measured on $(uname -r): $2"
}

# relay_sessions: the paths of the relay's sessions from delta to beta's shim-sink, counted
# (sockmap:4), into HELD.
relay_sessions() {
	HELD=$(relay_value "' '.join(s['path'] for s in d['sessions'] if s['from'] == 'delta' and s['port'] == $(vsock_port beta "${PORT[shim-sink]}"))" |
		tr ' ' '\n' | sort | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1 }')
}

finish() {
	local rc=$?
	for f in "$WORK"/helperd-*.log "$WORK/relay.log"; do
		[ -f "$f" ] && { echo "--- ${f##*/}"; cat "$f"; } >&3
	done
	for f in "$WORK"/*.out; do
		[ -f "$f" ] && { echo "--- ${f##*/}"; tail -n 20 "$f"; } >&3
	done
	echo "vm.sh exit $rc" >&3
}
trap finish EXIT

# --- guests, helperds, servers -----------------------------------------------------------
ulimit -n 8192
[ "${BENCH_IN_SUITE:-}" = 1 ] || setup_guests
ip -n "$(netns beta)" addr add "$BYPASS_ADDR/24" dev eth0
add_guest delta
# alpha keeps the common policy (beta directly); beta's also takes delta through the relay,
# delta's knows only beta, through the relay.
guest_policy --relay alpha beta delta/relay >"$WORK/policy-beta"
guest_policy --relay beta/relay delta/relay >"$WORK/policy-delta"
RELAY_GUESTS="beta delta" write_host_policy "$RELAY_POLICY"
guest_wide_cgroups # CG (alpha's) and CGB (beta's): only path guestwide's programs are in them
HELPERD_ARGS=--guest-wide=$CG bench_helperd alpha
HELPERD_ARGS=--guest-wide=$CGB bench_helperd beta "$WORK/policy-beta"
bench_helperd delta "$WORK/policy-delta"
echo "vm uname=$(uname -r) cpus=$(nproc) model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1 | tr ' ' _)" >>"$RAW"

# The relay splices only where the kernel has vsock in sockmap: ask it (without --copy).
# (Where it cannot, this relay is not relay-copy's, which has --copy: relay_in restarts it.)
# The check below also asks its sessions.
RELAY_DEBUG= start_relay "$RELAY_POLICY"
if [ "$(relay_value 'd["forwarding"]')" = sockmap ]; then
	RELAY_MODE=sockmap
else
	skip_path relay-sockmap "$(relay_value 'd["forwarding_note"]')"
fi

# start_in NAME GUEST HOW CMD...: runs CMD in the background in GUEST (HOW: plain or shim),
# as job NAME, and writes the command into commands.txt.
start_in() {
	local name=$1 g=$2 how=$3
	shift 3
	guest_argv "$g" "$how" "$@"
	echo "[$name] $(printf '%q ' "${CMD_ARGV[@]}")" >>"$CMDS"
	start_bg "$name" "${CMD_ARGV[@]}"
}
for kind in sink echo; do
	start_in "srv-tcp-$kind" beta plain "$NB" server --seconds 3000 --mode "$kind" "${PORT[tcp-$kind]}"
	start_in "srv-shim-$kind" beta shim "$NB" server --seconds 3000 --mode "$kind" "${PORT[shim-$kind]}"
	start_in "srv-vsock-$kind" beta plain "$NB" server --seconds 3000 --mode "$kind" \
		--vsock "${PORT[vsock-$kind]}"
	start_in "socat-beta-$kind" beta plain socat \
		"VSOCK-LISTEN:${PORT[socat-$kind]},fork,reuseaddr,backlog=4096" "TCP:127.0.0.1:${PORT[tcp-$kind]}"
	start_in "socat-alpha-$kind" alpha plain socat \
		"TCP-LISTEN:${PORT[alpha-socat-$kind]},bind=127.0.0.1,fork,reuseaddr,backlog=4096" \
		"VSOCK-CONNECT:1:${PORT[socat-$kind]}"
	start_in "srv-guestwide-$kind" beta cg "$NB" server --seconds 3000 --mode "$kind" \
		"${PORT[guestwide-$kind]}"
done
for kind in sink echo; do
	wait_for "beta's tcp-$kind" tcp_listening beta "${PORT[tcp-$kind]}"
	wait_for "beta's shim-$kind on vsock" vsock_listening beta "$(vsock_port beta "${PORT[shim-$kind]}")"
	wait_for "delta to know beta's shim-$kind" serves delta beta "${PORT[shim-$kind]}"
	wait_for "beta's vsock-$kind" vsock_listener beta "${PORT[vsock-$kind]}"
	wait_for "beta's socat-$kind" vsock_listener beta "${PORT[socat-$kind]}"
	wait_for "alpha's socat-$kind" tcp_listening alpha "${PORT[alpha-socat-$kind]}"
	wait_for "beta to offer guest-wide's $kind" serves alpha beta "${PORT[guestwide-$kind]}"
done

# Each path is what it claims to be: bytes on the client's veth for tcp and bypass only, and
# the shim's own account (VMSHIM_DEBUG=1) of redirecting (to beta's vsock port, directly or
# through the relay) or leaving alone. A relay path also: the connection counted by the
# relay, and what the relay says of 4 connections it holds (status: each session's path).
note "checking the paths"
for path in $(paths_for_rep 0); do
	client_argv "$path" echo pingpong --size 1 --count 20 --warmup 0
	client=$(client_guest "$path")
	before=$(veth_bytes "$client")
	CMD_ARGV=(env VMSHIM_DEBUG=1 "${CMD_ARGV[@]}")
	measure "check-$path" "$path" 1
	shim_said=$(grep -oE 'connected to sibling cid [0-9]+ port [0-9]+|no sibling.s: plain TCP' "$WORK/last.err" | head -n 1 | tr ' ' _ || true)
	result section=check path="$path" client="$client" veth_bytes=$(($(veth_bytes "$client") - before)) \
		"shim_said=${shim_said:-nothing}" "${RELAYED[@]}"
	if [[ $path == relay-* ]]; then
		client_argv "$path" sink hold --conns 4 --size 64K --seconds 0.3 --pause 1
		held "check-hold-$path" relay_sessions
		result section=check-relay path="$path" forwarding="$(relay_value 'd["forwarding"]')" \
			"sessions=${HELD:-none}"
		wait_drained "check-hold-$path"
		# Every session forwarded the path's way, or the path is not what it claims.
		if [ "$HELD" = "${path#relay-}:4" ]; then
			:
		elif [ "$path" = relay-sockmap ]; then
			skip_path "$path" "the relay says it forwards by sockmap, but of 4 sessions held through it: ${HELD:-none}"
		else
			fail "$path: of 4 sessions held through the relay: ${HELD:-none}"
		fi
	fi
done

# --- the reference ceiling: memcpy on one core -----------------------------------------
note "memcpy: $MEMCPY_MIB MiB x $REPS"
for r in $(seq "$REPS"); do
	guest_argv alpha plain "$NB" memcpy --size 64K --total-mib "$MEMCPY_MIB"
	record memcpy "${CMD_ARGV[@]}"
	result section=memcpy path=none rep="$r"
done

# --- bulk throughput ---------------------------------------------------------------------
note "throughput: sizes $SIZES, streams $STREAMS, $STREAM_SECONDS s, $REPS repetitions"
for streams in $STREAMS; do
	for size in $SIZES; do
		for r in $(seq "$REPS"); do
			for path in $(paths_for_rep "$r"); do
				client_argv "$path" sink stream --size "$size" --streams "$streams" \
					--seconds "$STREAM_SECONDS"
				measure "stream-$path" "$path" "$streams"
				result section=stream path="$path" rep="$r" "${RELAYED[@]}"
				wait_drained "stream-$path-$size-$streams-$r"
			done
		done
	done
done

# --- request/response latency ------------------------------------------------------------
note "latency: sizes $PP_SIZES, $PP_COUNT round trips, $REPS repetitions"
for size in $PP_SIZES; do
	for r in $(seq "$REPS"); do
		for path in $(paths_for_rep "$r"); do
			client_argv "$path" echo pingpong --size "$size" --count "$PP_COUNT"
			measure "pingpong-$path" "$path" 1
			result section=pingpong path="$path" rep="$r" "${RELAYED[@]}"
		done
	done
done

# --- connection rate ---------------------------------------------------------------------
note "connection rate: $CR_COUNT connections (connect, 1 byte there and back, close), $REPS repetitions"
for r in $(seq "$REPS"); do
	for path in $(paths_for_rep "$r"); do
		client_argv "$path" echo connrate --size 1 --count "$CR_COUNT"
		measure "connrate-$path" "$path" $((CR_COUNT + 1)) # and one untimed first
		result section=connrate path="$path" rep="$r" "${RELAYED[@]}"
		wait_drained "connrate-$path-$r"
	done
done

# --- the decision on a connect() the shim leaves alone -----------------------------------
# callgrind counts only connrate_loop (the timed connections), so start-up and the shim's
# one-time set-up (resolving libc, mapping the table) stay out. strace counts system calls
# for N and 2N connections: the difference is what N cost.
note "decision cost: callgrind and strace -c, $CG_COUNT connections, tcp vs bypass"
for path in tcp bypass; do
	callgrind_only "decision-$path.callgrind" connrate_loop
	client_argv "$path" echo connrate --size 1 --count "$CG_COUNT"
	record "callgrind-$path" "${CMD_ARGV[@]}"
	result section=callgrind path="$path" file="decision-$path.callgrind"
	for n in "$CG_COUNT" $((2 * CG_COUNT)); do
		file=decision-$path-$n.strace
		WRAP=(strace -f -c -o "$OUT/$file")
		client_argv "$path" echo connrate --size 1 --count "$n"
		record "strace-$path-$n" "${CMD_ARGV[@]}"
		echo "result section=strace path=$path who=client n=$n total_calls=$(strace_total "$OUT/$file") file=$file" >>"$RAW"
	done
done

# The data path is the kernel's: during a transfer (callgrind counting only netbench's
# stream_thread, where the writes happen) not one instruction runs in libvmshim.so, on the
# redirected path or on the one it leaves alone. Exact, unlike the times above.
note "data path: callgrind over a 0.5 s stream, shim and bypass"
for path in shim bypass; do
	callgrind_only "datapath-$path.callgrind" stream_thread
	client_argv "$path" sink stream --size 64K --streams 1 --seconds 0.5
	record "datapath-$path" "${CMD_ARGV[@]}"
	result section=datapath path="$path" file="datapath-$path.callgrind"
	wait_drained "datapath-$path"
done
WRAP=()

# Where a connection's set-up goes, in counts that the emulation does not disturb as it does
# times, for TCP, native vsock, the shim and the shim through the relay (by copies: the
# kernel's path sets up the same way): system calls per connection (strace -c) in the
# client, the server, both guests' helperds and the relay (attached during the 2N run; the
# client's count is the difference of N and 2N), and the vsock packets of the N run by kind
# (the kernel's vsock:virtio_transport_alloc_pkt tracepoint, in a trace instance of this
# script's own whose filter keeps only the packets from or to the path's listeners: another
# lane's stay out). strace slows every call down a lot: no times here.
TRACE=/sys/kernel/tracing/instances/vmshim-bench${LANE:-}
PKT_EVENT=$TRACE/events/vsock/virtio_transport_alloc_pkt
# packets_begin PORT...: traces the packets from or to vsock ports PORT (the listeners).
packets_begin() {
	local filter= port
	mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
	mkdir -p "$TRACE"
	for port; do filter+="${filter:+ || }src_port == $port || dst_port == $port"; done
	echo "$filter" >"$PKT_EVENT/filter"
	echo >"$TRACE/trace"
	echo 1 >"$PKT_EVENT/enable"
}
# packets_end PATH CONNS PORT...: the packets of the connections made to PORT since
# packets_begin (those whose REQUEST went there; older ones, such as a helperd's own
# connection to the relay, stay out), per connection and by kind, into raw.txt.
packets_end() {
	local path=$1 conns=$2 counts
	shift 2
	echo 0 >"$PKT_EVENT/enable"
	cp "$TRACE/trace" "$OUT/packets-$path.trace"
	counts=$(python3 -S - "$OUT/packets-$path.trace" "$@" <<'PY'
import re, sys
listeners, made, kinds, rw_bytes = {int(p) for p in sys.argv[2:]}, set(), {}, 0
requests = 0  # a pair of ports may come again: the relay dials from ports it takes in turn
for line in open(sys.argv[1]):
    m = re.search(r"\d+:(\d+) -> \d+:(\d+) len=(\d+) .*op=(\w+)", line)
    if not m:
        continue
    src, dst, size, op = int(m[1]), int(m[2]), int(m[3]), m[4].lower()
    if op == "request" and dst in listeners:
        made.add((src, dst))
        requests += 1
    if (src, dst) in made or (dst, src) in made:
        kinds[op] = kinds.get(op, 0) + 1
        rw_bytes += size if op == "rw" else 0
print(f"made={requests} total={sum(kinds.values())} rw_bytes={rw_bytes}",
      " ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
PY
)
	echo "result section=packets path=$path conns=$conns $counts" >>"$RAW"
}
note "set-up: system calls and vsock packets per connection, $SC_COUNT and $((2 * SC_COUNT)) connections"
for path in tcp vsock shim relay-copy; do
	client=$(client_guest "$path")
	case $path in
	tcp) server=srv-tcp-echo listeners=() ;;
	vsock) server=srv-vsock-echo listeners=("${PORT[vsock-echo]}") ;;
	shim) server=srv-shim-echo listeners=("$(vsock_port beta "${PORT[shim-echo]}")") ;;
	relay-copy) server=srv-shim-echo listeners=("$RELAY_PORT" "$(vsock_port beta "${PORT[shim-echo]}")") ;;
	esac
	declare -A party=([server]="$(leaf_pid "$(cat "$WORK/$server.pid")")"
		[helperd]="$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")"
		[client_helperd]="$(leaf_pid "$(cat "$WORK/helperd-$client.pid")")")
	for n in "$SC_COUNT" $((2 * SC_COUNT)); do
		file=setup-$path-client-$n.strace
		WRAP=(strace -f -c -o "$OUT/$file")
		client_argv "$path" echo connrate --size 1 --count "$n" # a relay path: the relay's restart first
		WRAP=()
		[[ $path != relay-* ]] || party[relay]=$(leaf_pid "$(cat "$WORK/relay.pid")")
		if [ "$n" = "$SC_COUNT" ]; then
			[ ${#listeners[@]} = 0 ] || packets_begin "${listeners[@]}"
		else
			for who in "${!party[@]}"; do strace_attach "setup-$path-$who" "${party[$who]}"; done
		fi
		record "setup-$path-client-$n" "${CMD_ARGV[@]}"
		[ "$n" != "$SC_COUNT" ] || [ ${#listeners[@]} = 0 ] || packets_end "$path" $((n + 1)) "${listeners[@]}"
		echo "result section=setup path=$path who=client n=$n total_calls=$(strace_total "$OUT/$file") file=$file" >>"$RAW"
		wait_drained "setup-$path-$n"
	done
	for who in "${!party[@]}"; do
		strace_detach "setup-$path-$who"
		echo "result section=setup path=$path who=$who n=$((2 * SC_COUNT + 1)) total_calls=$(strace_total "$OUT/setup-$path-$who.strace") file=setup-$path-$who.strace" >>"$RAW"
	done
	echo "[setup-$path-others] strace -f -c -p PID for each of ${!party[*]} (attached during the $((2 * SC_COUNT))-connection run)" >>"$CMDS"
	unset party
done
rmdir "$TRACE" 2>/dev/null || true

# --- the relay's copy path: system calls per MiB --------------------------------------------
# Counts, which emulation does not disturb as it does times: the relay under strace -c during
# one stream of 64 KiB writes through it by copies; the bytes are what its sessions carried
# (counted when a session ends).
note "relay copy path: system calls per MiB forwarded, strace -c, one stream of 64 KiB writes"
relay_in copy
strace_attach relay-copy "$(leaf_pid "$(cat "$WORK/relay.pid")")"
up0=$(relay_value 'd["counters"]["bytes_up"]')
client_argv relay-copy sink stream --size 64K --streams 1 --seconds "$STREAM_SECONDS"
record relay-copy-calls "${CMD_ARGV[@]}"
wait_drained relay-copy-calls
strace_detach relay-copy
echo "result section=relay-calls path=relay-copy bytes=$(($(relay_value 'd["counters"]["bytes_up"]') - up0)) total_calls=$(strace_total "$OUT/relay-copy.strace") file=relay-copy.strace" >>"$RAW"
echo "[relay-copy-calls] strace -f -c -p <the relay>  (attached during the stream above)" >>"$CMDS"

# --- scale: many concurrent connections --------------------------------------------------
# netbench hold opens N connections, says so, waits 2 s (when the memory of the helperds,
# the server and the client is read), then streams over all of them. Not the relay paths:
# its host policy lets a guest hold 512 at once, and the relay's memory is not a guest's.
note "scale: $SCALE_CONNS concurrent connections, tcp vs shim"
helperd_alpha=$(leaf_pid "$(cat "$WORK/helperd-alpha.pid")")
helperd_beta=$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")
held_rss() {
	HELD="held_helperd_alpha_kib=$(rss_kib "$helperd_alpha") held_helperd_beta_kib=$(rss_kib "$helperd_beta") held_server_kib=$(rss_kib "$server") held_client_kib=$(rss_kib "$1")"
}
for conns in $SCALE_CONNS; do
	for path in tcp shim; do
		server=$(leaf_pid "$(cat "$WORK/srv-$path-sink.pid")")
		before="helperd_alpha_kib=$(rss_kib "$helperd_alpha") helperd_beta_kib=$(rss_kib "$helperd_beta") server_kib=$(rss_kib "$server")"
		client_argv "$path" sink hold --conns "$conns" --size 64K --seconds "$SCALE_SECONDS" --pause "$SCALE_PAUSE"
		held "hold-$path-$conns" held_rss
		result section=scale path="$path" $before $HELD
		wait_drained "hold-$path-$conns"
	done
done

for f in "$WORK"/srv-*.pid "$WORK"/socat-*.pid; do
	stop_bg "$(basename "$f" .pid)"
done
stop_relay
echo "relay restarts=$RELAY_RESTARTS" >>"$RAW"
# how the guest-wide bridges forwarded, over the whole run (both guests' helperds)
echo "bridge spliced=$(($(counter alpha bridge_spliced) + $(counter beta bridge_spliced)))" \
	"taken_back=$(($(counter alpha bridge_taken_back) + $(counter beta bridge_taken_back)))" >>"$RAW"
echo "vm seconds=$((SECONDS - bench_start))" >>"$RAW" # this script's time: no wait for the test VM's lock, no boot
echo "done" >>"$RAW"
