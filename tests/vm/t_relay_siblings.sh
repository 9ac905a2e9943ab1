# Guests with no list of siblings (`peers relay`, policy/FORMAT.md "Peers from the host"):
# each guest's policy names only itself and the relay, the host policy says who reaches whom
# and which addresses each owns, and the relay tells each helperd its siblings and tells it
# again when the host policy changes. Shown by what each helperd says (vmshimctl status)
# and by a connection that the relay carries, then does not once the host takes the grant
# away. Then as a hostile guest speaking the protocol: a user of the guest, from a port that
# is not its helperd's, is refused and the helperd keeps its list; its root is told of no
# one its block does not name, and let go once it talks after asking; a caller from no
# guest's ports is told nothing.
HOST_POLICY=$WORK/relay.policy
carol_base=$((3000000 + LANE_PORTS))

# host_policy REACH: alpha and beta (reaching each other if REACH is "yes"), and carol,
# whom no one reaches and who reaches no one.
host_policy() {
	{
		echo "port $RELAY_PORT"
		for g in alpha beta; do
			echo "guest $g"
			echo "    cid 1"
			echo "    vsock-base ${BASE[$g]}"
			echo "    address ${ADDR[$g]}"
			[ "$1" != yes ] || echo "    reach $([ $g = alpha ] && echo beta || echo alpha)"
		done
		echo "guest carol"
		echo "    cid 1"
		echo "    vsock-base $carol_base"
		echo "    address 198.18.0.9"
	} >"$HOST_POLICY.new"
	mv "$HOST_POLICY.new" "$HOST_POLICY"
}

# Each guest's policy: the relay, and its own block; no peer.
for g in alpha beta; do
	own_policy "$g" >"$WORK/policy-$g"
done

host_policy yes
start_relay "$HOST_POLICY"
start_helperd alpha "$WORK/policy-alpha"
start_helperd beta "$WORK/policy-beta"
since=$(date +%s%N)
wait_for "alpha to learn beta from the relay" peer_up alpha beta
wait_for "beta to learn alpha from the relay" peer_up beta alpha
log "alpha and beta know each other from the relay alone, $((($(date +%s%N) - since) / 1000000)) ms after both started"
[ "$(status_value alpha peers_from_relay following)" = true ] &&
	[ "$(status_value alpha peers_from_relay told)" = 2 ] ||
	fail "alpha's status: $(status_json alpha)"
status_check alpha 'peer("beta")["addresses"] == ["198.18.0.2"]' ||
	fail "alpha does not give beta the address the host gives it: $(status_json alpha)"
status_check alpha '"carol" not in [p["name"] for p in d["peers"]]' ||
	fail "alpha was told of carol, whom the host lets no one reach"
[ "$(relay_value 'd["following_siblings"]')" = 2 ] || fail "the relay follows $(relay_value 'd["following_siblings"]') guests, not 2"

start_bg server shimmed beta "$PROGS/echo_server" epoll-lt 7800 0.0.0.0 100
wait_for "beta's listener offered to alpha" serves alpha beta 7800
relayed0=$(relayed_total)
redirected0=$(counter alpha redirected)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7800 100000 >"$WORK/client.out" ||
	fail "echo through the relay: $(cat "$WORK/client.out")"
[ "$(relayed_total)" -gt "$relayed0" ] && [ "$(counter alpha redirected)" -gt "$redirected0" ] ||
	fail "the connection did not go through the relay"
log "alpha's connection to beta's 7800 went through the relay, from peers only the host named"

# The host takes the grant away: both helperds drop their sibling within a moment, and the
# next connection is plain TCP.
host_policy no
since=$(date +%s%N)
no_beta() { status_check alpha '"beta" not in [p["name"] for p in d["peers"]]'; }
wait_for "alpha to forget beta" no_beta
took=$((($(date +%s%N) - since) / 1000000))
relayed0=$(relayed_total)
veth0=$(veth_bytes alpha)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7800 100000 >"$WORK/client.out" ||
	fail "echo over TCP: $(cat "$WORK/client.out")"
[ "$(relayed_total)" = "$relayed0" ] || fail "the relay carried a connection it no longer grants"
[ $(($(veth_bytes alpha) - veth0)) -gt 100000 ] || fail "the connection did not go over TCP"
log "reach taken away in the host policy: alpha forgot beta after $took ms; the next connection went over TCP"
host_policy yes
wait_for "alpha to learn beta again" peer_up alpha beta

# As a hostile guest speaking the protocol, from alpha's namespace.
refused0=$(relay_value 'd["counters"]["refused"]')
ip netns exec "$(netns alpha)" setpriv --reuid=nobody --regid=nogroup --clear-groups \
	python3 -S - "$RELAY_PORT" "${BASE[alpha]}" <<'PY' || fail "a user of alpha asked"
import socket, struct, sys
relay, alpha_base = map(int, sys.argv[1:3])
# a port any user binds: the source port of its TCP port 50001
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, alpha_base + 131072 + 50001))
s.connect((1, relay))
s.settimeout(10)
s.sendall(struct.pack(">IBBHIII", 0x564D5352, 1, 4, 0, 0, 0, 0))
assert s.recv(64) == bytes.fromhex("564d535201020100"), "not refused"
print("    nobody in alpha, from a port of its own: refused")
PY
[ "$(relay_value 'd["counters"]["refused"]')" -gt "$refused0" ] || fail "the refusal was not counted"
[ "$(status_value alpha peers_from_relay following)" = true ] &&
	[ "$(relay_value 'd["following_siblings"]')" = 2 ] || fail "the refused ask disturbed the helperds"
ip netns exec "$(netns alpha)" python3 -S - "$RELAY_PORT" "${BASE[alpha]}" "$((7777777 + LANE_PORTS))" <<'PY' || fail "alpha's root asked"
import socket, struct, sys, time
relay, alpha_base, stranger_port = map(int, sys.argv[1:4])

def ask(port):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.bind((socket.VMADDR_CID_ANY, port))
    s.connect((1, relay))
    s.settimeout(10)
    s.sendall(struct.pack(">IBBHIII", 0x564D5352, 1, 4, 0, 0, 0, port))
    return s

def read(s, n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        assert more, f"closed after {len(data)} of {n} bytes"
        data += more
    return data

s = ask(alpha_base + 131072 + 1000)  # TCP port 1000's: helperd's, in tests root's
assert read(s, 8) == bytes.fromhex("564d535201020000"), "no OK"
magic, version, kind, count = struct.unpack(">IBBH", read(s, 8))
assert (magic, kind) == (0x564D5352, 5), "no SIBLINGS"
names = sorted(read(s, 164)[:32].rstrip(b"\0").decode() for _ in range(count))
assert names == ["alpha", "beta"], f"told of {names}"
# anything more from it ends the connection
s.sendall(b"x")
start = time.monotonic()
assert s.recv(64) == b"", "the relay went on"
print(f"    told of {names} only; let go {time.monotonic() - start:.2f} s after it spoke again")
try:  # from a port in no guest's block: closed, maybe before the ask is sent
    stranger = ask(stranger_port)
    assert stranger.recv(64) == b"", "the relay answered a stranger"
except (BrokenPipeError, ConnectionResetError):
    pass
print("    a caller from no guest's ports: told nothing")
PY
# that ask replaced alpha's helperd's connection, as a restarted helperd's would: it asks
# again within a second
following() { [ "$(status_value alpha peers_from_relay following)" = true ]; }
wait_for "alpha's helperd to follow the relay again" following
peer_up alpha beta || fail "alpha lost beta"
