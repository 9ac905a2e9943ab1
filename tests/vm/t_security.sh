# What siblings may not do: reach a listener bound to loopback, reach a port the policy
# does not expose, connect from a CID/port that is no peer's (the application never sees
# it), or change anything through a broken policy. And helperd's files are tight.
start_helperd alpha
start_helperd beta
rd=$(rundir beta)

# helperd's run directory and files.
[ "$(stat -c %a "$rd")" = 755 ] || fail "run directory mode $(stat -c %a "$rd")"
[ "$(stat -c %a "$rd/table")" = 644 ] || fail "table mode $(stat -c %a "$rd/table")"
[ "$(stat -c %a "$rd/helperd.lock")" = 600 ] || fail "lock mode"
[ "$(stat -c %a "$rd/helperd.sock")" = 666 ] || fail "socket mode"
if in_guest beta "$HELPERD" -f -c "$POLICY" -s beta -r "$rd" 2>"$WORK/second.err"; then
	fail "a second helperd started on the same run directory"
fi
grep -q "another helperd" "$WORK/second.err" || fail "second helperd: $(cat "$WORK/second.err")"
log "run directory 755, table 644, lock 600, socket 666; a second helperd is refused"

# helperd refuses to start on an invalid policy, naming file and line, and publishes nothing.
printf 'peer x\n    cid 2\n    address 198.18.0.9\n' >"$WORK/bad.policy"
if in_guest beta "$HELPERD" -f -c "$WORK/bad.policy" -s x -r /run/vmshim-bad 2>"$WORK/bad.err"; then
	fail "helperd started on an invalid policy"
fi
grep -q "$WORK/bad.policy:2: cid 2" "$WORK/bad.err" || fail "start refusal: $(cat "$WORK/bad.err")"
[ ! -e /run/vmshim-bad ] || fail "helperd left a run directory behind"
log "invalid policy at start: refused with $(cut -c1-60 "$WORK/bad.err")..."

# A listener on loopback is never offered to siblings.
start_bg lo shimmed beta "$PROGS/echo_server" block 7400 127.0.0.1 1
wait_for "loopback listener" tcp_listening beta 7400
sleep 0.5
if vsock_listening beta "$(vsock_port beta 7400)"; then fail "loopback listener exposed"; fi
log "listener on 127.0.0.1: no vsock port"

# A port the policy does not expose (1024-65535 only) stays TCP.
start_bg p80 shimmed beta "$PROGS/echo_server" block 80 0.0.0.0 1
wait_for "port 80 listener" tcp_listening beta 80
before=$(veth_bytes alpha)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 80 100000 >/dev/null || fail "port 80 client"
[ $(($(veth_bytes alpha) - before)) -gt 200000 ] || fail "port 80 did not go over TCP"
if vsock_listening beta "$(vsock_port beta 80)"; then fail "port 80 exposed"; fi
log "port 80, not allowed by the policy: plain TCP"

# Connections from no peer's port block, or from beta's own block, are closed by helperd
# and never reach the application; a real sibling connection after them does.
vport=$(vsock_port beta 7401)
start_bg server shimmed beta "$PROGS/echo_server" epoll-lt 7401 0.0.0.0 1
wait_for "vsock listener" vsock_listening beta "$vport"
for src in any $((BASE[beta] + 131072 + 5555)); do
	python3 - "$vport" "$src" <<'PY' || fail "intruder from $src was not closed"
import socket, sys
port, src = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
if src != "any":
    s.bind((socket.VMADDR_CID_ANY, int(src)))
s.settimeout(10)
s.connect((1, port))
try:
    s.sendall(b"intruder")
    sys.exit(0 if s.recv(100) == b"" else 1)
except (ConnectionResetError, BrokenPipeError):
    sys.exit(0)  # closed before or after our bytes arrived: either way, closed
PY
done
grep -q "not a peer of the policy" "$WORK/helperd-beta.log" || fail "helperd did not log the refusal"
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7401 1000 >"$WORK/client.out" || fail client
join_bg server || fail "server: $(cat "$WORK/server.out")"
[ "$(grep -c '^accepted' "$WORK/server.out")" = 1 ] || fail "the application saw an intruder"
names_agree "$WORK/client.out" "$WORK/server.out"
log "unlisted vsock sources closed by helperd; the application saw only the sibling"

# A broken policy on SIGHUP changes nothing; a valid one that denies a port closes it.
cp "$POLICY" "$WORK/policy.good"
echo "peer broken" >>"$POLICY"
start_bg s2 shimmed beta "$PROGS/echo_server" block 7402 0.0.0.0 2
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7402)"
kill -HUP "$(pgrep -f "helperd.*-s beta")"
wait_for "reload refusal" grep -q "reload refused" "$WORK/helperd-beta.log"
grep "reload refused" "$WORK/helperd-beta.log" | grep -q "$POLICY:" || fail "no file:line"
vsock_listening beta "$(vsock_port beta 7402)" || fail "broken reload closed the listener"
before=$(veth_bytes alpha)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7402 100000 >/dev/null || fail client
[ $(($(veth_bytes alpha) - before)) -lt 20000 ] || fail "not over vsock after a bad reload"
sed 's/^allow 1024-65535$/allow 1024-65535\ndeny 7402/' "$WORK/policy.good" >"$POLICY"
kill -HUP "$(pgrep -f "helperd.*-s beta")"
wait_for "vsock port closed" sh -c "! ip netns exec beta ss -Hln --vsock | grep -q ':$(vsock_port beta 7402)'"
log "bad policy on SIGHUP: refused with file:line, nothing changed; deny 7402: vsock port closed"
