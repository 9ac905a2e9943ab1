# Sibling connects in event loops and through signals (issue 16, items 4 and 7): beta's
# server is stopped, so that it accepts only about 1.2 s after alpha's client connects
# (connect-timeout is 2 s). A non-blocking connect() must return at once while a timerfd in
# the same loop keeps ticking (epoll level- and edge-triggered, added before or after
# connect(), poll, select), and then tell the truth; a blocking one interrupted by a handler
# says EINTR and goes on, and one through an SA_RESTART storm returns connected; a close()
# meanwhile never touches the file that takes the number; a server that dies before it
# accepts leaves the client TCP's answer (ECONNREFUSED). tests/progs/nb_connect checks each.
# Every case runs and reports; the test fails at the end if any did.
start_helperd alpha
start_helperd beta

# At real-time priority, so that the loop's gaps measure the shim, not the load of the test
# in the other lane (a gap of 117.9 ms under load once failed CI).
NB_CONNECT=(chrt -f 10 "$PROGS/nb_connect")

port=7400
srv=
failed=0

# serve_stopped: beta's echo server on the next port, stopped.
serve_stopped() {
	port=$((port + 1))
	start_bg server shimmed beta "$PROGS/echo_server" block "$port" 0.0.0.0 1
	wait_for "vsock listener" vsock_listening beta "$(vsock_port beta "$port")"
	srv=$(leaf_pid "$(cat "$WORK/server.pid")")
	kill -STOP "$srv"
}

bad() {
	log "FAIL: $*"
	failed=$((failed + 1))
}

# late MODE: nb_connect MODE against a server that accepts 1.2 s late; over vsock.
late() {
	local mode=$1 r0
	serve_stopped
	r0=$(counter alpha redirected)
	start_bg client shimmed alpha "${NB_CONNECT[@]}" "$mode" 198.18.0.2 "$port" 0
	sleep 1.2
	kill -CONT "$srv"
	if ! join_bg client 30; then
		bad "$mode: $(cat "$WORK/client.out")"
		stop_bg server
	elif ! join_bg server; then
		bad "$mode: server: $(cat "$WORK/server.out")"
	elif [ "$(($(counter alpha redirected) - r0))" != 1 ]; then
		bad "$mode: not over vsock: $(cat "$WORK/client.out")"
	else
		log "$(tail -n 1 "$WORK/client.out") (vsock)"
	fi
}

for mode in epoll epoll-et epoll-early poll select sig-intr sig-restart; do
	late "$mode"
done

# close() during the pending connect, and a file opened on the number.
serve_stopped
r0=$(counter alpha redirected)
start_bg client shimmed alpha "${NB_CONNECT[@]}" close-reuse 198.18.0.2 "$port" 0
sleep 1.2
kill -CONT "$srv"
if ! join_bg client 30; then
	bad "close-reuse: $(cat "$WORK/client.out")"
elif [ "$(($(counter alpha redirected) - r0))" != 0 ]; then
	bad "close-reuse: a connection was swapped in"
else
	log "$(tail -n 1 "$WORK/client.out")"
fi
stop_bg server # its only client went away before it accepted

# The server dies before it accepts: the sibling path fails, TCP finds no listener.
serve_stopped
f0=$(fallbacks alpha)
start_bg client shimmed alpha "${NB_CONNECT[@]}" epoll 198.18.0.2 "$port" ECONNREFUSED
sleep 0.5
kill -KILL "$srv"
if ! join_bg client 30; then
	bad "refused: $(cat "$WORK/client.out")"
elif [ "$(($(fallbacks alpha) - f0))" -lt 1 ]; then
	bad "refused: the shim counted no fallback: $(cat "$WORK/client.out")"
else
	log "server gone: $(tail -n 1 "$WORK/client.out") (after the sibling path failed)"
fi
join_bg server || true

[ "$failed" = 0 ] || fail "$failed cases failed"
