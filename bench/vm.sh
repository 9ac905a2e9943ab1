#!/usr/bin/env bash
# The part of bench/run that runs inside the test VM (scripts/testvm --out DIR): sets up
# the guests of tests/vm/lib.sh, runs the benchmarks, and leaves raw results in DIR:
#   raw.txt        one line per measurement: "KEY k=v ..." (bench/run turns it into the report)
#   commands.txt   every benchmark command exactly as run, in order
#   *.callgrind    callgrind profiles, *.strace strace -c summaries, iperf3-*.json
#   log.txt        everything else: progress, servers' and helperds' output
# Sizes come from the environment (bench/run passes them): N_FAST, ROUNDS, N_CG, N_REDIR,
# REDIR_ROUNDS, N_SC, IPERF_T, IPERF_ROUNDS.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../tests/vm/lib.sh"

OUT=${VMSHIM_TESTVM_OUT:?run me through bench/run}
BENCH=$TOP/$BUILD/bench
N_FAST=${N_FAST:-2000}
ROUNDS=${ROUNDS:-5}
N_CG=${N_CG:-200}
N_REDIR=${N_REDIR:-300}
REDIR_ROUNDS=${REDIR_ROUNDS:-3}
IPERF_T=${IPERF_T:-5}
IPERF_ROUNDS=${IPERF_ROUNDS:-3}
N_SC=${N_SC:-20}
RAW=$OUT/raw.txt
CMDS=$OUT/commands.txt
exec 3>>"$OUT/log.txt"
: >"$RAW"
: >"$CMDS"

note() { echo "$*" >&3; echo "bench: $*" >&2; }

# The argv of CMD... run in guest G (with or without the shim), in CMD_ARGV: the same
# expansion as lib.sh's in_guest/shimmed, written out so that commands.txt shows it all.
guest_argv() {
	local g=$1 how=$2
	shift 2
	CMD_ARGV=(ip netns exec "$g" env VMSHIM_RUNDIR="$(rundir "$g")")
	case $how in
	plain) ;;
	shim) CMD_ARGV+=(LD_PRELOAD="$SHIM_PRELOAD") ;;
	disabled) CMD_ARGV+=(LD_PRELOAD="$SHIM_PRELOAD" VMSHIM_DISABLE=1) ;;
	*) fail "guest_argv: $how" ;;
	esac
	CMD_ARGV+=("$@")
}

# record LABEL CMD...: logs the command under LABEL in commands.txt, runs it, and leaves
# its standard output in $WORK/last.out and its standard error in $WORK/last.err (and
# log.txt). Fails the run if the command fails.
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
		return 1
	fi
}

# The helperds run without -d: logging every sibling connection would be measured too.
# start_helperd also waits until the guests' helperds know each other.
bench_helperd() {
	HELPERD_DEBUG= start_helperd "$1"
	wait_for "helperd of $1's table" test -s "$(rundir "$1")/table"
}

# The process at the end of a background job's chain of single children (start_bg and
# start_helperd record the pid of a subshell; the program is its descendant).
leaf_pid() {
	local pid=$1 child
	for _ in 1 2 3 4 5 6; do
		child=$(pgrep -P "$pid" | head -n 1) || true
		[ -n "$child" ] || break
		pid=$child
	done
	echo "$pid"
}

# Waits (up to 30 s) until beta holds no established connection: the servers and beta's
# helperd have dealt with every connection of the last run, so that its leftovers do not
# slow the next one. helperd's own connections to the other helperds (local ports base +
# 131072 .. + 1023) stay.
beta_busy() {
	ip netns exec beta ss -Hn --vsock state established |
		awk -v lo=$((BASE[beta] + 131072)) '{ split($4, a, ":"); if (a[2] < lo || a[2] > lo + 1023) busy = 1 }
			END { exit !busy }' ||
		ip netns exec beta ss -Htn state established | grep -q . ||
		ip netns exec beta ss -Htn state syn-recv | grep -q .
}
wait_drained() {
	local i
	for i in $(seq 300); do
		beta_busy || return 0
		sleep 0.1
	done
	note "beta still busy after 30 s"
	echo "warning beta-not-drained after=$1" >>"$RAW"
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
# The "calls" column of strace -c's total line (the 4th, whether or not errors follow).
strace_total() { awk '$NF == "total" { print $4 }' "$1"; }

finish() {
	local rc=$?
	for g in alpha beta gamma; do
		[ -f "$WORK/helperd-$g.log" ] && { echo "--- helperd-$g.log"; cat "$WORK/helperd-$g.log"; } >&3
	done
	for f in "$WORK"/*.out; do
		[ -f "$f" ] && { echo "--- ${f##*/}"; tail -n 20 "$f"; } >&3
	done
	echo "vm.sh exit $rc" >&3
}
trap finish EXIT

