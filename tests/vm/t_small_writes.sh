# Many small writes into a reader that starts only once the writer is blocked or done (issue
# 16, item 1): over TCP, redirected directly, and through the relay by copies and (6.12) by the
# kernel's sockmap, every byte checked by tests/progs/small_writes. Linux 6.12.92 and later
# reset a vsock connection whose receiver holds more than buf_alloc / 576 packets
# (include/vmshim/vsockbuf.h): at vsock's default 256 KiB, 455 unread writes of 129 bytes.
# Up: alpha's client writes 129-byte writes (the least a packet carries) into beta's server,
# where no pattern may break: 1.29 MB directly and 2.58 MB through the relay, past all that
# the connection holds (the connecting end's 1 MiB window, and through the relay also the
# relay's copy buffer and the window beyond). Down: beta's server writes 4,000 x 100 bytes
# into alpha's client (1,334 packets), within the bound that way (1,820).
port=7610
cases=0
broke=0

# one_case NAME HOW WRITER COUNT SIZE [RCVBUF]: HOW is tcp or shim; WRITER is client (up) or
# server (down); the reader sets SO_RCVBUF to RCVBUF, if given.
one_case() {
	local name=$1 how=$2 writer=$3 count=$4 size=$5 rcvbuf=${6:-} run=shimmed flag rc=0
	local -a server client
	port=$((port + 1))
	cases=$((cases + 1))
	flag=$WORK/small-writes-flag-$port
	[ "$how" = shim ] || run=in_guest
	if [ "$writer" = client ]; then
		client=(write "$count" "$size" "$flag")
		server=(read "$flag" $rcvbuf)
	else
		client=(read "$flag" $rcvbuf)
		server=(write "$count" "$size" "$flag")
	fi
	start_bg sw-server "$run" beta "$PROGS/small_writes" serve "$port" "${server[@]}"
	if [ "$how" = shim ]; then
		wait_for "beta's listener on $port" vsock_listening beta "$(vsock_port beta "$port")"
	else
		wait_for "beta's listener on $port" tcp_listening beta "$port"
	fi
	"$run" alpha timeout 60 "$PROGS/small_writes" call 198.18.0.2 "$port" "${client[@]}" \
		>"$WORK/sw-client.out" 2>&1 || rc=$?
	join_bg sw-server 60 || rc=$?
	if [ "$rc" -eq 0 ]; then
		log "$name: $(cat "$WORK/sw-client.out" "$WORK/sw-server.out" | tr '\n' ';')"
	else
		broke=$((broke + 1))
		log "BROKE $name: client: $(tr '\n' ' ' <"$WORK/sw-client.out") server: $(tr '\n' ' ' <"$WORK/sw-server.out")"
	fi
}

# both_ways LABEL HOW UP_COUNT: the up case (UP_COUNT writes of 129 bytes) and the down case.
both_ways() {
	one_case "$1, up, $3 x 129 B" "$2" client "$3" 129
	one_case "$1, down, 4000 x 100 B" "$2" server 4000 100
}

both_ways "TCP" tcp 10000

start_helperd alpha
start_helperd beta
r0=$(counter alpha redirected)
both_ways "redirected" shim 10000
one_case "redirected, up, 200000 x 1 B" shim client 200000 1
# A server's SO_RCVBUF must not shrink the vsock buffer that admits the window.
one_case "redirected, up, 20000 x 100 B, reader's SO_RCVBUF 64 KiB" shim client 20000 100 65536
[ "$(counter alpha redirected)" -ge $((r0 + 4)) ] || fail "the cases were not redirected"

# Through the relay: the guests' policy says `via relay`.
stop_helperd alpha
stop_helperd beta
write_relay_policy
write_host_policy "$WORK/relay.policy"
# relay_cases LABEL [RELAY_OPTION]: both ways through a relay started with RELAY_OPTION.
relay_cases() {
	local n0
	start_relay "$WORK/relay.policy" "${@:2}"
	start_helperd alpha
	start_helperd beta
	[ $# -gt 1 ] || [ "$(relay_value 'd["forwarding"]')" = sockmap ] ||
		fail "$1: the relay forwards by $(relay_value 'd["forwarding"]')"
	n0=$(relayed_total)
	both_ways "$1" shim 20000
	[ "$(relayed_total)" -ge $((n0 + 2)) ] || fail "$1: the cases did not go through the relay"
	stop_helperd alpha
	stop_helperd beta
	stop_relay
}
relay_cases "relay by copies" --copy
if kernel_at_least 6.12; then
	relay_cases "relay by sockmap"
fi

[ "$broke" -eq 0 ] || fail "$broke of $cases cases broke on $(uname -r)"
log "$cases cases intact on $(uname -r)"
