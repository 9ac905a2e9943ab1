# Listeners of other shapes: one bound to the guest's own address rather than the wildcard
# (its doorbell comes from the doorbell address to that address), and one inherited across
# exec, whose new program never registered it (the shim recognises the IPv4 doorbell address
# without any state).
start_helperd alpha
start_helperd beta

# expect_vsock WHAT PORT: an echo from alpha to beta:PORT went over vsock, names agree.
expect_vsock() {
	local what=$1 port=$2 before moved
	before=$(veth_bytes alpha)
	shimmed alpha "$PROGS/echo_client" epoll 198.18.0.2 "$port" 300000 >"$WORK/client.out" ||
		fail "$what: $(cat "$WORK/client.out")"
	join_bg server || fail "$what: server: $(cat "$WORK/server.out")"
	moved=$(($(veth_bytes alpha) - before))
	[ "$moved" -lt 20000 ] || fail "$what: $moved bytes crossed the veth"
}

start_bg server shimmed beta "$PROGS/echo_server" block 7701 198.18.0.2 1
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7701)"
expect_vsock "listener on 198.18.0.2" 7701
names_agree "$WORK/client.out" "$WORK/server.out"
log "listener bound to 198.18.0.2: over vsock, names agree"

start_bg server shimmed beta python3 -S -c '
import os, socket, sys
s = socket.socket()
s.bind(("0.0.0.0", 7702))
s.listen()
os.set_inheritable(s.fileno(), True)
# The program that accepts is a new one: it inherits the listener but not the shim state.
os.execv(sys.executable, [sys.executable, "-c", """
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
c, peer = s.accept()
data = b""
while chunk := c.recv(65536):
    data += chunk
    c.sendall(chunk)
print("accepted", len(data), "from", peer, flush=True)
""", str(s.fileno())])
'
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7702)"
expect_vsock "listener inherited across exec" 7702
grep -q "accepted 300000 from ('198.18.0.1'" "$WORK/server.out" || fail "server: $(cat "$WORK/server.out")"
log "listener inherited across exec: over vsock, peer 198.18.0.1"

# A restarted helperd takes up the listeners registered with the one before it.
start_bg server shimmed beta "$PROGS/echo_server" block 7703 0.0.0.0 1
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7703)"
[ "$(stat -c %a "$(rundir beta)/listeners")" = 600 ] || fail "listeners file mode"
stop_helperd beta
if vsock_listening beta "$(vsock_port beta 7703)"; then fail "vsock port open without helperd"; fi
start_helperd beta
wait_for "vsock listener again" vsock_listening beta "$(vsock_port beta 7703)"
grep -q "listener on TCP port 7703 taken up again" "$WORK/helperd-beta.log" || fail "not taken up"
expect_vsock "listener after a helperd restart" 7703
log "helperd restarted: the running server's listener is taken up again (file mode 600)"