setup_guests
bench_helperd alpha
bench_helperd beta
echo "vm uname=$(uname -r) cpus=$(nproc) model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1 | tr ' ' _)" >>"$RAW"

# --- servers --------------------------------------------------------------------------
# gamma (not in the policy): an ordinary server, no shim.
start_bg srv-gamma in_guest gamma "$BENCH/accept_server" 7000 0.0.0.0 600
wait_for "gamma's accept_server" tcp_listening gamma 7000
# beta: the same server under the shim (siblings reach it over vsock) ...
start_bg srv-beta-shim shimmed beta "$BENCH/accept_server" 7100 0.0.0.0 600
wait_for "beta's accept_server on vsock" vsock_listening beta "$(vsock_port beta 7100)"
# ... and with the shim disabled, for the plain-TCP baseline.
start_bg srv-beta-tcp in_guest beta env LD_PRELOAD="$SHIM_PRELOAD" VMSHIM_DISABLE=1 \
	"$BENCH/accept_server" 7101 0.0.0.0 600
wait_for "beta's plain accept_server" tcp_listening beta 7101

# --- a) the fast path: alpha -> gamma, not redirected ------------------------------------
# First a check that this is the path we mean: the shim maps alpha's table and leaves the
# connection to gamma alone (VMSHIM_DEBUG=1 logs each decision; not in the timed runs).
guest_argv alpha shim env VMSHIM_DEBUG=1 "$BENCH/connect_bench" 198.18.0.3 7000 3
record "fast-check" "${CMD_ARGV[@]}"
echo "fast-check $(cat "$WORK/last.out")" >>"$RAW"
sed 's/^/fast-check-stderr /' "$WORK/last.err" >>"$RAW"
note "fast path: $N_FAST connects x $ROUNDS rounds, with and without the shim"
for r in $(seq "$ROUNDS"); do
	# Alternate which variant goes first, so that a slow drift hits both alike.
	if [ $((r % 2)) = 1 ]; then order="plain shim"; else order="shim plain"; fi
	for v in $order; do
		guest_argv alpha "$v" timeout 120 "$BENCH/connect_bench" 198.18.0.3 7000 "$N_FAST"
		before=$(veth_bytes alpha)
		record "fast-$v" "${CMD_ARGV[@]}"
		echo "fast variant=$v round=$r veth_bytes=$(($(veth_bytes alpha) - before)) $(cat "$WORK/last.out")" >>"$RAW"
	done
done

# Instruction counts: callgrind counts only bench_loop (the N_CG timed connects), so the
# start-up, the warm-up connect and the shim's one-time set-up are left out.
note "fast path: callgrind, $N_CG connects, with and without the shim"
for v in plain shim; do
	guest_argv alpha "$v" timeout 300 valgrind --tool=callgrind \
		--callgrind-out-file="$OUT/fast-$v.callgrind" --collect-atstart=no \
		--toggle-collect=bench_loop --collect-systime=yes \
		"$BENCH/connect_bench" 198.18.0.3 7000 "$N_CG"
	record "callgrind-$v" "${CMD_ARGV[@]}"
	echo "callgrind variant=$v n=$N_CG file=fast-$v.callgrind $(cat "$WORK/last.out")" >>"$RAW"
done

# System calls, counted by strace (which, unlike valgrind, leaves the vDSO alone): the
# difference between N_CG and 2*N_CG connects is what N_CG connects cost.
note "fast path: strace -c, $N_CG and $((2 * N_CG)) connects, with and without the shim"
for v in plain shim; do
	for n in "$N_CG" $((2 * N_CG)); do
		guest_argv alpha "$v" timeout 120 strace -f -c -o "$OUT/fast-$v-$n.strace" \
			"$BENCH/connect_bench" 198.18.0.3 7000 "$n"
		record "strace-$v-$n" "${CMD_ARGV[@]}"
		calls=$(strace_total "$OUT/fast-$v-$n.strace")
		echo "strace variant=$v n=$n total_calls=$calls file=fast-$v-$n.strace" >>"$RAW"
	done
done

