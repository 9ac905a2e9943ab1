# The conformance suite (tests/progs/conform.c): what a program can observe of its TCP
# connections, case by case, once over plain TCP (alpha to beta over the veth) and once with
# both ends under the shim (redirected over vsock). Both ends' transcripts must be the same
# in both runs, but for the known differences below, which the shim cannot remove.
start_helperd alpha
start_helperd beta
port=7600

# Where a redirected connection cannot behave as TCP's, and why. Each key is the start of
# one transcript line ("CASE WHAT"); only that line is left out of the comparison, and it
# must be in both runs' transcripts and still differ. The shim sees no read, write or poll,
# so what the kernel's vsock does there is what the application gets.
declare -A KNOWN=(
	["abortive_close read"]="vsock has no reset: a close with SO_LINGER 0 ends the connection as any close does, so the peer reads EOF, not ECONNRESET"
	["abortive_close names"]="the shim answers getpeername from what it knows, whatever became of the connection; TCP says ENOTCONN once it was reset (or closed both ways)"
	["close_unread server read ended"]="vsock has no reset: closing with data unread ends the connection as any close does, so the peer reads EOF, not ECONNRESET"
	["peer_shut_rd send"]="vsock tells the peer of a shutdown(SHUT_RD), and sending to it then fails with EPIPE; TCP says nothing and takes the data"
	["msg_nosignal_after_peer_close sends accepted before it"]="vsock knows at once that the peer closed, so the first send fails; TCP learns it from the reset its first send provokes"
	["poll_out_after_shut_wr poll OUT"]="vsock does not report a socket whose sending is shut down as writable; TCP does (and a write then fails at once)"
	["so_rcvbuf default"]="the kernel's: a vsock socket starts with net.core.rmem_default, a TCP one with tcp_rmem's default (vsock's own buffer is SO_VM_SOCKETS_BUFFER_SIZE, which SO_RCVBUF can raise under the shim)"
	["so_sndbuf default"]="the kernel's: a vsock socket starts with net.core.wmem_default, a TCP one with tcp_wmem's default, grown for the path"
	["connect_af_unspec read"]="connect(AF_UNSPEC) shuts the vsock connection down, so a read finds EOF; TCP's disconnect leaves its reset pending (ECONNRESET once, then ENOTCONN)"
	["connect_af_unspec poll"]="a vsock connection shut down both ways polls as one whose peer has ended (IN|RDHUP|HUP); TCP's disconnected socket as a new one (OUT|HUP)"
	["connect_af_unspec server read ended"]="vsock has no reset: the peer of a connection ended by connect(AF_UNSPEC) reads EOF, not ECONNRESET"
	["exec_inherits names"]="what the shim knows of a descriptor stays in the process: a program exec'd with a redirected connection sees the vsock socket's own names"
)
kernel_at_least 6.7 ||
	KNOWN["sigpipe_after_peer_close SIGPIPE"]="before Linux 6.7, vsock fails the write with EPIPE but raises no SIGPIPE (commit 8ecf0cedc08a)"
mapfile -t keys < <(printf '%s\n' "${!KNOWN[@]}" | sort)

# conform_run RUN WRAP: the server in beta and the client in alpha, both started by WRAP
# (in_guest or shimmed); transcripts in $WORK/{client,server}-RUN.out, stderr in *.log.
# Sets cases and served from the transcripts' last lines.
conform_run() {
	local run=$1 wrap=$2 start
	"$wrap" beta env VMSHIM_DEBUG=1 "$PROGS/conform" server "$port" \
		>"$WORK/server-$run.out" 2>"$WORK/server-$run.log" &
	echo $! >"$WORK/server-$run.pid"
	wait_for "conform server" tcp_listening beta "$port"
	if [ "$wrap" = shimmed ]; then
		wait_for "vsock listener" vsock_listening beta "$(vsock_port beta "$port")"
		wait_for "vsock listener" vsock_listening beta "$(vsock_port beta $((port + 2)))"
	fi
	start=$(date +%s%N)
	"$wrap" alpha env VMSHIM_DEBUG=1 "$PROGS/conform" client 198.18.0.2 "$port" \
		>"$WORK/client-$run.out" 2>"$WORK/client-$run.log" ||
		fail "$run: client: $(tail -n 3 "$WORK/client-$run.out") $(cat "$WORK/client-$run.log")"
	join_bg "server-$run" ||
		fail "$run: server: $(tail -n 3 "$WORK/server-$run.out") $(cat "$WORK/server-$run.log")"
	cases=$(tail -n 1 "$WORK/client-$run.out" | sed -n 's/^- cases: //p')
	served=$(tail -n 1 "$WORK/server-$run.out" | sed -n 's/^- connections served: //p')
	log "$run: $cases cases, $served connections served, in $((($(date +%s%N) - start) / 1000000)) ms"
}

