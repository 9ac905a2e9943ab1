# What an unprivileged local user (nobody) of a guest can do against vmshim with what every
# user has: helperd's control socket (0666), the counter page, /proc. Each section is an
# attack that worked before its defence (issue 15) and must fail now.
start_helperd alpha
start_helperd beta
rd=$(rundir beta)
thief=$TOP/tests/vm/apps/claim_thief.py

# A sibling connection waits in beta's helperd while root's server is stopped. nobody
# finds its doorbell in /proc/net/tcp and claims it with a socket of its own that has the
# doorbell's two addresses: a UDP socket on the listener's port, an ICMP ping socket (as
# systemd's ping_group_range lets every user make), or a TCP connection made in another
# network namespace. (A user namespace of nobody's own would do for that, but the test VM's
# chroot makes the kernel refuse one, so root makes the namespace and nobody uses it.)
# helperd must hand it nothing; the client then reaches the real server (over vsock, or
# over TCP once its connect-timeout passed).
in_guest beta sysctl -qw net.ipv4.ping_group_range="0 2147483647"
ip netns add "$(netns elsewhere)"
ip -n "$(netns elsewhere)" link set lo up
stolen=
for mode in udp ping tcp; do
	start_bg "srv-$mode" shimmed beta "$PROGS/echo_server" block 7406 0.0.0.0 1
	wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7406)"
	srv=$(leaf_pid "$(cat "$WORK/srv-$mode.pid")")
	kill -STOP "$srv"
	start_bg "cli-$mode" shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7406 1000
	bell=$(as_nobody beta python3 -S "$thief" find 7406) || fail "no doorbell seen"
	where=beta
	[ "$mode" != tcp ] || where=elsewhere
	rc=0
	ip netns exec "$(netns "$where")" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		python3 -S "$thief" "$mode" "$rd/helperd.sock" 127.0.0.1 7406 "$bell" \
		>"$WORK/thief-$mode.out" 2>&1 || rc=$?
	kill -CONT "$srv"
	log "nobody's claim with a $mode socket of the doorbell's addresses (exit $rc): $(cat "$WORK/thief-$mode.out")"
	if [ "$rc" != 3 ]; then
		stolen+=" $mode"
		stop_bg "cli-$mode"
		stop_bg "srv-$mode"
		continue
	fi
	join_bg "cli-$mode" || fail "client: $(cat "$WORK/cli-$mode.out")"
	join_bg "srv-$mode" || fail "server: $(cat "$WORK/srv-$mode.out")"
	log "the client reached root's server"
done
ip netns del "$(netns elsewhere)"
[ -z "$stolen" ] || fail "nobody's claims were not all refused:$stolen"

# The next two sections report what they saw and fail at their end.
broken=()

# Any local user may bind a loopback address, the doorbell's too. nobody's ordinary
# connection from 127.86.83.77 to root's shimmed server is the server's, as it would be
# without the shim (before: closed inside accept(), unseen): with helperd running (it is
# none of helperd's doorbells) and with no helperd at all.
for where in helperd none; do
	port=7411
	env=()
	[ "$where" = helperd ] || { port=7412; env=(env VMSHIM_RUNDIR=/run/vmshim-none); }
	start_bg "s$port" shimmed beta "${env[@]}" "$PROGS/echo_server" block "$port" 0.0.0.0 1
	wait_for "listener $port" tcp_listening beta "$port"
	as_nobody beta python3 -S - "$port" >"$WORK/from-bell-$port.out" 2>&1 <<'PY' || true
import socket, sys
s = socket.socket()
s.bind(("127.86.83.77", 0))
s.settimeout(5)
s.connect(("127.0.0.1", int(sys.argv[1])))
try:
    s.sendall(b"hello")
    s.shutdown(socket.SHUT_WR)
    print("echo:", s.recv(100))
except OSError as e:
    print("echo: none,", e)
PY
	log "with $where: nobody's connection from 127.86.83.77 to root's server: $(cat "$WORK/from-bell-$port.out")"
	if grep -q "echo: b'hello'" "$WORK/from-bell-$port.out"; then
		join_bg "s$port" 10 || fail "server: $(cat "$WORK/s$port.out")"
	else
		stop_bg "s$port"
		broken+=("a client from 127.86.83.77 dropped with $where")
	fi
