# Faults an application must not notice, or must see exactly as TCP would show them:
# helperd killed (either side) in the middle of a burst of connections, the peer guest gone
# mid-transfer, the vsock port a listener needs already taken, a process at its descriptor
# limit during the swap (client and server), and the policy file deleted while running.
FAULTS=$TOP/tests/vm/apps/faults.py
start_helperd alpha
start_helperd beta

# --- helperd killed during a burst: every connection of a running client succeeds (TCP
# while a helperd is missing), and redirection comes back by itself.
start_bg server shimmed beta python3 -S "$FAULTS" echo-server 7600
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7600)"
start_bg burst shimmed alpha env VMSHIM_DEBUG=1 python3 -S "$FAULTS" burst 198.18.0.2 7600 \
	"$WORK/burst.progress" "$WORK/burst.stop"
progress() { cat "$WORK/burst.progress" 2>/dev/null || echo 0; }
# after N: waits until the burst has made N more connections.
after() { local goal=$(($(progress) + $1)); wait_for "$goal connections" eval '[ $(progress) -ge '$goal' ]'; }
after 10
stop_helperd beta KILL
after 10
start_helperd beta
wait_for "beta's listener taken up again" vsock_listening beta "$(vsock_port beta 7600)"
after 10
stop_helperd alpha KILL
after 10
start_helperd alpha
wait_for "alpha to know beta serves 7600" serves alpha beta 7600
resumed=$(progress)
after 10
touch "$WORK/burst.stop"
join_bg burst || fail "the burst saw errors: $(grep -m3 ERROR "$WORK/burst.out")"
if grep -q "SERVER ERROR" "$WORK/server.out"; then fail "the server saw: $(cat "$WORK/server.out")"; fi
# The shim's debug lines come before each "conn N ok": count the redirected ones after resumed.
redirected=$(sed -n "/^conn $resumed ok/,\$p" "$WORK/burst.out" | grep -c "connected to sibling") || true
fellback=$(grep -c "plain TCP" "$WORK/burst.out") || true
[ "$redirected" -ge 9 ] || fail "after both helperds returned only $redirected redirected"
[ "$fellback" -ge 1 ] || fail "no connection went over TCP while a helperd was missing"
log "helperds of beta, then alpha, killed during a burst: $(tail -n1 "$WORK/burst.out"), $fellback over TCP meanwhile; redirected again after ($redirected of the last ones)"
stop_bg server

# --- The peer guest disappears mid-transfer: the uploading client must see its connection
# fail, as TCP shows a peer that is gone. The same programs without the shim first.
# gone_mid_transfer NAME RUN...: prints what the client saw.
gone_mid_transfer() {
	local name=$1
	shift
	start_bg "$name-sink" "$@" beta python3 -S "$FAULTS" slow-sink 7601
	wait_for "sink" tcp_listening beta 7601
	[ "$1" = in_guest ] || wait_for "vsock sink" vsock_listening beta "$(vsock_port beta 7601)"
	start_bg "$name" "$@" alpha python3 -S "$FAULTS" upload 198.18.0.2 7601
	wait_for "$name to stream" grep -q streaming "$WORK/$name.out"
	# Killing beta's processes resets what they held; then the guest goes.
	ip netns pids "$(netns beta)" | xargs -r kill -9
	stop_helperd beta KILL
	sleep 1
	remove_guest beta
	join_bg "$name" || fail "$name: $(cat "$WORK/$name.out")"
	add_guest beta
	start_helperd beta
	grep -v streaming "$WORK/$name.out" | tr '\n' ' '
}
tcp_saw=$(gone_mid_transfer upload-tcp in_guest)
shim_saw=$(gone_mid_transfer upload-shim shimmed)
grep -q "^accepted" "$WORK/upload-shim-sink.out" || fail "the sink did not see the upload"
case $shim_saw in
"send failed: Connection reset by peer"* | "send failed: Broken pipe"*) ;;
*) fail "under the shim the client saw: $shim_saw (TCP: $tcp_saw)" ;;
esac
log "peer guest gone mid-transfer: TCP client saw '$tcp_saw'; under the shim '$shim_saw'"

