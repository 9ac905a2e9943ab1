# The relay on a host with hybrid vsock (Firecracker, Cloud Hypervisor): each VM's vsock is a
# Unix socket on the host, played here by tests/vm/apps/hybrid_vmm.py, which speaks their
# protocol (CONNECT <port> / OK <port>; a guest's connection to host port P arrives on
# PATH_P) and, as Firecracker does, passes no half-close on. The relay knows each guest by
# the socket it came through; the guests' policy says `relay 1 PORT hybrid` and
# `without-half-close 8080` (http.server never half-closes). Discovery, curl and names go
# through it; the relay's answers to a port the VMM cannot reach and to an unknown CID.
# Half-close: a client that sends, shuts down its write side and waits for the answer goes
# over TCP, since the VMMs would lose its EOF (the relay says so); once the VMMs pass
# half-closes on (--half-close, as Cloud Hypervisor 53.0 and later) and the host policy says
# so, it goes through the relay end to end.
declare -A VMM_PORT=([alpha]=$((5461 + LANE_PORTS)) [beta]=$((5462 + LANE_PORTS)))
ip netns add "$(netns host)"
for g in alpha beta; do
	cat >"$WORK/policy-$g" <<POLICY
connect-timeout 2000
allow 1024-65535
without-half-close 8080
relay 1 ${VMM_PORT[$g]} hybrid
peer alpha
    cid 3
    address ${ADDR[alpha]}
    vsock-base ${BASE[alpha]}
    via relay
peer beta
    cid 4
    address ${ADDR[beta]}
    vsock-base ${BASE[beta]}
    via relay
POLICY
done

# start_vmms [--half-close]: the VMMs of alpha and beta.
start_vmms() {
	local g
	for g in alpha beta; do
		start_bg "vmm-$g" ip netns exec "$(netns host)" python3 -S "$TOP/tests/vm/apps/hybrid_vmm.py" "$@" \
			"$WORK/$g.vsock" "${VMM_PORT[$g]}" "$RELAY_PORT"
		wait_for "the VMM of $g" grep -q ready "$WORK/vmm-$g.out"
	done
}

# host_policy [half-close]: the relay's policy, its hybrid sockets with that word.
host_policy() {
	cat >"$WORK/relay.policy" <<POLICY
port $RELAY_PORT
guest alpha
    cid 3
    hybrid $WORK/alpha.vsock ${1:-}
    vsock-base ${BASE[alpha]}
    reach beta
guest beta
    cid 4
    hybrid $WORK/beta.vsock ${1:-}
    vsock-base ${BASE[beta]}
    reach alpha
POLICY
}

start_vmms
host_policy
start_relay "$WORK/relay.policy"
start_helperd alpha "$WORK/policy-alpha"
start_helperd beta "$WORK/policy-beta"
wait_for "alpha to find beta" peer_up alpha beta
wait_for "beta to find alpha" peer_up beta alpha
[ "$(relay_value '[(g["transport"], g["half_close"]) for g in d["guests"]]')" = \
	"[('hybrid', False), ('hybrid', False)]" ] ||
	fail "the relay's guests: $(relay_value 'd["guests"]')"
log "discovery through the VMMs' sockets and the relay: alpha and beta up"

mkdir -p "$WORK/www"
head -c $((2 << 20)) /dev/urandom >"$WORK/www/big"
start_bg http shimmed beta python3 -S -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www"
wait_for "http.server in beta" tcp_listening beta 8080
wait_for "alpha to know beta serves 8080" serves alpha beta 8080
before=$(veth_bytes alpha)
r0=$(counter alpha redirected)
http_get alpha http://198.18.0.2:8080/big "$WORK/got" LD_PRELOAD="$SHIM_PRELOAD" >/dev/null ||
	fail "the download failed"
moved=$(($(veth_bytes alpha) - before))
cmp -s "$WORK/www/big" "$WORK/got" || fail "the file differs"
[ "$(counter alpha redirected)" -gt "$r0" ] && [ "$moved" -lt 100000 ] ||
	fail "curl was not redirected ($moved bytes on the veth)"
log "curl (port 8080, without-half-close): 2 MiB intact through both VMMs and the relay, veth $moved bytes"

# Half-close: nc -N sends a request, shuts down its write side and waits for the server's
# answer (the digest of what it read), which comes only after the server read EOF. Port
# 7951 is not in without-half-close: the shim asks the relay for a path that carries
# half-closes, and through these VMMs there is none.
start_bg half shimmed beta python3 -S "$TOP/tests/vm/apps/pyserve.py" threading-server 7951 2
wait_for "alpha to know beta serves 7951" serves alpha beta 7951
head -c 100000 /dev/urandom >"$WORK/request"
# half_close_client: nc -N from alpha to beta's port 7951; the answer within 10 s, checked.
# Sets moved (bytes on alpha's veth meanwhile) and relayed (connections the relay carried).
half_close_client() {
	local answer before=$(veth_bytes alpha) r0=$(relayed_total)
	answer=$(shimmed alpha timeout 10 nc -N 198.18.0.2 7951 <"$WORK/request") ||
		fail "half-close: no answer within 10 s (nc: $?, '$answer')"
	[ "${answer%% *}" = "$(sha256sum <"$WORK/request" | cut -d' ' -f1)" ] ||
		fail "half-close: the server read something else: $answer"
	moved=$(($(veth_bytes alpha) - before))
	relayed=$(($(relayed_total) - r0))
}
f0=$(counter alpha fallback_refused)
half_close_client
said=$(relay_value 'd["counters"]["no_half_close"]')
[ "$relayed" -eq 0 ] && [ "$said" -eq 1 ] && [ "$moved" -gt 100000 ] &&
	[ "$(counter alpha fallback_refused)" -gt "$f0" ] ||
	fail "half-close: relayed $relayed, relay's no_half_close $said, veth $moved bytes"
