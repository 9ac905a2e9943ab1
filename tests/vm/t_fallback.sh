# Whenever the sibling path is not certain, the answer is plain TCP, and it works:
# (1) a destination outside the policy, (2) a sibling whose server runs without the shim,
# (3) the client's helperd stopped, (4) the client's helperd killed, its table left stale.
bytes=3000000

# Runs echo_client from alpha to HOST:PORT and checks that the bytes crossed the veth.
expect_tcp() {
	local what=$1 host=$2 port=$3 before moved
	before=$(veth_bytes alpha)
	shimmed alpha "$PROGS/echo_client" block "$host" "$port" "$bytes" >"$WORK/client.out" ||
		fail "$what: the client failed: $(cat "$WORK/client.out")"
	moved=$(($(veth_bytes alpha) - before))
	[ "$moved" -gt $((2 * bytes)) ] || fail "$what: only $moved bytes crossed the veth"
	if ss_in alpha -Hnp --vsock | grep -v '"helperd"' | grep -q .; then
		fail "$what: a vsock socket exists"
	fi
	log "$what: plain TCP, $moved bytes on the veth"
}

start_helperd alpha
start_helperd beta

start_bg gamma shimmed gamma "$PROGS/echo_server" block 7000 0.0.0.0 1
wait_for "gamma's server" tcp_listening gamma 7000
expect_tcp "gamma, outside the policy" 198.18.0.3 7000

start_bg plain in_guest beta "$PROGS/echo_server" block 7001 0.0.0.0 1
wait_for "beta's unshimmed server" tcp_listening beta 7001
expect_tcp "beta without the shim" 198.18.0.2 7001

stop_helperd alpha
start_bg s3 shimmed beta "$PROGS/echo_server" block 7002 0.0.0.0 1
wait_for "beta's server" vsock_listening beta "$(vsock_port beta 7002)"
expect_tcp "alpha's helperd stopped" 198.18.0.2 7002

start_helperd alpha
stop_helperd alpha KILL
sleep 6 # the table goes stale after five missed heartbeats
start_bg s4 shimmed beta "$PROGS/echo_server" block 7003 0.0.0.0 1
wait_for "beta's server" vsock_listening beta "$(vsock_port beta 7003)"
expect_tcp "alpha's helperd killed" 198.18.0.2 7003
