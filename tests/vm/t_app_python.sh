# Python's own servers under the shim, a sibling client connecting over vsock: an asyncio
# server (epoll), socketserver.ThreadingTCPServer, and socketserver.ForkingTCPServer (a child
# per connection, the listener shared by parent and children). The client is asyncio too,
# with 8 connections at once; every answer carries the SHA-256 of what was sent.
start_helperd alpha
start_helperd beta
app="$TOP/tests/vm/apps/pyserve.py"
port=7800
for server in asyncio threading forking; do
	port=$((port + 1))
	start_bg server shimmed beta python3 -S "$app" "$server-server" "$port" 8
	wait_for "$server server" vsock_listening beta "$(vsock_port beta "$port")"
	before=$(veth_bytes alpha)
	shimmed alpha python3 -S "$app" asyncio-client 198.18.0.2 "$port" 8 200000 >"$WORK/client.out" ||
		fail "$server: $(cat "$WORK/client.out")"
	join_bg server || fail "$server server: $(cat "$WORK/server.out")"
	moved=$(($(veth_bytes alpha) - before))
	[ "$moved" -lt 20000 ] || fail "$server: $moved bytes crossed the veth"
	grep -q "^ok 8 connections, server saw 198.18.0.1," "$WORK/client.out" ||
		fail "$server: $(cat "$WORK/client.out")"
	log "$server: $(cat "$WORK/client.out")"
done
