# Shared by the integration tests. They run inside the test VM only (scripts/testvm), where
# each "guest" is a network namespace on a bridge, all guests share vsock CID 1
# (vsock_loopback), and the policy's vsock port blocks keep them apart.
#
#   alpha 198.18.0.1   in the policy, vsock-base 1000000
#   beta  198.18.0.2   in the policy, vsock-base 2000000
#   gamma 198.18.0.3   not in the policy: an ordinary remote host
#
# Other runners may run beside the first in the same VM (tests/vm/lanes), each as lane N
# (VMSHIM_LANE=N): its guests' namespaces, veths and bridge carry "-N", its run directories
# lie under /run/laneN, its WORK is its own, and its vsock port blocks (vsock ports are not
# namespaced) lie N*100000000 higher. Tests that run there name their guests' namespaces
# through these helpers (netns G), never by hand. The first runner's run directories lie
# under /run/lane1: /run/vmshim and /run/vmshim-relay are the packages' (t_packages).

set -euo pipefail

if [ "${VMSHIM_IN_TESTVM:-}" != 1 ]; then
	echo "tests/vm: these tests connect AF_VSOCK and run only inside scripts/testvm" >&2
	exit 2
fi

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
SHIM=$TOP/$BUILD/libvmshim.so
HELPERD=$TOP/$BUILD/helperd
VMSHIMCTL=$TOP/$BUILD/vmshimctl
RELAY=$TOP/${RELAY_BUILD:-$BUILD}/vmshim-relay # RELAY_BUILD=build-tsan: its libvirt thread
# relay_status: the running relay's status. Asked with the plain build's relay, which only
# copies the answer of the relay under test: a sanitized relay takes several times as long
# to start under emulation, and the tests ask hundreds of times.
relay_status() { "$TOP/build/vmshim-relay" -r "$RUN/vmshim-relay" status; }
PROGS=$TOP/$BUILD/progs
LANE=${VMSHIM_LANE:-}
NS_SUFFIX=${LANE:+-$LANE}
RUN=/run/lane${LANE:-1}
LANE_PORTS=$((${LANE:-0} * 100000000))
RELAY_PORT=$((5460 + LANE_PORTS))
BRIDGE=br${LANE:-0}
WORK=${WORK:-/tmp/vmshim-test${LANE:+-lane$LANE}}
POLICY=$WORK/policy
# An ASan build of the shim needs the ASan runtime loaded first.
SHIM_PRELOAD=$SHIM
if [ -n "${ASAN_RUNTIME:-}" ]; then
	SHIM_PRELOAD="$ASAN_RUNTIME $SHIM"
fi

declare -A ADDR=([alpha]=198.18.0.1 [beta]=198.18.0.2 [gamma]=198.18.0.3)
declare -A BASE=([alpha]=$((1000000 + LANE_PORTS)) [beta]=$((2000000 + LANE_PORTS)))

# With TEST_LOG_TIMES set, each line says when it came, in ms from the test's start (run's
# $start): where a test's time goes (issue 17).
log() {
	if [ -n "${TEST_LOG_TIMES:-}" ]; then
		printf '    [%d ms] %s\n' $((($(date +%s%N) - ${start:-0}) / 1000000)) "$*"
	else
		printf '    %s\n' "$*"
	fi
}