done

# Root's server listens at port 7413 on beta's own address only. nobody listens at the same
# port on another address of beta, 198.18.0.12, with the shim, and registers first. A
# sibling's client dials root's address: TCP would take it to root's server, and so must
# vmshim (before: the first registration at a port took every sibling connection to it, and
# nobody's server read what the client sent).
ip -n "$(netns beta)" addr add 198.18.0.12/24 dev eth0
start_bg s13n as_nobody beta env LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/echo_server" block 7413 \
	198.18.0.12 1
wait_for "nobody's listener registered" vsock_listening beta "$(vsock_port beta 7413)"
start_bg s13r shimmed beta "$PROGS/echo_server" block 7413 198.18.0.2 1
wait_for "root's listener registered" \
	sh -c "[ \$(grep -c 'listener on TCP port 7413 registered' '$WORK/helperd-beta.log') = 2 ]"
accepted0=$(counter beta sibling_accepted)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7413 1000 >"$WORK/c13.out" 2>&1 ||
	broken+=("client to 198.18.0.2 port 7413: $(cat "$WORK/c13.out")")
accepted=$(($(counter beta sibling_accepted) - accepted0))
sleep 0.5 # for a server that took it to say so
log "a sibling's client dialled root's 198.18.0.2 port 7413 ($accepted sibling connection accepted by beta's helperd): root's server: $(grep -h accepted "$WORK/s13r.out" || echo nothing); nobody's on 198.18.0.12: $(grep -h accepted "$WORK/s13n.out" || echo nothing)"
! grep -q accepted "$WORK/s13n.out" || broken+=("nobody's listener on another address took the connection")
grep -q accepted "$WORK/s13r.out" && [ "$accepted" = 1 ] ||
	broken+=("root's server was not reached over vsock")
stop_bg s13n
stop_bg s13r
ip -n "$(netns beta)" addr del 198.18.0.12/24 dev eth0

# nobody listens, with the shim, in a network namespace of its own (root makes it, as
# above), where helperd can check nothing of the socket. helperd must refuse to register it
# (before: taken, and a vsock port opened for it, until the next sweep).
ip netns add "$(netns elsewhere)"
ip -n "$(netns elsewhere)" link set lo up
start_bg s14 ip netns exec "$(netns elsewhere)" env VMSHIM_RUNDIR="$rd" setpriv --reuid=nobody \
	--regid=nogroup --clear-groups env LD_PRELOAD="$SHIM_PRELOAD" "$PROGS/echo_server" \
	block 7414 0.0.0.0 1
wait_for "an answer to nobody's registration" grep -Eq \
	"listener on TCP port 7414 (registered|of uid [0-9]+ refused)" "$WORK/helperd-beta.log"
log "nobody's listener in another network namespace: $(grep -hE 'port 7414 (registered|of uid)' "$WORK/helperd-beta.log")"
! grep -q "listener on TCP port 7414 registered" "$WORK/helperd-beta.log" ||
	broken+=("a listener of another network namespace was registered")
stop_bg s14
ip netns del "$(netns elsewhere)"

