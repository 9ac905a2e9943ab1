#!/usr/bin/env bash
# The part of bench/run that runs inside the test VM (scripts/testvm --out DIR): sets up the
# guests of tests/vm/lib.sh, the servers of every path, and measures. Leaves in DIR:
#   raw.txt        one line per measurement: "result section=S path=P rep=R ... <netbench's line>"
#   commands.txt   every benchmark command exactly as run, in order
#   *.callgrind    callgrind profiles, *.strace strace -c summaries
#   log.txt        everything else: progress, servers' and helperds' output
#
# The five paths, all from alpha (198.18.0.1) to a server in beta (198.18.0.2):
#   tcp     plain TCP over the veth link, no shim anywhere
#   shim    the same program under the shim at both ends: redirected over vsock
#   vsock   netbench's own AF_VSOCK mode: what vsock itself does, no TCP at all
#   socat   today's workaround: client -> socat TCP-LISTEN (alpha) -> vsock -> socat
#           VSOCK-LISTEN (beta) -> TCP on beta's loopback -> the plain server
#   bypass  the shim loaded in the client, destination not co-resident: beta's second address
#           198.18.0.12, in no policy, served by the plain server (the path it must leave alone)
#
# Sizes come from the environment (bench/run passes them; defaults are the full run).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../tests/vm/lib.sh"

OUT=${VMSHIM_TESTVM_OUT:?run me through bench/run}
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
MEMCPY_MIB=${MEMCPY_MIB:-2048}
PATHS=(tcp shim vsock socat bypass)
BYPASS_ADDR=198.18.0.12
RAW=$OUT/raw.txt
CMDS=$OUT/commands.txt
exec 3>>"$OUT/log.txt"
: >"$RAW"
: >"$CMDS"

note() { echo "$*" >&3; echo "bench: $*" >&2; }

# Ports in beta: TCP servers (sink = reads and discards, echo = sends back) and vsock ports
# of the native server and the socat pair (vsock ports are global: these are far from the
# guests' blocks at 1000000 and 2000000).
declare -A PORT=([tcp-sink]=7201 [tcp-echo]=7202 [shim-sink]=7211 [shim-echo]=7212
	[vsock-sink]=40001 [vsock-echo]=40002 [socat-sink]=40011 [socat-echo]=40012
	[alpha-socat-sink]=7221 [alpha-socat-echo]=7222)

# The argv of CMD... run in guest G (with or without the shim), in CMD_ARGV: the same
# expansion as lib.sh's in_guest/shimmed, written out so that commands.txt shows it all.
guest_argv() {
	local g=$1 how=$2
	shift 2
	CMD_ARGV=(ip netns exec "$g" env VMSHIM_RUNDIR="$(rundir "$g")")
	[ "$how" = plain ] || CMD_ARGV+=(LD_PRELOAD="$SHIM_PRELOAD")
	CMD_ARGV+=("$@")
}

# The client side of PATH for a server of KIND (sink or echo): sets CMD_ARGV to alpha's
# netbench MODE with the path's target, then ARGS; behind the program that WRAP (an array,
# such as strace and its options) names, if any.
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
	*) fail "client_argv: $path" ;;
	esac
	guest_argv alpha "$how" "${WRAP[@]}" "$NB" "$mode" "$target" "$@"
}

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

