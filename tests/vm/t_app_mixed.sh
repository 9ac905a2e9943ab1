# One listener, two kinds of clients at once: while a sibling (alpha) holds a connection over
# vsock in the middle of a transfer, a host the policy does not list (gamma) connects to the
# same listener over TCP and is served; then the sibling's transfer completes. Both echoes
# are checked byte for byte.
start_helperd alpha
start_helperd beta
start_bg server shimmed beta "$PROGS/echo_server" epoll-lt 7901 0.0.0.0 2
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7901)"

a_before=$(veth_bytes alpha)
start_bg sibling shimmed alpha python3 -S "$TOP/tests/vm/apps/hold_client.py" 198.18.0.2 7901 \
	2000000 "$WORK/go"
wait_for "the sibling's connection" grep -q connected "$WORK/sibling.out"
ss_in alpha -Hn --vsock state established | grep -q ":$(vsock_port beta 7901)" ||
	fail "the sibling's connection is not a vsock connection"

g_before=$(veth_bytes gamma)
shimmed gamma "$PROGS/echo_client" block 198.18.0.2 7901 1000000 >"$WORK/gamma.out" ||
	fail "gamma: $(cat "$WORK/gamma.out")"
g_moved=$(($(veth_bytes gamma) - g_before))
[ "$g_moved" -gt 2000000 ] || fail "gamma's echo did not cross its veth ($g_moved bytes)"

touch "$WORK/go"
join_bg sibling || fail "sibling: $(cat "$WORK/sibling.out")"
join_bg server || fail "server: $(cat "$WORK/server.out")"
a_moved=$(($(veth_bytes alpha) - a_before))
[ "$a_moved" -lt 50000 ] || fail "the sibling's transfer crossed alpha's veth ($a_moved bytes)"
grep -q "^accepted bytes=1000000 .* peer=198.18.0.3:" "$WORK/server.out" || fail "$(cat "$WORK/server.out")"
grep -q "^accepted bytes=2000000 .* peer=198.18.0.1:" "$WORK/server.out" || fail "$(cat "$WORK/server.out")"
log "gamma over TCP ($g_moved bytes on its veth) while alpha's vsock connection was open; both echoes intact"