[ ${#broken[@]} = 0 ] || fail "$(printf '%s; ' "${broken[@]}")"

# nobody opens 300 connections to helperd's control socket and says nothing on them. Root's
# server starting meanwhile must still be registered (reached over vsock), and vmshimctl
# must still answer: each user gets a share of the open requests, and a connection that
# does not ask in time is closed.
start_bg flood as_nobody beta python3 -S "$TOP/tests/vm/apps/control_flood.py" hold \
	"$rd/helperd.sock" 300 8
wait_for "nobody's connections" grep -q "^opened" "$WORK/flood.out"
start_bg s7 shimmed beta "$PROGS/echo_server" block 7407 0.0.0.0 1
timeout 10 sh -c "until ip netns exec $(netns beta) ss -Hln --vsock | grep -q ':$(vsock_port beta 7407)'; do sleep 0.1; done" ||
	fail "root's listener was not registered while nobody held the control socket ($(cat "$WORK/flood.out"))"
in_guest beta timeout 5 "$VMSHIMCTL" status >/dev/null ||
	fail "vmshimctl status unanswered while nobody held the control socket"
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7407 1000 >/dev/null || fail "client"
join_bg s7 || fail "server: $(cat "$WORK/s7.out")"
join_bg flood 20 || fail "flood: $(cat "$WORK/flood.out")"
grep -q "closed 300 of them" "$WORK/flood.out" || fail "idle connections kept: $(cat "$WORK/flood.out")"
log "nobody's idle control connections: $(tr '\n' ' ' <"$WORK/flood.out"); root's listener registered, status answered"

# nobody sends 2000 malformed requests: helperd's log grows by a few lines and one that
# counts the rest, not by 2000.
before=$(wc -l <"$WORK/helperd-beta.log")
as_nobody beta python3 -S "$TOP/tests/vm/apps/control_flood.py" garbage "$rd/helperd.sock" 2000 \
	>"$WORK/garbage.out" || fail "garbage: $(cat "$WORK/garbage.out")"
wait_for "the suppressed lines counted" sh -c "tail -n +$((before + 1)) '$WORK/helperd-beta.log' | grep -q 'about uid 65534 suppressed'"
lines=$(($(wc -l <"$WORK/helperd-beta.log") - before))
[ "$lines" -le 12 ] || fail "2000 malformed requests wrote $lines lines to helperd's log"
log "nobody's 2000 malformed requests: $lines log lines, the last: $(tail -n1 "$WORK/helperd-beta.log")"

# nobody writes the counter page every shim shares. Nothing in it may steer a shim: a
# shimmed program that makes sibling connections for 6 s afterwards still has one page
# mapped (before: one more page each second, never unmapped, each from inside connect()).
start_bg s8 shimmed beta "$PROGS/echo_server" block 7408 0.0.0.0 7
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7408)"
shimmed alpha python3 -S -c 'import socket; socket.create_connection(("198.18.0.2", 7408)).close()'
as_nobody alpha python3 -S "$TOP/tests/vm/apps/counters_poison.py" "$(rundir alpha)/helperd.sock" \
	>"$WORK/poison.out" 2>&1 || fail "poison: $(cat "$WORK/poison.out")"
shimmed alpha python3 -S - >"$WORK/pages.out" 2>&1 <<'PY' || fail "client: $(cat "$WORK/pages.out")"
import socket, time
for _ in range(6):
    socket.create_connection(("198.18.0.2", 7408)).close()
    time.sleep(1.1)
print(sum("vmshim-counters" in line for line in open("/proc/self/maps")), "counter pages mapped")
PY
join_bg s8 || fail "server: $(cat "$WORK/s8.out")"
grep -q "^1 counter pages mapped" "$WORK/pages.out" || fail "after nobody wrote the page: $(cat "$WORK/pages.out")"
log "nobody $(cat "$WORK/poison.out"); a shimmed client connecting for 6 s after: $(cat "$WORK/pages.out")"


# The policy file becomes nobody's (a chown by mistake, a deploy tool running as a user).
# helperd must not take it: `--check` (and so a start) refuses it, and the running helperds
# refuse every reload of it, on its change and on SIGHUP, so that nobody's edit never
# applies (before: both loaded it).
loads() { grep -c "^helperd: info: policy $POLICY: " "$WORK/helperd-beta.log" || true; }
loads0=$(loads)
chown nobody "$POLICY"
check=$("$HELPERD" --check -c "$POLICY" -s beta 2>&1) && fail "helperd --check took a policy nobody owns: $check"
as_nobody beta sh -c 'new=$(sed "s/^connect-timeout .*/connect-timeout 300/" "$1") && echo "$new" >"$1"' \
	sh "$POLICY" || fail "nobody could not write the file it owns"
refused() { [ "$(grep -c "reload refused.*belongs to uid 65534" "$WORK/helperd-beta.log")" -ge "$1" ]; }
wait_for "beta's helperd to refuse nobody's change" refused 1
kill -HUP "$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")"
wait_for "beta's helperd to refuse it on SIGHUP" refused 2
[ "$(loads)" = "$loads0" ] || fail "beta's helperd loaded a policy nobody owns: $(grep "policy $POLICY" "$WORK/helperd-beta.log" | tail -n 1)"
chown root "$POLICY"
log "a policy nobody owns: --check refused it ($(echo "$check" | head -n 1)); beta's helperd refused its change and SIGHUP, $(loads) loads as before"
