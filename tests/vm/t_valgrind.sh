# Both helperds under valgrind's memcheck through a working life: they find each other, a
# listener registers, sibling connections are claimed, one is left waiting for a server
# that does not accept, a control connection is left open, status and counters are asked
# for, the policy is reloaded (SIGHUP, a new file with a third peer, a broken one refused,
# the first again), then SIGTERM. Any memcheck error, any block still allocated at exit
# (lost or not), and any descriptor open at exit that helperd did not inherit fail it.
if ldd "$HELPERD" | grep -qE 'lib(asan|tsan)'; then
	log "not run: $BUILD's helperd carries a sanitizer's runtime, which memcheck cannot run"
	return 0
fi
memcheck() {
	echo "valgrind --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all" \
		"--error-exitcode=99 --track-fds=yes --log-file=$WORK/valgrind-$1.log"
}
HELPERD_WRAP=$(memcheck alpha) start_helperd alpha
HELPERD_WRAP=$(memcheck beta) start_helperd beta
helperd_alpha=$(leaf_pid "$(cat "$WORK/helperd-alpha.pid")")
helperd_beta=$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")
log "alpha's and beta's helperds under memcheck found each other"

start_bg server shimmed beta "$PROGS/echo_server" epoll-lt 7701 0.0.0.0 2
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7701)"
for mode in block epoll; do
	shimmed alpha "$PROGS/echo_client" "$mode" 198.18.0.2 7701 100000 >"$WORK/client.out" ||
		fail "$mode client: $(cat "$WORK/client.out")"
done
join_bg server || fail "server: $(cat "$WORK/server.out")"
accepted=$(counter beta sibling_accepted)
[ "$accepted" = 2 ] || fail "beta's helperd accepted $accepted sibling connections, not 2"
log "2 sibling connections claimed from beta's helperd"

# A server that stopped accepting: the next sibling connection waits in beta's helperd.
start_bg stopped shimmed beta "$PROGS/stress" server 7702 300
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7702)"
kill -STOP "$(sed -n 's/^listening .* pid=//p' "$WORK/stopped.out")"
start_bg waiting shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7702 1000
# doorbell_rung: a sibling connection waits in beta's helperd (its doorbell is connected).
doorbell_rung() { ss_in beta -Htn state established | grep -q '127.86.83.77'; }
wait_for "a connection waiting in beta's helperd" doorbell_rung
start_bg holder in_guest beta python3 -S -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
print("connected", flush=True)
time.sleep(300)' "$(rundir beta)/helperd.sock"
wait_for "a control connection" grep -q connected "$WORK/holder.out"
in_guest alpha "$VMSHIMCTL" status >/dev/null || fail "no status from alpha"
log "a sibling connection waits for a stopped server, a control connection is open"

kill -HUP "$helperd_alpha" "$helperd_beta"
cp "$POLICY" "$WORK/policy.first"
{ cat "$WORK/policy.first"; printf 'peer gamma\n    cid 1\n    address %s\n    vsock-base %s\n' "${ADDR[gamma]}" "$((3000000 + LANE_PORTS))"; } >"$POLICY.new"
mv "$POLICY.new" "$POLICY"
wait_for "a third peer in beta's policy" grep -q "policy .*: 3 peers" "$WORK/helperd-beta.log"
echo "peer" >"$POLICY.new"
mv "$POLICY.new" "$POLICY"
wait_for "the broken policy refused" grep -q "reload refused" "$WORK/helperd-beta.log"
cp "$WORK/policy.first" "$POLICY.new"
mv "$POLICY.new" "$POLICY"
wait_for "alpha to find beta again" peer_up alpha beta
log "reloaded: SIGHUP, a third peer, a broken file refused, the first policy again"

# stop_memcheck GUEST: SIGTERM to its helperd; memcheck's verdict is the job's status.
stop_memcheck() {
	local g=$1 job pid
	job=$(cat "$WORK/helperd-$g.pid")
	pid=$(leaf_pid "$job")
	kill -TERM "$pid"
	for _ in $(seq 1200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && fail "$g's helperd still ran 120 s after SIGTERM"
	rm -f "$WORK/helperd-$g.pid" "$WORK/helperd-$g.common"
	wait "$job"
}
for g in alpha beta; do
	rc=0
	stop_memcheck "$g" || rc=$?
	vlog=$WORK/valgrind-$g.log
	grep -q "ERROR SUMMARY: 0 errors" "$vlog" && [ "$rc" = 0 ] ||
		fail "$g's helperd: exit status $rc; $(grep -A 12 -m 3 -E '(Invalid|uninitialised|lost|reachable|Syscall)' "$vlog" | head -n 40)"
	grep -q "All heap blocks were freed -- no leaks are possible" "$vlog" ||
		fail "$g's helperd kept memory at exit: $(grep -A 3 'HEAP SUMMARY' "$vlog")"
	open=$(grep -c "Open .* [0-9]*:" "$vlog") || true
	inherited=$(grep -c "<inherited from parent>" "$vlog") || true
	[ "$open" = "$inherited" ] ||
		fail "$g's helperd left descriptors open: $(grep -A 3 'Open ' "$vlog" | grep -v inherited | head -n 20)"
	log "$g's helperd: $(grep -o 'total heap usage: .*' "$vlog"); all freed, 0 errors, no descriptor of its own open at exit"
done
stop_bg waiting
stop_bg holder
kill -CONT "$(sed -n 's/^listening .* pid=//p' "$WORK/stopped.out")"
stop_bg stopped
