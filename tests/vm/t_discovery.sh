# helperds across three guests: discovery, claims judged by the policy, redirection only to
# served ports, liveness (a killed helperd whose guest is removed dropped at once; a stopped
# one dropped by the timeout is t_liveness), rediscovery, and a rogue client on the control
# port.
# alpha's and beta's policy grant each other their addresses and list gamma by CID alone;
# gamma's lists every peer by CID alone and so announces its interfaces' addresses. A peer
# owns only what the policy grants it: gamma, granted nothing, owns nothing, whatever it
# claims (before, a CID-only peer took every address it claimed that no one else owned).
# Each step is checked in `vmshimctl status --json`.
cat >"$WORK/granted" <<EOF
allow 1024-65535
peer alpha
    cid 1
    vsock-base ${BASE[alpha]}
    address ${ADDR[alpha]}
peer beta
    cid 1
    vsock-base ${BASE[beta]}
    address ${ADDR[beta]}
peer gamma
    cid 1
    vsock-base $((3000000 + LANE_PORTS))
EOF
grep -v "address" "$WORK/granted" >"$WORK/cid-only-gamma"
BASE[gamma]=$((3000000 + LANE_PORTS))
# gamma claims these too: 198.19.0.53 stands for any address off this machine (a DNS server)
ip -n "$(netns gamma)" addr add 198.18.0.99/24 dev eth0
ip -n "$(netns gamma)" addr add 198.19.0.53/32 dev eth0
start_helperd alpha "$WORK/granted"
start_helperd beta "$WORK/granted"
start_helperd gamma "$WORK/cid-only-gamma"

for g in alpha beta gamma; do
	for h in alpha beta gamma; do
		[ "$g" = "$h" ] || wait_for "$g to find $h" peer_up "$g" "$h"
	done
done
status_check alpha 'peer("beta")["addresses"] == ["198.18.0.2"] and peer("gamma")["addresses"] == []' ||
	fail "alpha's view of its peers: $(status_json alpha)"
status_check beta 'd["counters"]["refused_claims"] >= 3' || fail "claims not refused: $(status_json beta)"
for a in 198.18.0.3 198.18.0.99 198.19.0.53; do
	grep -q "peer gamma (cid 1) claims $a: refused, the policy grants it no address" \
		"$WORK/helperd-beta.log" || fail "gamma's claim of $a is not refused and logged"
done
in_guest alpha "$HELPERD" --check -c "$WORK/granted" -s alpha 2>&1 |
	grep -q "peer gamma has no address lines" || fail "helperd --check does not warn of gamma"
log "gamma, granted no address, owns none of its claims (198.18.0.3, .99, 198.19.0.53: refused and logged; --check warns); beta owns its granted 198.18.0.2"

# Redirection only to a port a shim serves: 7000 under the shim, 7001 without it.
start_bg served shimmed beta "$PROGS/echo_server" epoll-lt 7000 0.0.0.0 6
start_bg plain in_guest beta "$PROGS/echo_server" block 7001 0.0.0.0 5
wait_for "beta's servers" tcp_listening beta 7001
wait_for "alpha to learn beta serves 7000" status_check alpha '7000 in peer("beta")["ports4"]'
status_check alpha '7001 not in peer("beta")["ports4"]' || fail "7001 announced: $(status_json alpha)"
shimmed alpha env VMSHIM_DEBUG=1 "$PROGS/echo_client" block 198.18.0.2 7000 100000 \
	>"$WORK/c1.out" 2>&1 || fail "client to 7000: $(cat "$WORK/c1.out")"
grep -q "connected to sibling cid 1 port $((BASE[beta] + 7000)) (vsock)" "$WORK/c1.out" ||
	fail "7000 not redirected: $(cat "$WORK/c1.out")"
shimmed alpha env VMSHIM_DEBUG=1 "$PROGS/echo_client" block 198.18.0.2 7001 100000 \
	>"$WORK/c2.out" 2>&1 || fail "client to 7001: $(cat "$WORK/c2.out")"
if grep -q "sibling cid" "$WORK/c2.out"; then fail "a vsock attempt to 7001: $(grep sibling "$WORK/c2.out")"; fi
log "beta:7000 (shim) redirected; beta:7001 (no shim) plain TCP without a vsock attempt"

# The shims' counters: two connections from one bound local port, the second of which
# cannot have its vsock source port (the first holds it) and falls back to TCP.
shimmed alpha python3 -S - <<'PY' || fail "two connections from local port 40000 failed"
import socket
def connect():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 40000))
    s.connect(("198.18.0.2", 7000))
    return s
