# nginx with 4 worker processes in beta, under the shim, with accept_mutex on, off, and with
# reuseport; wrk (keep-alive, 3 s) against a small page and curl fetching a 16 MiB file
# byte-identical from alpha. The access log shows the sibling's address.
start_helperd alpha
start_helperd beta
mkdir -p "$WORK/www"
echo "hello from beta" >"$WORK/www/index.html"
head -c $((16 << 20)) /dev/urandom >"$WORK/www/large"

port=8080
workers() { [ "$(children "$master" | wc -l)" = "$1" ]; }
nginx_gone() {
	local p
	for p in $nginx_pids; do
		! kill -0 "$p" 2>/dev/null || return 1
	done
}
for variant in "accept_mutex on" "accept_mutex off" "reuseport"; do
	port=$((port + 1))
	mutex=off listen_opts=""
	[ "$variant" = "accept_mutex on" ] && mutex=on
	[ "$variant" = reuseport ] && listen_opts=reuseport
	nginx_conf 4 "worker_connections 256; accept_mutex $mutex;" "\
    access_log $WORK/access.log;
    sendfile on;
    server { listen $port $listen_opts; root $WORK/www; }"
	: >"$WORK/access.log"
	start_bg nginx shimmed beta nginx -c "$WORK/nginx.conf" -p "$WORK"
	wait_for "nginx ($variant)" vsock_listening beta "$(vsock_port beta "$port")"
	# this nginx's own: another lane may run an nginx too (tests/vm/lanes). nginx.pid names
	# the master (nginx_conf); the workers come after the listener.
	master=$(cat "$WORK/nginx.pid")
	wait_for "4 workers" workers 4
	nginx_pids="$master $(children "$master" | tr '\n' ' ')"
	before=$(veth_bytes alpha)

	timeout 60 env VMSHIM_RUNDIR="$(rundir alpha)" LD_PRELOAD="$SHIM_PRELOAD" \
		ip netns exec "$(netns alpha)" wrk -t 2 -c 20 -d 3s "http://198.18.0.2:$port/" >"$WORK/wrk.out" 2>&1 ||
		fail "$variant: wrk: $(cat "$WORK/wrk.out")"
	requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
	[ "${requests:-0}" -gt 20 ] || fail "$variant: wrk: $(cat "$WORK/wrk.out")"
	if grep -Eq "Socket errors|Non-2xx" "$WORK/wrk.out"; then fail "$variant: $(cat "$WORK/wrk.out")"; fi
	http_get alpha "http://198.18.0.2:$port/large" "$WORK/got" LD_PRELOAD="$SHIM_PRELOAD" >/dev/null
	cmp -s "$WORK/got" "$WORK/www/large" || fail "$variant: the large file differs"
	moved=$(($(veth_bytes alpha) - before))
	[ "$moved" -lt 100000 ] || fail "$variant: $moved bytes crossed alpha's veth"
	grep -q "^198.18.0.1 " "$WORK/access.log" || fail "$variant: access log: $(head -2 "$WORK/access.log")"
	log "$variant: wrk $requests requests in 3 s, no errors; 16 MiB identical; veth $moved bytes"
	stop_bg nginx
	wait_for "nginx to stop" nginx_gone
done
