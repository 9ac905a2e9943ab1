# Every way a listener can wait for a sibling connection (blocking accept, poll, select,
# epoll level- and edge-triggered) crossed with every way a client can connect (blocking,
# non-blocking driven by epoll, added to epoll before connect): all over vsock, with a
# 1 MB echo checked byte for byte and both ends agreeing on the addresses.
start_helperd alpha
start_helperd beta
port=7100
for smode in block poll select epoll-lt epoll-et; do
	for cmode in block epoll epoll-early; do
		port=$((port + 1))
		start_bg server shimmed beta "$PROGS/echo_server" "$smode" "$port" 0.0.0.0 1
		wait_for "vsock listener" vsock_listening beta "$(vsock_port beta "$port")"
		before=$(veth_bytes alpha)
		shimmed alpha "$PROGS/echo_client" "$cmode" 198.18.0.2 "$port" 1000000 \
			>"$WORK/client.out" || fail "$smode/$cmode: client: $(cat "$WORK/client.out")"
		join_bg server || fail "$smode/$cmode: server: $(cat "$WORK/server.out")"
		moved=$(($(veth_bytes alpha) - before))
		[ "$moved" -lt 20000 ] || fail "$smode/$cmode: $moved bytes crossed the veth"
		names_agree "$WORK/client.out" "$WORK/server.out"
		[ "$(field "$WORK/client.out" connected peer)" = "198.18.0.2:$port" ] ||
			fail "$smode/$cmode: client's peer is not what it connected to"
	done
	log "$smode listener: block, epoll and epoll-early clients served over vsock"
done

# Four clients at once on an edge-triggered listener: each doorbell must be accepted.
start_bg server shimmed beta "$PROGS/echo_server" epoll-et 7200 0.0.0.0 4
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7200)"
for i in 1 2 3 4; do
	start_bg "client$i" shimmed alpha "$PROGS/echo_client" epoll 198.18.0.2 7200 300000
done
for i in 1 2 3 4; do
	join_bg "client$i" || fail "client $i: $(cat "$WORK/client$i.out")"
done
join_bg server || fail "server: $(cat "$WORK/server.out")"
[ "$(grep -c '^accepted bytes=300000' "$WORK/server.out")" = 4 ] || fail "not 4 echoes"
log "edge-triggered listener: 4 simultaneous sibling clients served"