first, second = connect(), connect()
for s in (first, second):
    s.sendall(b"x" * 1000)
    got = b""
    while len(got) < 1000:
        got += s.recv(1000)
    assert got == b"x" * 1000
PY
status_check alpha 'd["counters"]["redirected"] == 2 and d["counters"]["fallback_local"] == 1' ||
	fail "shim counters: $(status_json alpha)"
log "shim counters in alpha's status: 2 redirected, 1 fallback (local port's vsock source taken)"

# Killed, and its guest removed: dropped at once (its connection closes). Then it returns.
stop_bg served
stop_bg plain
stop_helperd beta KILL
remove_guest beta
wait_for "alpha to drop beta" status_check alpha 'peer("beta")["state"] == "down"'
wait_for "gamma to drop beta" status_check gamma 'peer("beta")["state"] == "down"'
status_check alpha 'peer("gamma")["state"] == "up"' || fail "gamma dropped too"
log "beta killed and its namespace removed: alpha and gamma dropped it"
add_guest beta
start_helperd beta "$WORK/granted"
wait_for "alpha to find beta again" peer_up alpha beta
wait_for "gamma to find beta again" peer_up gamma beta
log "beta back: rediscovered by alpha and gamma, nothing restarted"

# A rogue on alpha's control port: garbage from a port outside every block, garbage and an
# oversized frame from a port of gamma's block. alpha drops them, counts them, serves on.
control=$((BASE[alpha] + 131072))
in_guest gamma python3 -S - "$control" "$((BASE[gamma] + 131072 + 1000))" <<'PY' ||
import socket, struct, sys, time
control, gamma_port = int(sys.argv[1]), int(sys.argv[2])
def send(frames, src=None):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    if src is not None:
        s.bind((socket.VMADDR_CID_ANY, src))
    s.connect((1, control))
    for f in frames:
        try:
            s.sendall(f)
        except OSError:
            break
    time.sleep(0.3)
    s.close()
send([b"GET / HTTP/1.0\r\n\r\n" * 100])
send([b"\xff" * 4096], gamma_port)
send([struct.pack(">IBBHI", 0x564D5350, 1, 1, 0, 1 << 20) + b"\0" * 65536], gamma_port + 1)
send([struct.pack(">IBBHI", 0x564D5350, 1, 1, 0, 16) + b"\0" * 16], gamma_port + 2)
# 500 malformed announcements on one connection: the first must end it
send([(struct.pack(">IBBHI", 0x564D5350, 1, 1, 0, 16) + b"\0" * 16) * 500], gamma_port + 3)
PY
	fail "the rogue client could not run"
wait_for "alpha to count the rogue" status_check alpha \
	'd["counters"]["rejected_cids"] >= 1 and d["counters"]["bad_messages"] >= 3'
[ "$(grep -c "malformed announcement" "$WORK/helperd-alpha.log")" -le 2 ] ||
	fail "500 malformed announcements on one connection: $(grep -c "malformed announcement" "$WORK/helperd-alpha.log") logged"
grep -q "bad frame (oversized message): connection closed" "$WORK/helperd-alpha.log" ||
	fail "the oversized frame is not logged"
grep -q "malformed announcement (length does not match the counts): connection closed" \
	"$WORK/helperd-alpha.log" || fail "the short announcement is not logged"
status_check alpha 'peer("beta")["state"] == "up" and peer("gamma")["state"] == "up"' ||
	fail "alpha lost its peers: $(status_json alpha)"
start_bg served2 shimmed beta "$PROGS/echo_server" block 7000 0.0.0.0 5
wait_for "alpha to learn beta serves 7000" status_check alpha '7000 in peer("beta")["ports4"]'
shimmed alpha env VMSHIM_DEBUG=1 "$PROGS/echo_client" block 198.18.0.2 7000 100000 \
	>"$WORK/c4.out" 2>&1 || fail "client after the rogue: $(cat "$WORK/c4.out")"
grep -q "(vsock)" "$WORK/c4.out" || fail "not redirected after the rogue"
log "rogue on the control port: $(status_json alpha | python3 -S -c 'import json,sys; c=json.load(sys.stdin)["counters"]; print(c["rejected_cids"], "rejected,", c["bad_messages"], "malformed")'); alpha still serves"
in_guest alpha "$VMSHIMCTL" status | sed 's/^/      /' | head -n 12
