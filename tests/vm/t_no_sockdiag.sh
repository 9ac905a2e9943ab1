# alone: without inet_diag and tcp_diag no helperd in the VM sees listeners, so nothing else
# may run meanwhile (tests/vm/lanes runs it before the others, tests/vm/run alone).
#
# What an unprivileged local user (nobody) can do when helperd cannot check its listeners
# (t_local_users has the rest).
start_helperd alpha
start_helperd beta
rd=$(rundir beta)
broken=()

# The kernel's inet_diag is gone (and no module loader brings it back), so helperd cannot
# check that a registered listener still listens. (Without tcp_diag alone, the kernel lists
# no TCP listener at all, and helperd forgets them all.) Root's server on 7409 exits; nobody
# listens on 7409 with a program of its own, without the shim, and claims whatever comes
# from the doorbell address with the secret it reads there. A sibling's connection must
# not ring nobody's program (before: nobody took the sibling's connection); the client
# reaches port 7409 over TCP, and helperd says at warning level that it cannot check.
start_bg s9 shimmed beta "$PROGS/echo_server" block 7409 0.0.0.0 1
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7409)"
modprobe_was=$(cat /proc/sys/kernel/modprobe)
# the tests after this one need tcp_diag back, whatever happens here
trap 'echo "$modprobe_was" >/proc/sys/kernel/modprobe; modprobe -a tcp_diag udp_diag' EXIT
echo /bin/false >/proc/sys/kernel/modprobe
rmmod udp_diag tcp_diag inet_diag
stop_bg s9
# helperd checks its listeners every second; the attack comes once it has found it cannot
# (once in CI no check of beta's ran while the modules were out, and the warning never came).
wait_for "beta's helperd to find it cannot check listeners" \
	grep -q "warning: sock_diag cannot list TCP listeners" "$WORK/helperd-beta.log"
cat >"$WORK/phantom.py" <<'PY'
import socket, struct, sys
MAGIC, CLAIM = 0x564D5332, 2
lst = socket.create_server(("0.0.0.0", 7409))
lst.settimeout(15)
print("listening", flush=True)
for _ in range(2):  # the doorbell, if any, then the client's own TCP connection
    c, peer = lst.accept()
    print("accepted from", peer[0], flush=True)
    if peer[0] != "127.86.83.77":
        break
    c.settimeout(2)
    secret = c.recv(16)
    h = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    h.settimeout(5)
    h.connect(sys.argv[1])
    socket.send_fds(h, [struct.pack("=III", MAGIC, CLAIM, 0)], [c.fileno()])
    data, fds, _, _ = socket.recv_fds(h, 64, 1)
    print("claim with the %d bytes read there: status %d, %d descriptors: %s" % (
        len(secret), struct.unpack("=Ii", data[:8])[1], len(fds),
        "stolen" if fds else "refused"), flush=True)
PY
start_bg phantom as_nobody beta python3 -S "$WORK/phantom.py" "$rd/helperd.sock"
wait_for "nobody's listener" grep -q listening "$WORK/phantom.out"
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7409 1000 >"$WORK/c9.out" 2>&1 || true
join_bg phantom 20 || true
echo "$modprobe_was" >/proc/sys/kernel/modprobe
modprobe -a tcp_diag udp_diag
trap - EXIT
log "without inet_diag, root's server gone, nobody's own listener on its port saw: $(tr '\n' ';' <"$WORK/phantom.out")"
! grep -q "127.86.83.77" "$WORK/phantom.out" || broken+=("a doorbell rang at nobody's listener")
grep -q "^accepted from 198.18.0.1" "$WORK/phantom.out" || broken+=("no TCP to port 7409")
log "helperd: $(grep -m1 'sock_diag cannot' "$WORK/helperd-beta.log" || echo 'nothing about sock_diag')"
[ ${#broken[@]} = 0 ] || fail "$(printf '%s; ' "${broken[@]}")"
