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
if in_guest beta "$HELPERD" -f -c "$WORK/bad.policy" -s x -r "$RUN/vmshim-bad" 2>"$WORK/bad.err"; then
	fail "helperd started on an invalid policy"
fi
grep -q "$WORK/bad.policy:2: cid 2" "$WORK/bad.err" || fail "start refusal: $(cat "$WORK/bad.err")"
[ ! -e "$RUN/vmshim-bad" ] || fail "helperd left a run directory behind"
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
	python3 -S - "$vport" "$src" <<'PY' || fail "intruder from $src was not closed"
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
kill -HUP "$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")"
wait_for "reload refusal" grep -q "reload refused" "$WORK/helperd-beta.log"
grep "reload refused" "$WORK/helperd-beta.log" | grep -q "$POLICY:" || fail "no file:line"
vsock_listening beta "$(vsock_port beta 7402)" || fail "broken reload closed the listener"
before=$(veth_bytes alpha)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7402 100000 >/dev/null || fail client
[ $(($(veth_bytes alpha) - before)) -lt 20000 ] || fail "not over vsock after a bad reload"
sed 's/^allow 1024-65535$/allow 1024-65535\ndeny 7402/' "$WORK/policy.good" >"$POLICY"
kill -HUP "$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")"
wait_for "vsock port closed" sh -c "! ip netns exec $(netns beta) ss -Hln --vsock | grep -q ':$(vsock_port beta 7402)'"
log "bad policy on SIGHUP: refused with file:line, nothing changed; deny 7402: vsock port closed"

# An unprivileged local user (nobody) of beta. It cannot put a helperd of its own where the
# shim looks, nor touch helperd's table; through the control socket, open to every user, it
# cannot expose a loopback listener, withdraw root's listener, or claim a sibling's
# connection with a forged doorbell (CLAIM is withdrawn: dropped as malformed, unanswered).
# Root's server is still reached over vsock afterwards.
# (nobody's forged doorbell is none of helperd's: the server takes it as the ordinary local
# connection it is, then the sibling's)
start_bg s3 shimmed beta "$PROGS/echo_server" block 7403 0.0.0.0 2
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7403)"
if as_nobody beta sh -c "echo x >>'$rd/table'" 2>/dev/null; then fail "nobody wrote the table"; fi
if as_nobody beta rm -f "$rd/helperd.sock" 2>/dev/null; then fail "nobody removed the socket"; fi
if as_nobody beta python3 -S -c 'import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1] + "/fake.sock")' "$rd" 2>/dev/null; then
	fail "nobody made a socket in the run directory"
fi
as_nobody beta python3 -S - "$rd/helperd.sock" 7403 >"$WORK/nobody.out" 2>&1 <<'PY' || fail "nobody's requests: $(cat "$WORK/nobody.out")"
import socket, struct, sys
path, server_port = sys.argv[1], int(sys.argv[2])
MAGIC, REGISTER, CLAIM, CLOSED = 0x564D5332, 1, 2, 3

