# A guest needs no route, not even a network interface, to reach a sibling: the policy
# decides. Here alpha reaches beta by IPv6 addresses that no interface has and no route
# leads to (2001:db8::/32 exists only in the policy), and then by IPv4 with its only
# interface down.
sed -i 's/^    address 198.18.0.1$/    address 198.18.0.1 2001:db8::1/; s/^    address 198.18.0.2$/    address 198.18.0.2 2001:db8::2/' "$POLICY"
start_helperd alpha
start_helperd beta

start_bg server shimmed beta "$PROGS/echo_server" block 7501 :: 2
wait_for "IPv6 vsock listener" vsock_listening beta $((BASE[beta] + 65536 + 7501))
if ip -n "$(netns alpha)" -6 route get 2001:db8::2 >/dev/null 2>&1; then fail "alpha has an IPv6 route"; fi
shimmed alpha "$PROGS/conn_checks" 2001:db8::2 7501 >"$WORK/checks.out" 2>&1 ||
	fail "IPv6 without a route: $(cat "$WORK/checks.out")"
log "IPv6 to 2001:db8::2 with no route: conn_checks pass over vsock"

ip -n "$(netns alpha)" link set eth0 down
shimmed alpha "$PROGS/echo_client" epoll 198.18.0.2 7501 500000 >"$WORK/client.out" ||
	fail "IPv4 with the interface down: $(cat "$WORK/client.out")"
join_bg server || fail "server: $(cat "$WORK/server.out")"
grep -q "peer=\[::ffff:198.18.0.1\]" "$WORK/server.out" || fail "server saw: $(cat "$WORK/server.out")"
grep -q "peer=\[2001:db8::1\]" "$WORK/server.out" || fail "server saw: $(cat "$WORK/server.out")"
log "IPv4 with alpha's only interface down: echo over vsock; server saw 2001:db8::1 and ::ffff:198.18.0.1"