log "half-close through VMMs that lose it: the relay said so, nc -N went over TCP ($moved bytes on the veth), the digest came back"

# Requests straight to the relay through alpha's VMM: a port of beta where nothing listens
# (the VMM closes on CONNECT) is answered unreachable, a CID no guest has is refused, and
# the same port asked for with HALF_CLOSE is answered "no half-close" before any dialling.
ip netns exec "$(netns alpha)" python3 -S - "${VMM_PORT[alpha]}" "$((BASE[beta] + 9999))" "$((BASE[alpha] + 131072 + 1234))" >"$WORK/asks.out" <<'PY' ||
import socket, struct, sys
vmm, port, source = map(int, sys.argv[1:4])
for cid, flags in ((4, 0), (9, 0), (4, 1)):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.connect((1, vmm))
    s.sendall(struct.pack(">4sBBHIII", b"VMSR", 1, 1, flags, cid, port, source))
    s.settimeout(10)
    reply = s.recv(8)
    magic, version, kind, status, zero = struct.unpack(">4sBBBB", reply)
    assert (magic, version, kind) == (b"VMSR", 1, 2), reply
    print(f"cid {cid} flags {flags}: status {status}")
PY
	fail "requests to the relay: $(cat "$WORK/asks.out")"
[ "$(cat "$WORK/asks.out")" = "cid 4 flags 0: status 2
cid 9 flags 0: status 1
cid 4 flags 1: status 5" ] || fail "the relay answered: $(cat "$WORK/asks.out")"
log "through the VMM: a port nothing listens on is unreachable (2), an unknown CID refused (1), with HALF_CLOSE no half-close (5)"

# VMMs that pass half-closes on, and a host policy that says so: the relay restarts, the
# helperds' links come back through it, and the same client goes through it end to end.
stop_relay
stop_bg vmm-alpha
stop_bg vmm-beta
start_vmms --half-close
host_policy half-close
start_relay "$WORK/relay.policy"
links() { [ "$(relayed_total)" -ge 2 ]; }
wait_for "the helperds' links through the new relay" links
wait_for "alpha to find beta again" serves alpha beta 7951
half_close_client
[ "$relayed" -eq 1 ] && [ "$moved" -lt 20000 ] ||
	fail "half-close: relayed $relayed, veth $moved bytes"
log "half-close through VMMs that pass it (--half-close, hybrid ... half-close): relayed end to end, veth $moved bytes, the digest came back"

# The echo client shuts down its write side after its last byte and waits for the
# server's EOF; the names both ends see agree, as if direct.
# echo_through_relay PORT: the echo client from alpha to a server on beta's PORT, which
# must go through the relay.
echo_through_relay() {
	local r0
	start_bg echo shimmed beta "$PROGS/echo_server" block "$1" 0.0.0.0 1
	wait_for "alpha to know beta serves $1" serves alpha beta "$1"
	r0=$(relayed_total)
	shimmed alpha timeout 20 "$PROGS/echo_client" block 198.18.0.2 "$1" 100000 >"$WORK/client.out" ||
		fail "echo client to $1: $(cat "$WORK/client.out")"
	join_bg echo 20 || fail "echo server on $1: $(cat "$WORK/echo.out")"
	[ "$(relayed_total)" -gt "$r0" ] || fail "the echo to $1 did not go through the relay"
}
echo_through_relay 7400
names_agree "$WORK/client.out" "$WORK/echo.out"
log "echo through the relay, names agree: $(field "$WORK/client.out" connected local) -> $(field "$WORK/client.out" connected peer)"

# A reload without beta: its listener (beta.vsock_PORT) goes, and the sessions from and to
# it (the helperds' links) are closed, as beta is no guest of the relay any more. Reloaded
# with beta again: its listener is back, the helperds meet through it, and a connection is
# relayed. alpha's listener stays the same socket throughout.
alpha_listener=$(stat -c %i "$WORK/alpha.vsock_$RELAY_PORT")
cat >"$WORK/relay.policy" <<POLICY
port $RELAY_PORT
guest alpha
    cid 3
    hybrid $WORK/alpha.vsock half-close
    vsock-base ${BASE[alpha]}
POLICY
reloads_reach() { [ "$(relay_value 'd["reloads"]')" -ge "$1" ]; }
wait_for "the relay to reload without beta" reloads_reach 1
[ ! -e "$WORK/beta.vsock_$RELAY_PORT" ] || fail "beta's listener outlived its guest"
revoked=$(relay_value 'd["counters"]["revoked"]')
left=$(relay_value "len([s for s in d['sessions'] if 'beta' in (s['from'], s['to'])])")
[ "$revoked" -ge 1 ] && [ "$left" = 0 ] || fail "without beta: $revoked sessions revoked, $left of beta's left"
host_policy half-close
wait_for "the relay to reload with beta" reloads_reach 2
wait_for "beta's listener" test -S "$WORK/beta.vsock_$RELAY_PORT"
[ "$(stat -c %i "$WORK/alpha.vsock_$RELAY_PORT")" = "$alpha_listener" ] ||
	fail "alpha's listener was made again"
wait_for "alpha to find beta again" peer_up alpha beta
wait_for "beta to find alpha again" peer_up beta alpha
echo_through_relay 7401
log "reloaded without beta: its listener gone, $revoked sessions closed; with beta again: listener back, helperds met, echo relayed"