# kernel_at_least X.Y: whether the running kernel is Linux X.Y or later.
kernel_at_least() {
	local release major minor
	release=$(uname -r)
	major=${release%%.*}
	minor=${release#*.}
	minor=${minor%%[!0-9]*}
	((major > ${1%.*} || (major == ${1%.*} && minor >= ${1#*.})))
}
# fail WHY: ends the test; tests/vm/run repeats WHY on its last line, below the logs it shows
# (which an excerpt of a long CI log may cut).
fail() {
	printf '    FAIL: %s\n' "$*"
	printf '%s\n' "$*" >"$WORK/failed" 2>/dev/null || true
	exit 1
}

# is_alone NAME: whether test NAME must run with no other test alive (its first line reads
# "# alone: WHY"): what it changes is the whole VM's (a kernel module, /etc), and other
# tests' daemons would see it. tests/vm/lanes runs such tests first, by themselves.
is_alone() { head -n 1 "$TOP/tests/vm/$1.sh" | grep -q '^# alone:'; }

# alone_begin ... alone_end: the part of a test between them runs while no test script runs
# in the other lane (tests/vm/lanes): alone_begin waits until the test there has ended, or
# has itself reached alone_begin (its daemons then still run), and that lane waits for
# alone_end. For a part that times something to the millisecond, or changes what the whole
# VM shares for a moment that the other lane's daemons may see (a global sysctl); a change
# they must not see belongs in a test of its own that runs alone (is_alone).
# (tests/vm/run holds TESTS_LOCK shared while a test runs, and takes it only through
# TESTS_GATE, which alone_begin holds while it waits: a lane that starts its next test at
# once could otherwise keep TESTS_LOCK from ever being free.)
alone_begin() {
	[ -n "${TESTS_LOCK:-}" ] || return 0
	local since=$(date +%s%N)
	flock -u "$TESTS_LOCK" # not held while waiting for the gate: the other lane may be there
	flock -x "$TESTS_GATE"
	flock -x "$TESTS_LOCK"
	flock -u "$TESTS_GATE"
	[ -z "${TEST_LOG_TIMES:-}" ] || log "alone after waiting $((($(date +%s%N) - since) / 1000000)) ms for the other lane"
}
alone_end() { [ -z "${TESTS_LOCK:-}" ] || flock -s "$TESTS_LOCK"; }

# guest_policy [--relay] GUEST...: a policy for the test guests GUEST (GUEST/relay: `via
# relay`), on stdout; --relay names the host's relay.
guest_policy() {
	local relay= g
	[ "${1:-}" != --relay ] || { relay=1; shift; }
	echo "# The test guests: every one has CID 1, so each has its own vsock port block."
	[ -z "$relay" ] || echo "relay 1 $RELAY_PORT"
	# 6 s (announcements every 2 s, a peer silent for 4 s dropped), not the default 3 s:
	# under emulation, with sanitizers and the other lane busy, a helperd's announcement came
	# more than 1 s late in CI (t_threads under TSan: "no announcement for 2056 ms") and its
	# guest's connections went over TCP. t_discovery times the default with its own policy.
	echo "liveness-timeout 6000"
	echo "connect-timeout 2000"
	echo "allow 1024-65535"
	for g in "$@"; do
		echo "peer ${g%/relay}"
		echo "    cid 1"
		echo "    address ${ADDR[${g%/relay}]}"
		echo "    vsock-base ${BASE[${g%/relay}]}"
		[ "$g" = "${g%/relay}" ] || echo "    via relay"
	done
}

write_policy() { guest_policy alpha beta >"$POLICY"; }

# own_policy G: a policy for guest G that names only G and the relay, which tells it its
# siblings (`peers relay`), on stdout. (G keeps its own block: guests that share CID 1 are
# told apart by their port blocks.)
own_policy() {
	cat <<-EOF
		relay 1 $RELAY_PORT
		peers relay
		liveness-timeout 6000
		connect-timeout 2000
		allow 1024-65535
		peer $1
		    cid 1
		    vsock-base ${BASE[$1]}
		    address ${ADDR[$1]}
	EOF
}

# The guests' policy with the host's relay: alpha and beta reach each other through it.
write_relay_policy() { guest_policy --relay alpha/relay beta/relay >"$POLICY"; }

# write_host_policy FILE [SETTINGS...]: the relay's host policy for the guests in
# RELAY_GUESTS (alpha beta), all on CID 1 and known by their port blocks, each reaching the
# others; SETTINGS are lines before the guests (max-per-guest 2, ...); REACH_BETA, if set,
# limits alpha to those ports of beta.
write_host_policy() {
	local file=$1 g h guests=${RELAY_GUESTS:-alpha beta}
	shift
	{
		echo "port $RELAY_PORT"
		printf '%s\n' "$@"
		for g in $guests; do
			echo "guest $g"
			echo "    cid 1"
			echo "    vsock-base ${BASE[$g]}"
			echo "    address ${ADDR[$g]}" # told to guests with `peers relay`
			for h in $guests; do
				if [ "$g:$h" = alpha:beta ]; then
					echo "    reach beta ${REACH_BETA:-}"
				elif [ "$h" != "$g" ]; then
					echo "    reach $h"
				fi
			done
		done
	} >"$file"
}

# start_relay POLICY [OPTION...]: vmshim-relay in the namespace "host", which stands for the
# host; with -d unless RELAY_DEBUG is set (to nothing).
start_relay() {
	local policy=$1
	shift
	ip netns add "$(netns host)" 2>/dev/null || true
	ip netns exec "$(netns host)" "$RELAY" -f ${RELAY_DEBUG--d} -c "$policy" -r "$RUN/vmshim-relay" "$@" \
		>>"$WORK/relay.log" 2>&1 &
	echo $! >"$WORK/relay.pid"
	wait_for "the relay" test -S "$RUN/vmshim-relay/status"
}

stop_relay() {
	local pid
	pid=$(cat "$WORK/relay.pid" 2>/dev/null) || return 0
	end_job "$pid" "${1:-TERM}"
	rm -f "$WORK/relay.pid"
}

# relay_value EXPR: a Python expression over d, the relay's status. A top-level field or a
# total counter (d["KEY"], d["counters"]["KEY"]), most of what tests read and poll, is
# read by json_pick; anything else by python3 -S (which needs nothing from site-packages:
# still 340 ms a start under emulation, hundreds of them in a run).
relay_value() {
	local path='^d\["([a-z_]+)"\](\["([a-z_]+)"\])?$'
	if [[ $1 =~ $path ]]; then
		json_pick "$(relay_status)" "${BASH_REMATCH[1]}" ${BASH_REMATCH[3]:+"${BASH_REMATCH[3]}"}
		return
	fi
	relay_status |
		python3 -S -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# json_pick JSON KEY...: the value of KEY (then of the next KEY within it ...) in JSON as
# helperd and the relay write it, by the first occurrence of each key after the one before:
# their top-level fields and their total counters come before any list that repeats the
# names. A string's text, or a number, true or false; fails if a key is missing.
json_pick() {
	local json=$1 key re
	shift
	for key; do
		re="\"$key\": ?(.*)"
		[[ $json =~ $re ]] || return 1
		json=${BASH_REMATCH[1]}
	done
	re='^("([^"]*)"|-?[0-9]+|true|false)'
	[[ $json =~ $re ]] || return 1
	if [[ ${BASH_REMATCH[1]} == \"* ]]; then echo "${BASH_REMATCH[2]}"; else echo "${BASH_REMATCH[1]}"; fi
}

# relayed_total: connections the relay has carried to their destination.
relayed_total() { relay_value 'd["counters"]["relayed"]'; }

# add_guest G: G's namespace, its veth on the bridge, its address. Its MAC address is made
# of its IP address, so that a guest removed and added again is the same to the others'
# neighbour caches: with a new MAC, their packets would go to the old one until their entry
# for it went stale (15 to 45 s), and a test's first TCP connection to the guest would hang
# in SYN retransmissions meanwhile. (ip -batch: one ip per namespace, not one per step; every
# test makes three guests.)
add_guest() {
	local g=$1 ns=$1$NS_SUFFIX
	ip netns add "$ns"
	ip -batch - <<-EOF
		link add v-$ns type veth peer name eth0 address $(printf '02:00:%02x:%02x:%02x:%02x' ${ADDR[$g]//./ }) netns $ns
		link set v-$ns master $BRIDGE up
	EOF
	ip -n "$ns" -batch - <<-EOF
		addr add ${ADDR[$g]}/24 dev eth0
		link set eth0 up
		link set lo up
	EOF
}

# remove_guest G: kills everything in G and removes it. The kernel tears a namespace down
# later, in its own time; the veth is deleted now, or the next add_guest G finds it.
remove_guest() {
	local ns=$1$NS_SUFFIX pids
	[ -e "/run/netns/$ns" ] || [ -e "/sys/class/net/v-$ns" ] || return 0 # none: no ip to run
	pids=$(ip netns pids "$ns" 2>/dev/null) || true
	[ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
	ip link del "v-$ns" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
}

setup_guests() {
	mkdir -p "$WORK" "$RUN"
	write_policy
	ip -batch - <<-EOF
		link add $BRIDGE type bridge
		link set $BRIDGE up
	EOF
	for g in alpha beta gamma; do
		add_guest "$g"
	done
}

rundir() { echo "$RUN/vmshim-$1"; }

# netns G: the name of guest G's network namespace.
netns() { echo "$1$NS_SUFFIX"; }

# Runs a command in a guest, pointed at that guest's helperd.
in_guest() {
	local g=$1
	shift
	ip netns exec "$g$NS_SUFFIX" env VMSHIM_RUNDIR="$(rundir "$g")" "$@"
}

# ss_in GUEST ARGS...: ss in GUEST's network namespace. nsenter enters only that, which is
# all ss needs, at half the cost of ip netns exec (which also mounts GUEST's /sys): the
# tests ask ss hundreds of times.
ss_in() {
	local g=$1
	shift
	nsenter --net="/run/netns/$g$NS_SUFFIX" ss "$@"
}

# The same, with the shim preloaded.
shimmed() {
	local g=$1
	shift
	in_guest "$g" env LD_PRELOAD="$SHIM_PRELOAD" "$@"
}

# as_nobody GUEST CMD...: CMD in GUEST as the unprivileged user nobody.
as_nobody() {
	local g=$1
	shift
	in_guest "$g" setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

# status_json GUEST: GUEST's helperd's status as JSON (vmshimctl status --json). helperd's
# socket is a file: reaching it needs no trip into GUEST's namespace. Asked with the plain
# build's vmshimctl, which only prints what the helperd under test answers: tests poll it
# hundreds of times, and a sanitized one takes several times as long to start under
# emulation ($VMSHIMCTL, the build under test, runs where a test checks vmshimctl itself).
status_json() { "$TOP/build/vmshimctl" -r "$(rundir "$1")" status --json; }

# status_check GUEST PYTHON-CONDITION: d is GUEST's status, peer(NAME) one of its peers.
status_check() {
	status_json "$1" | python3 -S -c 'import json, sys
d = json.load(sys.stdin)
peer = lambda n: next(x for x in d["peers"] if x["name"] == n)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$2"
}

# status_value GUEST KEY...: the value at KEY... in GUEST's status (json_pick).
status_value() {
	local g=$1
	shift
	json_pick "$(status_json "$g")" "$@"
}
# counter GUEST NAME: one of GUEST's counters; fallbacks GUEST: all its shims' fallbacks.
counter() { status_value "$1" counters "$2"; }
fallbacks() {
	local json sum=0 re='"fallback[a-z_]*":([0-9]+)(.*)'
	json=$(status_json "$1")
	json=${json#*\"counters\":}
	while [[ $json =~ $re ]]; do
		sum=$((sum + BASH_REMATCH[1]))
		json=${BASH_REMATCH[2]}
	done
	echo "$sum"
}

# peer_up GUEST PEER: GUEST's helperd knows PEER is up. serves GUEST PEER PORT
# [ports4|ports6]: and that PEER serves PORT. Tests poll these in wait_for, so they read
# helperd's JSON (helperd/peers_status.c writes each peer as {"name":..,"cid":..,"uuid":..,
# "state":..,"addresses":[..],"ports4":[..],"ports6":[..],..}) with a bash pattern: under
# emulation a python3 or jq takes 0.3 s to start (measured in the test VM), vmshimctl
# 0.03-0.13 s.
peer_up() { serves "$1" "$2" any; }
serves() {
	local peer='"name":"'$2'","cid":[0-9]+,"uuid":"[^"]*","state":"up","addresses":\[[^]]*\],"ports4":\[([0-9,]*)\],"ports6":\[([0-9,]*)\]'
	[[ $(status_json "$1") =~ $peer ]] || return 1
	[ "$3" = any ] && return 0
	local ports=${BASH_REMATCH[1]}
	[ "${4:-ports4}" = ports4 ] || ports=${BASH_REMATCH[2]}
	[[ ,$ports, == *",$3,"* ]]
}

# The guests whose helperd runs with the common policy: they must know each other before a
# test relies on redirection.
common_helperds() {
	local h
	for h in alpha beta; do
		[ -f "$WORK/helperd-$h.common" ] && echo "$h"
	done
	return 0
}

# guest_wide_cgroups: makes CG (alpha's) and CGB (beta's), cgroups for guest-wide mode
# (helperd --guest-wide=CG), kept for the lane's next test (a test's processes end with it);
# in_cg GUEST CMD... runs CMD in GUEST's. ip netns exec mounts a /sys of its own, without
# the cgroups: they are mounted where the guests see them too.
guest_wide_cgroups() {
	local root=/run/vmshim-cgroup2$NS_SUFFIX # a mount per lane: two at once race
	mkdir -p "$root"
	mountpoint -q "$root" || mount -t cgroup2 cgroup2 "$root"
	CG=$root/vmshim-gw$NS_SUFFIX
	CGB=$root/vmshim-gw-beta$NS_SUFFIX
	mkdir -p "$CG" "$CGB"
}
in_cg() {
	local g=$1 cg=$CG
	shift
	[ "$g" = alpha ] || cg=$CGB
	in_guest "$g" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# peer_flood NAME PEER N PORT: alpha, playing PEER of the policy (alpha itself, or a peer
# with a vsock base of its own that only alpha runs), opens N connections to beta's TCP port
# PORT from PEER's source block's TCP ports 10000 on, as hostile peer guests would, and holds
# them (tests/vm/apps/peer_flood.py: until $WORK/NAME.go); waits (up to 180 s) for what came
# of them.
peer_flood() {
	local name=$1 i
	start_bg "$name" in_guest alpha python3 -S "$TOP/tests/vm/apps/peer_flood.py" 1 \
		"$(vsock_port beta "$4")" $((BASE[$2] + 131072 + 10000)) "$3" "$WORK/$name.go" \
		"${ADDR[beta]}" "$4"
	for i in $(seq 1800); do
		grep -q '^opened' "$WORK/$name.out" && return 0
		sleep 0.1
	done
	fail "$name: $(cat "$WORK/$name.out")"
}

# start_helperd GUEST [POLICY]: with -d, unless HELPERD_DEBUG is set (to nothing); under
# HELPERD_WRAP, a command and its options (valgrind ...), when that is set; with the options
# in HELPERD_ARGS after its own.
start_helperd() {
	local g=$1 policy=${2:-$POLICY} h
	in_guest "$g" ${HELPERD_WRAP:-} "$HELPERD" -f ${HELPERD_DEBUG--d} -c "$policy" -s "$g" \
		-r "$(rundir "$g")" ${HELPERD_ARGS:-} >>"$WORK/helperd-$g.log" 2>&1 &
	echo $! > "$WORK/helperd-$g.pid"
	wait_for "helperd of $g" test -S "$(rundir "$g")/helperd.sock"
	[ "$policy" = "$POLICY" ] || return 0
	for h in $(common_helperds); do
		wait_for "$g to find $h" peer_up "$g" "$h"
		wait_for "$h to find $g" peer_up "$h" "$g"
	done
	touch "$WORK/helperd-$g.common"
}

# children PID: PID's child processes, one a line, from /proc (what pgrep -P finds, which
# reads every process's stat: 90 ms under emulation, hundreds of times in a run).
children() {
	local f kids
	for f in /proc/"$1"/task/*/children; do
		kids=()
		read -ra kids 2>/dev/null <"$f" || true # one line, without a newline
		[ ${#kids[@]} -eq 0 ] || printf '%s\n' "${kids[@]}"
	done
}

# Ends a background job started from a function: the job's pid is a subshell, and the
# program is its child.
end_job() {
	local pid=$1 sig=${2:-TERM}
	kill "-$sig" $(children "$pid") 2>/dev/null || true
	kill "-$sig" "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# The process at the end of a background job's chain of single children (start_bg and
# start_helperd record the pid of a subshell; the program is its descendant).
leaf_pid() {
	local pid=$1 kids
	for _ in 1 2 3 4 5 6; do
		kids=($(children "$pid"))
		[ ${#kids[@]} -gt 0 ] || break
		pid=${kids[0]}
	done
	echo "$pid"
}

stop_helperd() {
	local pid
	rm -f "$WORK/helperd-$1.common"
	pid=$(cat "$WORK/helperd-$1.pid" 2>/dev/null) || return 0
	end_job "$pid" "${2:-TERM}"
	rm -f "$WORK/helperd-$1.pid"
}

# wait_for WHAT CMD...: retries CMD until it succeeds, for up to 40 s. The pauses start at
# 0.05 s and double up to 0.4 s: a probe costs 0.1-0.3 s of CPU under emulation, and a wait
# that polled every 0.1 s took much of a CPU from what it waited for. Not paced by the
# probe's cost: a test that races a timeout (t_accept_nowait) failed when pauses grew long.
# A probe may put what it last saw in WAIT_SAW for the failure to say.
wait_for() {
	local what=$1 pause=0.05 deadline=$((${EPOCHREALTIME/./} + 40000000))
	shift
	WAIT_SAW=
	until "$@" >/dev/null 2>&1; do
		[ "${EPOCHREALTIME/./}" -lt "$deadline" ] ||
			fail "timed out waiting for $what${WAIT_SAW:+ (last seen: $WAIT_SAW)}"
		sleep "$pause"
		case $pause in 0.05) pause=0.1 ;; 0.1) pause=0.2 ;; *) pause=0.4 ;; esac
	done
}

# Whether a TCP listener on PORT exists in guest G.
tcp_listening() { ss_in "$1" -Hltn "sport = :$2" | grep -q .; }

# vsock_listener G PORT: whether a vsock socket listens on PORT in guest G. vsock ports are
# global, but each socket belongs to the namespace that made it, and ss (vsock_diag) lists
# only its own.
vsock_listener() { ss_in "$1" -Hln --vsock | grep -Eq ":$2([[:space:]]|\$)"; }

# Whether a vsock listener on PORT exists in guest G, and the other guests' helperds know
# G serves it.
vsock_listening() {
	local g=$1 vport=$2 h tcp family=ports4
	vsock_listener "$g" "$vport" || return 1
	tcp=$((vport - BASE[$g]))
	[ "$tcp" -lt 65536 ] || { tcp=$((tcp - 65536)); family=ports6; }
	for h in $(common_helperds); do
		[ "$h" = "$g" ] || serves "$h" "$g" "$tcp" "$family" || return 1
	done
}

# The vsock port where guest G's TCP port P is reached over IPv4.
vsock_port() { echo $((BASE[$1] + $2)); }

# Bytes that crossed guest G's network interface, both ways: read off the bridge's end of
# its veth pair, which receives what G's eth0 sends and sends what it receives (the kernel
# counts a veth's received bytes from its peer's sent ones), so the sum is the same, and
# no process needs starting.
veth_bytes() {
	local rx tx
	read -r rx <"/sys/class/net/v-$1$NS_SUFFIX/statistics/rx_bytes"
	read -r tx <"/sys/class/net/v-$1$NS_SUFFIX/statistics/tx_bytes"
	echo $((rx + tx))
}

# Samples guest G's established vsock connections to PORT every 20 ms into FILE until
# killed.
sample_vsock() {
	local g=$1 port=$2 file=$3
	while :; do
		ss_in "$g" -Hn --vsock state established 2>/dev/null |
			grep -E ":$port([[:space:]]|\$)" >>"$file" || true
		sleep 0.02
	done
}

# start_bg NAME CMD...: runs CMD in the background, output in $WORK/NAME.out.
start_bg() {
	local name=$1
	shift
	"$@" >"$WORK/$name.out" 2>&1 &
	echo $! >"$WORK/$name.pid"
}

stop_bg() {
	local pid
	pid=$(cat "$WORK/$1.pid" 2>/dev/null) || return 0
	end_job "$pid"
}

# join_bg NAME [SECONDS]: waits for background job NAME to finish by itself and returns its
# status; a job still running after SECONDS (60) is ended and counts as failed.
join_bg() {
	local pid i limit=${2:-60}
	pid=$(cat "$WORK/$1.pid")
	for i in $(seq $((limit * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "    $1 still ran after $limit s: ended" >&2
		end_job "$pid"
		return 1
	fi
	wait "$pid"
}

# field FILE PREFIX NAME: NAME's value (NAME=value) on the first line of FILE that starts
# with PREFIX and has one; the last NAME= of that line. Read in the shell: names_agree asks
# four times per connection checked.
field() {
	local line
	while IFS= read -r line; do
		if [[ $line =~ ^$2.*\ $3=([^ ]*) ]]; then
			echo "${BASH_REMATCH[1]}"
			return
		fi
	done <"$1"
}

# Checks that the client's and the server's views of one connection agree: what the
# client calls local the server calls peer, and the other way round.
names_agree() {
	local client=$1 server=$2 cl cp sl sp
	cl=$(field "$client" connected local)
	cp=$(field "$client" connected peer)
	sl=$(field "$server" accepted local)
	sp=$(field "$server" accepted peer)
	[ -n "$cl" ] && [ "$cl" = "$sp" ] && [ "$cp" = "$sl" ] ||
		fail "names disagree: client $cl -> $cp, server $sp -> $sl"
}

# iperf3_from_alpha [-R]: iperf3 with 4 streams for 2 s from alpha to the server on beta's
# port 5201, both under the shim; sets summary (what moved, how fast) and moved (bytes on
# alpha's veth meanwhile). Fails unless 4 streams moved data.
iperf3_from_alpha() {
	local before
	before=$(veth_bytes alpha)
	timeout 60 env VMSHIM_RUNDIR="$(rundir alpha)" LD_PRELOAD="$SHIM_PRELOAD" \
		ip netns exec "$(netns alpha)" iperf3 -c 198.18.0.2 -p 5201 -P 4 -t 2 "$@" -J \
		>"$WORK/iperf.json" || fail "iperf3 $*: $(tail -5 "$WORK/iperf.json")"
	moved=$(($(veth_bytes alpha) - before))
	summary=$(python3 -S - "$WORK/iperf.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("error"):
    sys.exit("iperf3: " + r["error"])
streams = len(r["end"]["streams"])
got = r["end"]["sum_received"]["bytes"]
if streams != 4 or got <= 0:
    sys.exit(f"{streams} streams, {got} bytes")
print(f"{streams} streams, {got / 2**20:.0f} MiB, {r['end']['sum_received']['bits_per_second'] / 1e9:.2f} Gbit/s")
PY
	) || fail "iperf3 $*: $summary"
}

# nginx_conf WORKERS EVENTS HTTP: $WORK/nginx.conf for a test's nginx: as root, in the
# foreground, its pid (over start_bg's, so nginx.pid names the master), error log and
# temporary files in $WORK; EVENTS and HTTP are what its events and http blocks add.
nginx_conf() {
	cat >"$WORK/nginx.conf" <<CONF
user root;
worker_processes $1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log notice;
events { $2 }
http {
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
$3
}
CONF
}

# http_get GUEST URL FILE [ENV...]: downloads URL (http://HOST:PORT/PATH) from GUEST into
# FILE with curl and prints the rate in bytes/s; at most HTTP_GET_LIMIT bytes/s where that
# is set (a connection that lasts long enough to be seen). curl hangs with a preloaded ASan
# runtime even without the shim, so the sanitized run sends an HTTP/1.0 GET from Python
# instead, with no more than the socket module (urllib's imports took 0.6 s of CPU under
# emulation).
http_get() {
	local g=$1 url=$2 out=$3 limit=()
	shift 3
	if [ -z "${ASAN_RUNTIME:-}" ]; then
		[ -z "${HTTP_GET_LIMIT:-}" ] || limit=(--limit-rate "$HTTP_GET_LIMIT")
		in_guest "$g" env "$@" curl -sS "${limit[@]}" -o "$out" -w '%{speed_download}' "$url"
		return
	fi
	in_guest "$g" env "$@" python3 -S - "$url" "$out" "${HTTP_GET_LIMIT:-0}" <<'PY'
import socket, sys, time
host, _, path = sys.argv[1].removeprefix("http://").partition("/")
name, _, port = host.partition(":")
limit = int(sys.argv[3])
start = time.monotonic()
with socket.create_connection((name, int(port or 80))) as s:
    s.sendall(b"GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode()))
    chunks, got = [], 0
    while chunk := s.recv(1 << 16):
        chunks.append(chunk)
        got += len(chunk)
        if limit and got / limit > time.monotonic() - start:
            time.sleep(got / limit - (time.monotonic() - start))
    reply = b"".join(chunks)
head, _, body = reply.partition(b"\r\n\r\n")
if not head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
    sys.exit("GET %s: %s" % (sys.argv[1], head.split(b"\r\n")[0].decode(errors="replace")))
with open(sys.argv[2], "wb") as f:
    f.write(body)
print(len(body) / (time.monotonic() - start))
PY
}

# libvirt in the test VM (t_relay_libvirt): the machine's own libvirtd (Debian 12, 9.0), run
# by hand: the VM has no systemd, dbus or polkit, and libvirtd needs none of them. Its
# domains are TCG qemus with a vhost-vsock device and nothing to boot. What it writes to
# /etc and /var lies in the VM's overlay, gone with the VM.
LIBVIRT_URI=qemu:///system

# vsh ARGS...: virsh on LIBVIRT_URI, bounded: a libvirtd that hangs fails the call, not the run.
vsh() { timeout 60 virsh -q -c "$LIBVIRT_URI" "$@"; }

# libvirt_up: loads vhost_vsock (/dev/vhost-vsock: the qemus' CIDs), gives libvirtd what it
# needs, starts it (start_bg libvirtd) and returns once virsh gets an answer from it. The
# caller sets `trap libvirt_down EXIT` first.
libvirt_up() {
	modprobe -a vhost_iotlb vhost vhost_vsock
	# libvirtd looks its default user up before it reads qemu.conf, and without it does not
	# start ("Failed to parse user 'libvirt-qemu'"); libvirt-daemon-system would make it.
	getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
	getent passwd libvirt-qemu >/dev/null || useradd --system --gid libvirt-qemu \
		--home-dir /var/lib/libvirt --no-create-home --shell /usr/sbin/nologin libvirt-qemu
	mkdir -p /run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/log/libvirt/qemu
	# No virtlogd: libvirtd writes each qemu's output to /var/log/libvirt/qemu/NAME.log itself.
	echo 'stdio_handler = "file"' >/etc/libvirt/qemu.conf
	start_bg libvirtd /usr/sbin/libvirtd
	wait_for "libvirtd" vsh list
}

# libvirt_down: ends libvirtd and every qemu it started (each has a pid file in
# /run/libvirt/qemu; they outlive libvirtd), forgets its domains (a second run starts
# afresh), and unloads the vhost modules once the last /dev/vhost-vsock is closed: the next
# test's vsock is as it was. The libvirt-qemu user and qemu.conf stay: no test minds them.
libvirt_down() {
	local f pids=() i
	stop_bg libvirtd
	for f in /run/libvirt/qemu/*.pid; do
		[ -s "$f" ] && pids+=("$(cat "$f")")
	done
	if [ ${#pids[@]} -gt 0 ]; then
		kill -9 "${pids[@]}" 2>/dev/null || true
		for i in $(seq 100); do # 10 s; a dead qemu may linger as a zombie, its files closed
			ps -o stat= -p "$(IFS=,; echo "${pids[*]}")" | grep -qv '^Z' || break
			sleep 0.1
		done
	fi
	rm -rf /run/libvirt /etc/libvirt/qemu /var/lib/libvirt /var/cache/libvirt
	# A vsock socket closed toward a guest that never answered (a paused domain) holds the
	# module for up to 8 s (the kernel's close timeout).
	for i in $(seq 100); do
		modprobe -r vhost_vsock vhost vhost_iotlb 2>/dev/null && return 0
		sleep 0.1
	done
	echo "    libvirt_down: vhost modules stay loaded" >&2
}

# libvirt_define NAME [CID|auto]: defines domain NAME (not started): 64 MiB, TCG, no disk,
# no network, a virtio vsock device with CID CID or, with auto (the default), one that
# libvirt picks when it starts. It boots nothing: SeaBIOS finds no device and, with the
# reboot timeout off, halts (idle) instead of rebooting every 60 s.
libvirt_define() {
	local name=$1 cid=${2:-auto} xml=$WORK/$1.xml
	if [ "$cid" = auto ]; then cid="auto='yes'"; else cid="auto='no' address='$cid'"; fi
	cat >"$xml" <<-XML
		<domain type='qemu'>
		  <name>$name</name>
		  <memory unit='MiB'>64</memory>
		  <vcpu>1</vcpu>
		  <os><type arch='x86_64' machine='pc'>hvm</type><bios rebootTimeout='-1'/></os>
		  <devices>
		    <controller type='usb' model='none'/>
		    <memballoon model='none'/>
		    <vsock model='virtio'><cid $cid/></vsock>
		  </devices>
		</domain>
	XML
	vsh define "$xml" >/dev/null
}

# domain_cid NAME: running domain NAME's CID, from its live XML, where libvirt-ssh-proxy reads
# it; domain_uuid NAME: its UUID.
domain_cid() {
	vsh dumpxml "$1" --xpath /domain/devices/vsock/cid/@address |
		sed -n 's/^ *address="\([0-9]*\)"$/\1/p' | grep .
}
domain_uuid() { vsh domuuid "$1"; }