# --- The vsock port a listener needs is taken: the listener stays TCP-only, and it is logged.
vport=$(vsock_port beta 7602)
start_bg squatter in_guest beta python3 -S -c '
import socket, sys, time
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, int(sys.argv[1])))
s.listen()
print("holding", flush=True)
time.sleep(60)' "$vport"
wait_for "the squatter" grep -q holding "$WORK/squatter.out"
start_bg taken shimmed beta "$PROGS/echo_server" block 7602 0.0.0.0 1
wait_for "listener" tcp_listening beta 7602
wait_for "the log line" grep -q "cannot listen on vsock port $vport for TCP port 7602" \
	"$WORK/helperd-beta.log"
before=$(veth_bytes alpha)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7602 100000 >"$WORK/taken-client.out" ||
	fail "client: $(cat "$WORK/taken-client.out")"
[ $(($(veth_bytes alpha) - before)) -gt 200000 ] || fail "the bytes did not cross the veth"
join_bg taken || fail "server: $(cat "$WORK/taken.out")"
stop_bg squatter
log "vsock port $vport taken: logged, and the listener on 7602 served over TCP"

# --- At the descriptor limit. A client with one free descriptor (its socket takes it): the
# shim gets none for vsock and the connection is TCP; with two, the swap works, since it
# reuses the application's number. Nothing leaks either way.
start_bg server shimmed beta python3 -S "$FAULTS" echo-server 7603
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7603)"
for spare in 1 2; do
	shimmed alpha env VMSHIM_DEBUG=1 python3 -S "$FAULTS" at-fd-limit 198.18.0.2 7603 "$spare" \
		>"$WORK/limit$spare.out" 2>&1 || fail "client with $spare free: $(cat "$WORK/limit$spare.out")"
done
grep -q "Too many open files): plain TCP" "$WORK/limit1.out" || fail "1 free: $(cat "$WORK/limit1.out")"
grep -q "connected to sibling" "$WORK/limit2.out" || fail "2 free: $(cat "$WORK/limit2.out")"
log "client at its descriptor limit: 1 free -> TCP, 2 free -> vsock; $(cat "$WORK"/limit?.out | grep -c "same True") of 2 with the same descriptors after"
stop_bg server

# A server with one free descriptor: accept() takes it, so the shim cannot claim the
# sibling's connection; it closes the doorbell, the client falls back to TCP, and the
# server accepts that instead. Nobody sees an error.
start_bg server shimmed beta python3 -S "$FAULTS" echo-server 7604 1
wait_for "server" grep -q listening "$WORK/server.out"
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7604)"
before=$(veth_bytes alpha)
shimmed alpha env VMSHIM_DEBUG=1 python3 -S "$FAULTS" at-fd-limit 198.18.0.2 7604 3 \
	>"$WORK/limit-server.out" 2>&1 || fail "client: $(cat "$WORK/limit-server.out")"
grep -q "plain TCP" "$WORK/limit-server.out" || fail "not TCP: $(cat "$WORK/limit-server.out")"
[ $(($(veth_bytes alpha) - before)) -gt 200000 ] || fail "the bytes did not cross the veth"
if grep -q "SERVER ERROR" "$WORK/server.out"; then fail "the server saw: $(cat "$WORK/server.out")"; fi
log "server at its descriptor limit: the sibling's connection came over TCP, no error on either side"
stop_bg server

# --- The policy file deleted while running: the last good policy stays.
start_bg server shimmed beta "$PROGS/echo_server" epoll-lt 7605 0.0.0.0 2
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7605)"
cp "$POLICY" "$WORK/policy.saved"
rm "$POLICY"
wait_for "the refusal" grep -q "reload refused" "$WORK/helperd-alpha.log"
grep "reload refused" "$WORK/helperd-alpha.log" | grep -q "$POLICY" || fail "the refusal names no file"
shimmed alpha env VMSHIM_DEBUG=1 "$PROGS/echo_client" block 198.18.0.2 7605 1000 \
	>"$WORK/deleted.out" 2>&1 || fail "client: $(cat "$WORK/deleted.out")"
grep -q "connected to sibling" "$WORK/deleted.out" || fail "not redirected with the policy deleted"
cp "$WORK/policy.saved" "$POLICY"
log "policy file deleted: '$(grep -m1 "reload refused" "$WORK/helperd-alpha.log" | cut -c1-90)...'; still redirected"
