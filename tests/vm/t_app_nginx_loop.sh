# One nginx worker in alpha, under the shim, serves a static page and proxies /up to an
# upstream in beta (the sibling) that accepts each connection 1 s after it arrives (issue
# 16, item 4). A client fetches the static page every 10 ms for 6 s while /up is asked 4
# times, 1.5 s apart (after 3 s of the page alone, for comparison): the page's latency must not follow the upstream's accept delay (the
# worker's non-blocking connect to the sibling must not block it). The figures go to
# bench/README.md ("Event loops").
start_helperd alpha
start_helperd beta
APPS=$TOP/tests/vm/apps
mkdir -p "$WORK/www"
echo "static page" >"$WORK/www/index.html"
nginx_conf 1 "worker_connections 256;" "\
    access_log off;
    server {
        listen 127.0.0.1:8090;
        root $WORK/www;
        location /up { proxy_pass http://198.18.0.2:7500; proxy_connect_timeout 10s; }
    }"
start_bg upstream shimmed beta python3 -S "$APPS/slow_upstream.py" 7500 1.0 4
wait_for "the upstream" vsock_listening beta "$(vsock_port beta 7500)"
start_bg nginx shimmed alpha nginx -c "$WORK/nginx.conf" -p "$WORK"
wait_for "nginx" tcp_listening alpha 8090
in_guest alpha python3 -S "$APPS/static_latency.py" 8090 3 >"$WORK/quiet.out" ||
	fail "static client: $(cat "$WORK/quiet.out")"
log "static page alone: $(tail -n 1 "$WORK/quiet.out")"
r0=$(counter alpha redirected)
start_bg latency in_guest alpha python3 -S "$APPS/static_latency.py" 8090 6
for i in 1 2 3 4; do
	in_guest alpha curl -s -m 20 -o /dev/null -w '%{http_code} %{time_total}\n' \
		http://127.0.0.1:8090/up >>"$WORK/up.out" &
	sleep 1.5
done
wait_for "the /up requests" sh -c "[ \$(wc -l <'$WORK/up.out') = 4 ]"
join_bg latency 30 || fail "static client: $(cat "$WORK/latency.out")"
join_bg upstream 10 || fail "upstream: $(cat "$WORK/upstream.out")"
stop_bg nginx
figures=$(tail -n 1 "$WORK/latency.out")
ups=$(awk '{printf "%s %.2f s; ", $1, $2}' "$WORK/up.out")
redirected=$(($(counter alpha redirected) - r0))
log "static page while /up waits 1 s for the sibling's accept: $figures; /up: $ups$redirected over vsock"
[ "$(grep -c '^200 ' "$WORK/up.out")" = 4 ] || fail "/up did not answer 200 four times: $ups"
[ "$redirected" = 4 ] || fail "/up went over vsock $redirected times, not 4"
max=$(sed -n 's/.*max_ms=\([0-9]*\).*/\1/p' <<<"$figures")
# Far below the accept delay, above the noise of the page alone (up to 82 ms seen under TCG).
[ "${max:-1000}" -lt 300 ] || fail "the worker stalled: $figures"