# The line of FILE that starts with "KEY: ".
known_line() { awk -v k="$2: " 'index($0, k) == 1' "$1"; }

# FILE without the known differences' lines.
without_known() {
	local key
	cp "$1" "$1.cmp"
	for key in "${keys[@]}"; do
		awk -v k="$key: " 'index($0, k) != 1' "$1.cmp" >"$1.tmp" && mv "$1.tmp" "$1.cmp"
	done
	cat "$1.cmp"
}

before=$(veth_bytes alpha)
conform_run tcp in_guest
moved=$(($(veth_bytes alpha) - before))
[ "$moved" -gt 33554432 ] || fail "tcp: only $moved bytes crossed alpha's veth"
[ "$(cut -d' ' -f1 "$WORK/client-tcp.out" | grep -v '^-$' | sort -u | wc -l)" = "$cases" ] ||
	fail "tcp: not every one of the $cases cases is in the client's transcript"
[ "$cases" -ge 60 ] || fail "only $cases cases"
log "tcp: every case in the transcript, $moved bytes on alpha's veth"

before=$(veth_bytes alpha)
conform_run shim shimmed
moved=$(($(veth_bytes alpha) - before))
for side in client server; do
	for key in "${keys[@]}"; do
		tcp=$(known_line "$WORK/$side-tcp.out" "$key")
		shim=$(known_line "$WORK/$side-shim.out" "$key")
		[ -n "$tcp$shim" ] || continue # the other side's line
		[ -n "$tcp" ] && [ -n "$shim" ] || fail "known difference '$key' missing from one run"
		[ "$tcp" != "$shim" ] ||
			fail "known difference '$key' is gone (both ${tcp#"$key: "}): take it off the list"
		log "known difference: $key: TCP ${tcp#"$key: "}, shim ${shim#"$key: "} (${KNOWN[$key]})"
		echo "$key" >>"$WORK/known-seen"
	done
	if ! diff -u <(without_known "$WORK/$side-tcp.out") <(without_known "$WORK/$side-shim.out") \
		>"$WORK/$side.diff"; then
		fail "the $side's transcripts differ (TCP -, shim +):
$(cat "$WORK/$side.diff")"
	fi
	log "$side: $(wc -l <"$WORK/$side-tcp.out") lines, the same over TCP and over vsock"
done
[ "$(sort -u "$WORK/known-seen" 2>/dev/null | wc -l)" = "${#KNOWN[@]}" ] ||
	fail "a known difference is in neither transcript"
accepted=$(grep -c "accepted a sibling connection" "$WORK/server-shim.log" || true)
redirected=$(grep -c "connected to sibling cid" "$WORK/client-shim.log" || true)
# duplicates_before_connect and fork_before_connect: a socket with another descriptor stays
# on TCP, so that every descriptor sees the connection (shim/duplicates.c).
kept=$(grep -cE "(duplicated before connect|made before a fork, a child may have it): plain TCP" \
	"$WORK/client-shim.log" || true)
[ "$kept" = 2 ] || fail "shim: $kept connections kept on TCP for another descriptor, not 2"
[ "$((accepted + kept))" = "$served" ] ||
	fail "shim: $accepted of $served connections accepted over vsock, $kept kept on TCP"
[ "$redirected" -ge "$((served - kept))" ] ||
	fail "shim: $redirected of $served connections redirected, $kept kept on TCP"
# (PORT+2 never accepts: whether its connection is redirected is not what is tested there.)
! grep "port $(vsock_port beta "$port") not used" "$WORK/client-shim.log" ||
	fail "shim: a connection to port $port fell back to TCP"
[ "$moved" -lt 200000 ] || fail "shim: $moved bytes crossed alpha's veth"
log "shim: $((served - kept)) connections to port $port over vsock, $kept kept on TCP, $moved bytes on alpha's veth"