def ask(kind, port=0, fd=None):
    """One request; returns the reply's status, or None when helperd gave no answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(path)
    socket.send_fds(s, [struct.pack("=III", MAGIC, kind, port)], [fd] if fd is not None else [])
    try:
        data, fds, _, _ = socket.recv_fds(s, 64, 1)
    except socket.timeout:
        return None
    for f in fds:
        socket.close(f)
    if len(data) < 8:
        return None
    if fds:
        sys.exit("helperd handed nobody a connection")
    return struct.unpack("=Ii", data[:8])[1]

lo = socket.create_server(("127.0.0.1", 7410))
status = ask(REGISTER, fd=lo.fileno())
print("register loopback listener:", status)
assert status != 0, "a loopback listener was accepted"
idle = socket.socket()
status = ask(REGISTER, fd=idle.fileno())
print("register a socket that does not listen:", status)
assert status != 0
ask(CLOSED, port=server_port)  # root's listener is still there: nothing may change
bell = socket.socket()
bell.bind(("127.86.83.77", 0))
bell.connect(("127.0.0.1", server_port))
status = ask(CLAIM, fd=bell.fileno())
print("claim with a forged doorbell:", status)
assert status is None, "helperd answered a CLAIM"
PY
sleep 0.5
vsock_listening beta "$(vsock_port beta 7403)" || fail "nobody withdrew root's listener"
shimmed alpha env VMSHIM_DEBUG=1 "$PROGS/echo_client" block 198.18.0.2 7403 1000 >"$WORK/c3.out" 2>&1 ||
	fail "client: $(cat "$WORK/c3.out")"
grep -q "connected to sibling" "$WORK/c3.out" || fail "not redirected after nobody's attempts"
log "nobody: no write to the table or run directory; $(grep -c : "$WORK/nobody.out") control requests refused ($(tr '\n' ';' <"$WORK/nobody.out")); root's listener still redirected"

# veth_bytes_of_client OPTION PORT: bytes that crossed alpha's veth while a shimmed client in
# alpha echoed 300 kB with beta's server on PORT; OPTION: none, device (SO_BINDTODEVICE eth0),
# mark (SO_MARK 7) or port700 (bound to TCP port 700).
veth_bytes_of_client() {
	local before
	before=$(veth_bytes alpha)
	shimmed alpha python3 -S - "$@" <<'PY' || { echo "    FAIL: client with $1" >&2; return 1; }
import socket, sys
opt, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
if opt == "device":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
elif opt == "mark":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 7)
elif opt == "port700":
    s.bind(("0.0.0.0", 700))
s.connect(("198.18.0.2", port))
s.sendall(b"x" * 300000)
got = 0
while got < 300000:
    got += len(s.recv(65536))
PY
	echo $(($(veth_bytes alpha) - before))
}

# A socket bound to a device (SO_BINDTODEVICE) or marked for policy routing (SO_MARK) chose
# its path; vsock would bypass it, so it stays TCP (the bytes cross the veth), while an
# ordinary socket to the same server is redirected.
start_bg s6 shimmed beta "$PROGS/echo_server" block 7406 0.0.0.0 3
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7406)"
for opt in none device mark; do
	moved=$(veth_bytes_of_client "$opt" 7406)
	case $opt in
	none) [ "$moved" -lt 100000 ] || fail "an ordinary socket was not redirected ($moved bytes on the veth)" ;;
	*) [ "$moved" -gt 600000 ] || fail "a socket with a $opt was redirected ($moved bytes on the veth)" ;;
	esac
	log "client socket with ${opt/none/no device or mark}: $moved bytes on the veth"
done
join_bg s6 || fail "server: $(cat "$WORK/s6.out")"

# A TCP source port below 1024 says root bound it; the vsock source port that stands for it
# says nothing (any user of the client's guest can bind it). nobody in alpha binds the one
# for TCP port 700 and connects to beta's server: helperd closes it unseen. Root's client
# bound to TCP port 700 stays TCP, where the kernel vouches for the port.
start_bg s7 shimmed beta "$PROGS/echo_server" block 7409 0.0.0.0 1
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7409)"
as_nobody alpha python3 -S - "$(vsock_port beta 7409)" "$((BASE[alpha] + 131072 + 700))" \
	>"$WORK/lowport.out" 2>&1 <<'PY' || fail "nobody's connection from port 700 was handed over: $(cat "$WORK/lowport.out")"
import socket, sys
port, src = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, src))
s.settimeout(10)
s.connect((1, port))
try:
    got = s.recv(1)
except (ConnectionResetError, socket.timeout):
    got = b""
print("handed over" if got else "closed")
sys.exit(1 if got else 0)
PY
moved=$(veth_bytes_of_client port700 7409)
join_bg s7 || fail "server: $(cat "$WORK/s7.out")"
[ "$moved" -gt 600000 ] || fail "root's client from TCP port 700 was redirected ($moved bytes on the veth)"
[ "$(grep -c '^accepted' "$WORK/s7.out")" = 1 ] && grep -q "peer=198.18.0.1:700" "$WORK/s7.out" ||
	fail "the server saw $(cat "$WORK/s7.out")"
log "vsock source for TCP port 700 from nobody: $(cat "$WORK/lowport.out"); root's client from TCP port 700: TCP ($moved bytes on the veth)"

# The shim ignores its environment knobs (VMSHIM_DEBUG, VMSHIM_RUNDIR, VMSHIM_DISABLE) in a
# set-user-ID program. Only /etc/ld.so.preload can load it there (ld.so ignores LD_PRELOAD
# paths in secure-execution mode), so it is used for this one command. The same program
# without the set-user-ID bit shows what the knobs would do.
mkdir -p /var/tmp/vmshim-suid
for b in plain suid; do cp "$PROGS/echo_client" "/var/tmp/vmshim-suid/$b"; done
chmod 4755 /var/tmp/vmshim-suid/suid
chmod 755 /var/tmp/vmshim-suid/plain
start_bg s4 shimmed beta "$PROGS/echo_server" block 7404 0.0.0.0 2
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7404)"
# Only these two commands see the preload file: each runs in a mount namespace of its own,
# where one that names the shim is bound over /etc/ld.so.preload (written to /etc itself, it
# would load the shim into every process in the VM, the other lane's too).
echo "$SHIM_PRELOAD" >"$WORK/ld.so.preload"
made=
[ -e /etc/ld.so.preload ] || { : >/etc/ld.so.preload && made=1; } # empty: nothing preloaded
for b in plain suid; do
	unshare -m sh -c 'mount --bind "$0" /etc/ld.so.preload && exec "$@"' "$WORK/ld.so.preload" \
		ip netns exec "$(netns alpha)" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env VMSHIM_DEBUG=1 VMSHIM_RUNDIR="$(rundir alpha)" "/var/tmp/vmshim-suid/$b" \
		block 198.18.0.2 7404 1000 >"$WORK/$b.out" 2>&1 || true
done
[ -z "$made" ] || rm -f /etc/ld.so.preload
rm -rf /var/tmp/vmshim-suid
grep -q "connected to sibling" "$WORK/plain.out" || fail "the knobs did nothing without set-user-ID: $(cat "$WORK/plain.out")"
grep -q "^connected" "$WORK/suid.out" || fail "the set-user-ID client failed: $(cat "$WORK/suid.out")"
if grep -q "vmshim\[" "$WORK/suid.out"; then fail "the set-user-ID client obeyed VMSHIM_DEBUG: $(cat "$WORK/suid.out")"; fi
log "set-user-ID program: VMSHIM_DEBUG and VMSHIM_RUNDIR ignored (plain TCP, no debug output); without the bit they apply"

# Where a guest's CID is its own (as on a real host), only its helperd, which runs as root,
# may speak for it on a peer's control port: control connections must come from a
# privileged vsock port. Here each policy gives the guest itself CID 9, so that the other's
# CID 1 is unique in it. An unprivileged user of alpha can bind no such port, and a
# connection from alpha's source block is refused, while the two helperds still meet.
sed '/^peer alpha$/,/^peer beta$/s/^    cid 1$/    cid 9/' "$POLICY" >"$WORK/policy.alpha9"
sed '/^peer beta$/,$s/^    cid 1$/    cid 9/' "$POLICY" >"$WORK/policy.beta9"
stop_helperd alpha
stop_helperd beta
start_helperd alpha "$WORK/policy.alpha9"
start_helperd beta "$WORK/policy.beta9"
wait_for "alpha to find beta" peer_up alpha beta
wait_for "beta to find alpha" peer_up beta alpha
rogue_port=$((BASE[alpha] + 131072 + 5))
as_nobody alpha python3 -S - "$((BASE[beta] + 131072))" "$rogue_port" >"$WORK/rogue.out" 2>&1 <<'PY' || fail "rogue: $(cat "$WORK/rogue.out")"
import socket, sys
control, src = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
try:
    s.bind((socket.VMADDR_CID_ANY, 700))
    sys.exit("nobody bound privileged vsock port 700")
except PermissionError:
    print("privileged port 700: refused to nobody")
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, src))
s.settimeout(10)
s.connect((1, control))
sys.exit(0 if s.recv(100) == b"" else 1)
PY
wait_for "the refusal" grep -q "control connection from cid 1 port $rogue_port refused: not from a privileged port" \
	"$WORK/helperd-beta.log"
peer_up beta alpha || fail "beta lost alpha"
log "own CIDs: helperds meet from privileged ports; nobody in alpha cannot bind one, and from port $rogue_port it is refused"

# Identity is the CID the hypervisor sets: when beta's policy gives alpha another CID, a
# connection from CID 1 with a source port of alpha's block (as alpha's shim would make it)
# is closed by beta's helperd and never reaches the application, and alpha's helperd is
# no longer let onto beta's control port.
sed '/^peer alpha$/,/^peer beta$/s/^    cid 1$/    cid 7/' "$POLICY" >"$WORK/policy.cid7"
grep -q "cid 7" "$WORK/policy.cid7" || fail "no cid 7 in $(cat "$WORK/policy.cid7")"
stop_helperd beta
start_helperd beta "$WORK/policy.cid7"
start_bg s5 shimmed beta "$PROGS/echo_server" block 7405 0.0.0.0 1
wait_for "beta's vsock listener" sh -c "ip netns exec $(netns beta) ss -Hln --vsock | grep -q ':$(vsock_port beta 7405)'"
in_guest alpha python3 -S - "$(vsock_port beta 7405)" "$((BASE[alpha] + 131072 + 40000))" <<'PY' ||
import socket, sys
port, src = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, src))
s.settimeout(10)
s.connect((1, port))
sys.exit(0 if s.recv(100) == b"" else 1)  # closed without the hand-over byte
PY
	fail "a connection from alpha's block was not closed"
wait_for "the refusal" grep -q "vsock connection from cid 1 port $((BASE[alpha] + 131072 + 40000)) refused: not a peer" \
	"$WORK/helperd-beta.log"
wait_for "alpha's control connection refused" grep -Eq "control connection from cid 1 port [0-9]+ refused: not a peer" \
	"$WORK/helperd-beta.log"
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7405 1000 >/dev/null || fail "TCP client"
join_bg s5 || fail "server: $(cat "$WORK/s5.out")"
[ "$(grep -c '^accepted' "$WORK/s5.out")" = 1 ] && grep -q "peer=198.18.0.1:" "$WORK/s5.out" ||
	fail "the application saw $(cat "$WORK/s5.out")"
log "beta's policy gives alpha CID 7: alpha's vsock and control connections (CID 1) refused and logged; the application saw only a TCP client"

