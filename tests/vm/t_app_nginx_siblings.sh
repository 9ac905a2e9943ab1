# One nginx worker in alpha, under the shim, serves a static page to a local client (every
# 10 ms for 8 s) while a sibling in beta opens connections to it, at most 400 a second from
# 24 threads, for 6 s (issue 16, item 4, the server side): every sibling accept() of the
# worker's event loop. Reports the sibling accepts a second and the page's latencies, alone
# and under that load, for bench/README.md ("Event loops"); checks that every sibling
# connection was answered, every one over vsock.
start_helperd alpha
start_helperd beta
APPS=$TOP/tests/vm/apps
port=8092
mkdir -p "$WORK/www"
echo "static page" >"$WORK/www/index.html"
nginx_conf 1 "worker_connections 1024;" "\
    access_log off;
    server { listen $port; root $WORK/www; }"
start_bg nginx shimmed alpha nginx -c "$WORK/nginx.conf" -p "$WORK"
wait_for "nginx" vsock_listening alpha "$(vsock_port alpha "$port")"
in_guest alpha python3 -S "$APPS/static_latency.py" "$port" 3 >"$WORK/quiet.out" ||
	fail "static client: $(cat "$WORK/quiet.out")"
log "static page alone: $(tail -n 1 "$WORK/quiet.out")"
a0=$(counter alpha sibling_accepted)
r0=$(counter beta redirected)
start_bg latency in_guest alpha python3 -S "$APPS/static_latency.py" "$port" 8
sleep 1
shimmed beta python3 -S "$APPS/sibling_load.py" 198.18.0.1 "$port" 6 400 24 >"$WORK/load.out" 2>&1 ||
	fail "sibling load: $(cat "$WORK/load.out")"
join_bg latency 30 || fail "static client: $(cat "$WORK/latency.out")"
stop_bg nginx
accepted=$(($(counter alpha sibling_accepted) - a0))
redirected=$(($(counter beta redirected) - r0))
log "sibling: $(tail -n 1 "$WORK/load.out") ($accepted accepted by alpha's helperd, $redirected over vsock); static page meanwhile: $(tail -n 1 "$WORK/latency.out")"
grep -q "errors=0$" "$WORK/load.out" || fail "sibling connections failed: $(cat "$WORK/load.out")"
connections=$(sed -n 's/^connections=\([0-9]*\).*/\1/p' "$WORK/load.out")
# A helperd whose loop the load held up would miss announcements, and its peer's shims would
# send connections over TCP meanwhile.
[ "$redirected" = "$connections" ] ||
	fail "$connections sibling connections, only $redirected of them over vsock"
