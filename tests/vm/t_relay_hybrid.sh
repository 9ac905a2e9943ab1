# The relay on a host with hybrid vsock (Firecracker, Cloud Hypervisor): each VM's vsock is a
# Unix socket on the host, played here by tests/vm/apps/hybrid_vmm.py, which speaks their
# protocol (CONNECT <port> / OK <port>; a guest's connection to host port P arrives on
# PATH_P). The relay knows each guest by the socket it came through; the guests' policy says
# `relay 1 PORT hybrid`. Discovery, curl and names go through it; the relay's answers to a
# port the VMM cannot reach and to an unknown CID.
declare -A VMM_PORT=([alpha]=5461 [beta]=5462)
ip netns add host
for g in alpha beta; do
	cat >"$WORK/policy-$g" <<POLICY
connect-timeout 2000
allow 1024-65535
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
	start_bg "vmm-$g" ip netns exec host python3 "$TOP/tests/vm/apps/hybrid_vmm.py" \
		"$WORK/$g.vsock" "${VMM_PORT[$g]}" "$RELAY_PORT"
	wait_for "the VMM of $g" grep -q ready "$WORK/vmm-$g.out"
done
cat >"$WORK/relay.policy" <<POLICY
port $RELAY_PORT
guest alpha
    cid 3
    hybrid $WORK/alpha.vsock
    vsock-base ${BASE[alpha]}
    reach beta
guest beta
    cid 4
    hybrid $WORK/beta.vsock
    vsock-base ${BASE[beta]}
    reach alpha
POLICY
start_relay "$WORK/relay.policy"
start_helperd alpha "$WORK/policy-alpha"
start_helperd beta "$WORK/policy-beta"
wait_for "alpha to find beta" peer_up alpha beta
wait_for "beta to find alpha" peer_up beta alpha
[ "$(relay_value '[g["transport"] for g in d["guests"]]')" = "['hybrid', 'hybrid']" ] ||
	fail "the relay's guests: $(relay_value 'd["guests"]')"
log "discovery through the VMMs' sockets and the relay: alpha and beta up"

mkdir -p "$WORK/www"
head -c $((2 << 20)) /dev/urandom >"$WORK/www/big"
start_bg http shimmed beta python3 -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www"
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
log "curl: 2 MiB intact through both VMMs and the relay, veth $moved bytes"

# Half-close: nc -N sends a request, shuts down its write side and waits for the server's
# answer (the digest of what it read), which comes only after the server read EOF.
start_bg half shimmed beta python3 "$TOP/tests/vm/apps/pyserve.py" threading-server 7951 1
wait_for "alpha to know beta serves 7951" serves alpha beta 7951
head -c 100000 /dev/urandom >"$WORK/request"
answer=$(shimmed alpha timeout 10 nc -N 198.18.0.2 7951 <"$WORK/request") ||
	fail "half-close: no answer within 10 s (nc: $?, '$answer')"
[ "${answer%% *}" = "$(sha256sum <"$WORK/request" | cut -d' ' -f1)" ] ||
	fail "half-close: the server read something else: $answer"
log "half-close: 100 kB sent, write side shut, the digest came back"

start_bg echo shimmed beta "$PROGS/echo_server" block 7400 0.0.0.0 1
wait_for "alpha to know beta serves 7400" serves alpha beta 7400
shimmed alpha timeout 20 "$PROGS/echo_client" block 198.18.0.2 7400 100000 >"$WORK/client.out" ||
	fail "echo client: $(cat "$WORK/client.out")"
join_bg echo 20 || fail "echo server: $(cat "$WORK/echo.out")"
names_agree "$WORK/client.out" "$WORK/echo.out"
log "names agree: $(field "$WORK/client.out" connected local) -> $(field "$WORK/client.out" connected peer)"

# Requests straight to the relay through alpha's VMM: a port of beta where nothing listens
# (the VMM closes on CONNECT) is answered unreachable, a CID no guest has is refused.
ip netns exec alpha python3 - "${VMM_PORT[alpha]}" "$((BASE[beta] + 9999))" >"$WORK/asks.out" <<'PY' ||
import socket, struct, sys
vmm, port = int(sys.argv[1]), int(sys.argv[2])
for cid in (4, 9):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.connect((1, vmm))
    s.sendall(struct.pack(">4sBBHIII", b"VMSR", 1, 1, 0, cid, port, 1131072 + 1234))
    s.settimeout(10)
    reply = s.recv(8)
    magic, version, kind, status, zero = struct.unpack(">4sBBBB", reply)
    assert (magic, version, kind) == (b"VMSR", 1, 2), reply
    print(f"cid {cid}: status {status}")
PY
	fail "requests to the relay: $(cat "$WORK/asks.out")"
[ "$(cat "$WORK/asks.out")" = "cid 4: status 2
cid 9: status 1" ] || fail "the relay answered: $(cat "$WORK/asks.out")"
log "through the VMM: a port nothing listens on is unreachable (2), an unknown CID refused (1)"