# --- b) redirected connects: alpha -> beta over vsock, vs plain TCP ----------------------
note "redirected: $N_REDIR connects x $REDIR_ROUNDS rounds, vsock vs VMSHIM_DISABLE=1, both modes"
for mode in connect echo; do
	for r in $(seq "$REDIR_ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then order="shim disabled"; else order="disabled shim"; fi
		for v in $order; do
			port=7100
			[ "$v" = disabled ] && port=7101
			guest_argv alpha "$v" timeout 120 "$BENCH/connect_bench" 198.18.0.2 "$port" \
				"$N_REDIR" "$mode"
			before=$(veth_bytes alpha)
			record "redir-$mode-$v" "${CMD_ARGV[@]}"
			echo "redir variant=$v round=$r veth_bytes=$(($(veth_bytes alpha) - before)) $(cat "$WORK/last.out")" >>"$RAW"
			wait_drained "redir-$mode-$v-$r"
		done
	done
done

# Where the time goes: system calls per connection (echo mode) in the client, beta's
# server and beta's helperd. The client's are the difference between 2*N_SC and N_SC
# connects (which leaves its start-up out); the server and helperd are traced (attached)
# during the 2*N_SC run only. strace slows every call down a lot: no times here.
note "redirected: system calls per connection, strace -c, $N_SC and $((2 * N_SC)) echo connects"
helperd_beta=$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")
for v in shim disabled; do
	port=7100 srv=srv-beta-shim
	[ "$v" = disabled ] && port=7101 srv=srv-beta-tcp
	for n in "$N_SC" $((2 * N_SC)); do
		if [ "$n" != "$N_SC" ]; then
			strace_attach "sc-$v-server" "$(leaf_pid "$(cat "$WORK/$srv.pid")")"
			strace_attach "sc-$v-helperd" "$helperd_beta"
		fi
		guest_argv alpha "$v" timeout 200 strace -f -c -o "$OUT/sc-$v-client-$n.strace" \
			"$BENCH/connect_bench" 198.18.0.2 "$port" "$n" echo
		record "syscalls-$v-client-$n" "${CMD_ARGV[@]}"
		echo "sc variant=$v who=client n=$n total_calls=$(strace_total "$OUT/sc-$v-client-$n.strace") file=sc-$v-client-$n.strace" >>"$RAW"
		wait_drained "syscalls-$v-$n"
	done
	for who in server helperd; do
		strace_detach "sc-$v-$who"
		echo "sc variant=$v who=$who n=$((2 * N_SC + 1)) total_calls=$(strace_total "$OUT/sc-$v-$who.strace") file=sc-$v-$who.strace" >>"$RAW"
	done
	echo "[syscalls-$v-server+helperd] strace -f -c -p <beta's $srv> ; strace -f -c -p <beta's helperd>  (attached during the $((2 * N_SC))-connect run)" >>"$CMDS"
done

# --- c) throughput: iperf3 alpha -> beta -------------------------------------------------
note "throughput: iperf3 -t $IPERF_T, -P 1 and -P 4, shim vs VMSHIM_DISABLE=1"
guest_argv beta shim timeout 600 iperf3 -s -p 5201
start_bg iperf-shim "${CMD_ARGV[@]}"
echo "[iperf3-server-shim] $(printf '%q ' "${CMD_ARGV[@]}")" >>"$CMDS"
guest_argv beta disabled timeout 600 iperf3 -s -p 5202
start_bg iperf-tcp "${CMD_ARGV[@]}"
echo "[iperf3-server-disabled] $(printf '%q ' "${CMD_ARGV[@]}")" >>"$CMDS"
wait_for "iperf3 -s under the shim" vsock_listening beta "$(vsock_port beta 5201)"
wait_for "iperf3 -s, shim disabled" tcp_listening beta 5202
for streams in 1 4; do
	for r in $(seq "$IPERF_ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then order="shim disabled"; else order="disabled shim"; fi
		for v in $order; do
			port=5201
			[ "$v" = disabled ] && port=5202
			json=iperf3-$v-P$streams-r$r.json
			guest_argv alpha "$v" timeout $((IPERF_T + 30)) iperf3 -c 198.18.0.2 -p "$port" \
				-t "$IPERF_T" -P "$streams" -J
			before=$(veth_bytes alpha)
			if record "iperf3-$v-P$streams" "${CMD_ARGV[@]}"; then
				cp "$WORK/last.out" "$OUT/$json"
				echo "iperf3 variant=$v streams=$streams round=$r veth_bytes=$(($(veth_bytes alpha) - before)) file=$json" >>"$RAW"
			else
				cp "$WORK/last.out" "$OUT/$json"
				echo "iperf3-failed variant=$v streams=$streams round=$r file=$json" >>"$RAW"
			fi
			# iperf3 -s serves one test at a time; give it a moment to reset.
			sleep 0.5
		done
	done
done
stop_bg iperf-shim
stop_bg iperf-tcp
for s in srv-gamma srv-beta-shim srv-beta-tcp; do
	stop_bg "$s"
done
echo "done" >>"$RAW"