# The helperds run without -d: logging every sibling connection would be measured too.
bench_helperd() {
	HELPERD_DEBUG= start_helperd "$1"
	wait_for "helperd of $1's table" test -s "$(rundir "$1")/table"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Waits (up to 30 s) until no connection of the last run is left in beta, so that its
# leftovers do not slow the next one. helperd's own connections to the other helperds
# (local ports base + 131072 .. + 1023) stay.
beta_busy() {
	ip netns exec beta ss -Hn --vsock state established |
		awk -v lo=$((BASE[beta] + 131072)) '{ split($4, a, ":"); if (a[2] < lo || a[2] > lo + 1023) busy = 1 }
			END { exit !busy }' ||
		ip netns exec beta ss -Htn state established | grep -q . ||
		ip netns exec beta ss -Htn state syn-recv | grep -q .
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
# machine hits them all alike.
paths_for_rep() {
	local r=$1 i n=${#PATHS[@]}
	for i in $(seq 0 $((n - 1))); do
		echo "${PATHS[$(((i + r) % n))]}"
	done
}

# strace_attach NAME PID: counts PID's system calls (strace -c) into $OUT/NAME.strace
# until strace_detach NAME.
strace_attach() {
	strace -f -c -o "$OUT/$1.strace" -p "$2" 2>>"$OUT/log.txt" &
	echo $! >"$WORK/strace-$1.pid"
	sleep 1 # strace reports nothing on attaching; give it time to get there
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

finish() {
	local rc=$?
	for g in alpha beta; do
		[ -f "$WORK/helperd-$g.log" ] && { echo "--- helperd-$g.log"; cat "$WORK/helperd-$g.log"; } >&3
	done
	for f in "$WORK"/*.out; do
		[ -f "$f" ] && { echo "--- ${f##*/}"; tail -n 20 "$f"; } >&3
	done
	echo "vm.sh exit $rc" >&3
}
trap finish EXIT

# --- guests, helperds, servers -----------------------------------------------------------
ulimit -n 8192
setup_guests
ip -n beta addr add "$BYPASS_ADDR/24" dev eth0
bench_helperd alpha
bench_helperd beta
echo "vm uname=$(uname -r) cpus=$(nproc) model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1 | tr ' ' _)" >>"$RAW"

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
done
for kind in sink echo; do
	wait_for "beta's tcp-$kind" tcp_listening beta "${PORT[tcp-$kind]}"
	wait_for "beta's shim-$kind on vsock" vsock_listening beta "$(vsock_port beta "${PORT[shim-$kind]}")"
	wait_for "beta's vsock-$kind" sh -c "ip netns exec beta ss -Hln --vsock | grep -q ':${PORT[vsock-$kind]} '"
	wait_for "beta's socat-$kind" sh -c "ip netns exec beta ss -Hln --vsock | grep -q ':${PORT[socat-$kind]} '"
	wait_for "alpha's socat-$kind" tcp_listening alpha "${PORT[alpha-socat-$kind]}"
done

# Each path is what it claims to be: bytes on alpha's veth for tcp and bypass only, and the
# shim's own account (VMSHIM_DEBUG=1) of redirecting the one and leaving the other alone.
note "checking the paths"
for path in "${PATHS[@]}"; do
	client_argv "$path" echo pingpong --size 1 --count 20 --warmup 0
	before=$(veth_bytes alpha)
	record "check-$path" env VMSHIM_DEBUG=1 "${CMD_ARGV[@]}"
	shim_said=$(grep -oE 'connected to sibling|no sibling.s: plain TCP' "$WORK/last.err" | head -n 1 | tr ' ' _ || true)
	result section=check path="$path" veth_bytes=$(($(veth_bytes alpha) - before)) "shim_said=${shim_said:-nothing}"
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
				record "stream-$path" "${CMD_ARGV[@]}"
				result section=stream path="$path" rep="$r"
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
			record "pingpong-$path" "${CMD_ARGV[@]}"
			result section=pingpong path="$path" rep="$r"
		done
	done
done

# --- connection rate ---------------------------------------------------------------------
note "connection rate: $CR_COUNT connections (connect, 1 byte there and back, close), $REPS repetitions"
for r in $(seq "$REPS"); do
	for path in $(paths_for_rep "$r"); do
		client_argv "$path" echo connrate --size 1 --count "$CR_COUNT"
		record "connrate-$path" "${CMD_ARGV[@]}"
		result section=connrate path="$path" rep="$r"
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

# Where a redirected connection's set-up goes: system calls per connection in the client,
# beta's server and beta's helperd (attached during the 2N run; the client's count is the
# difference of N and 2N). strace slows every call down a lot: no times here.
note "redirected set-up: system calls per connection, strace -c, $SC_COUNT and $((2 * SC_COUNT)) connections"
helperd_beta=$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")
for path in shim tcp; do
	for n in "$SC_COUNT" $((2 * SC_COUNT)); do
		if [ "$n" != "$SC_COUNT" ]; then
			strace_attach "setup-$path-server" "$(leaf_pid "$(cat "$WORK/srv-$path-echo.pid")")"
			strace_attach "setup-$path-helperd" "$helperd_beta"
		fi
		file=setup-$path-client-$n.strace
		WRAP=(strace -f -c -o "$OUT/$file")
		client_argv "$path" echo connrate --size 1 --count "$n"
		WRAP=()
		record "setup-$path-client-$n" "${CMD_ARGV[@]}"
		echo "result section=setup path=$path who=client n=$n total_calls=$(strace_total "$OUT/$file") file=$file" >>"$RAW"
		wait_drained "setup-$path-$n"
	done
	for who in server helperd; do
		strace_detach "setup-$path-$who"
		echo "result section=setup path=$path who=$who n=$((2 * SC_COUNT + 1)) total_calls=$(strace_total "$OUT/setup-$path-$who.strace") file=setup-$path-$who.strace" >>"$RAW"
	done
	echo "[setup-$path-server+helperd] strace -f -c -p <beta's srv-$path-echo> ; strace -f -c -p <beta's helperd>  (attached during the $((2 * SC_COUNT))-connection run)" >>"$CMDS"
done

# --- scale: many concurrent connections --------------------------------------------------
# netbench hold opens N connections, says so, waits 2 s (when the memory of the helperds,
# the server and the client is read), then streams over all of them. (The client is the
# background job itself: ip netns exec and env exec it.)
note "scale: $SCALE_CONNS concurrent connections, tcp vs shim"
helperd_alpha=$(leaf_pid "$(cat "$WORK/helperd-alpha.pid")")
for conns in $SCALE_CONNS; do
	for path in tcp shim; do
		server=$(leaf_pid "$(cat "$WORK/srv-$path-sink.pid")")
		before="helperd_alpha_kib=$(rss_kib "$helperd_alpha") helperd_beta_kib=$(rss_kib "$helperd_beta") server_kib=$(rss_kib "$server")"
		client_argv "$path" sink hold --conns "$conns" --size 64K --seconds "$SCALE_SECONDS" --pause 2
		echo "[hold-$path-$conns] $(printf '%q ' "${CMD_ARGV[@]}")" >>"$CMDS"
		"${CMD_ARGV[@]}" >"$WORK/hold.out" 2>>"$OUT/log.txt" &
		client=$!
		for _ in $(seq 600); do
			grep -q hold-ready "$WORK/hold.out" && break
			kill -0 "$client" 2>/dev/null || break
			sleep 0.1
		done
		held="held_helperd_alpha_kib=$(rss_kib "$helperd_alpha") held_helperd_beta_kib=$(rss_kib "$helperd_beta") held_server_kib=$(rss_kib "$server") held_client_kib=$(rss_kib "$client")"
		wait "$client" || { note "FAILED: hold $path $conns: $(tail -n 3 "$OUT/log.txt")"; exit 1; }
		cp "$WORK/hold.out" "$WORK/last.out"
		result section=scale path="$path" $before $held
		wait_drained "hold-$path-$conns"
	done
done

for f in "$WORK"/srv-*.pid "$WORK"/socat-*.pid; do
	stop_bg "$(basename "$f" .pid)"
done
echo "done" >>"$RAW"
