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
ip netns add elsewhere
ip -n elsewhere link set lo up
stolen=
for mode in udp ping tcp; do
	start_bg "srv-$mode" shimmed beta "$PROGS/echo_server" block 7406 0.0.0.0 1
	wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7406)"
	srv=$(leaf_pid "$(cat "$WORK/srv-$mode.pid")")
	kill -STOP "$srv"
	start_bg "cli-$mode" shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7406 1000
	bell=$(as_nobody beta python3 "$thief" find 7406) || fail "no doorbell seen"
	where=beta
	[ "$mode" != tcp ] || where=elsewhere
	rc=0
	ip netns exec "$where" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		python3 "$thief" "$mode" "$rd/helperd.sock" 127.0.0.1 7406 "$bell" \
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
ip netns del elsewhere
[ -z "$stolen" ] || fail "nobody's claims were not all refused:$stolen"
