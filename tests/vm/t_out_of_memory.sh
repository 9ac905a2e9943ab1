# The swap onto the application's descriptor when the machine does not play along (issue
# 16, item 8): out of memory where the shim needs a slot of its descriptor table (tests/
# progs/failalloc.so makes the mmap of one table page fail): the client's connect and the
# server's accept fall back to TCP, and names and options are still TCP's (conn_checks).
# The plain build only: failalloc.so would mix allocators with a sanitizer's.
start_helperd alpha
start_helperd beta
PAGE_BYTES=32768 # 4096 slots of 8 bytes (shim/fdstate.c)
failures=() # every part runs; the test fails at the end if one did
# oom_check WHAT CLIENT_PRELOAD SERVER_PRELOAD PORT: conn_checks in alpha against an
# echo_server in beta, each under its preload.
oom_check() {
	local what=$1 client=$2 server=$3 port=$4
	start_bg server in_guest beta env LD_PRELOAD="$server" FAILALLOC_SIZE=$PAGE_BYTES \
		"$PROGS/echo_server" block "$port" 0.0.0.0 1
	wait_for "vsock listener" vsock_listening beta "$(vsock_port beta "$port")"
	if ! in_guest alpha env LD_PRELOAD="$client" FAILALLOC_SIZE=$PAGE_BYTES \
		"$PROGS/conn_checks" 198.18.0.2 "$port" >"$WORK/oom.out" 2>&1; then
		failures+=("$what: $(tail -n 5 "$WORK/oom.out")")
		stop_bg server
	elif ! join_bg server; then
		failures+=("$what: server: $(tail -n 5 "$WORK/server.out")")
	else
		log "$what: all checks pass"
	fi
}

[ -z "${ASAN_RUNTIME:-}" ] || fail "out of memory: the plain build only (failalloc.so would mix allocators)"
failing="$PROGS/failalloc.so $SHIM"
oom_check "client out of memory" "$failing" "$SHIM" 7401
oom_check "server out of memory" "$SHIM" "$failing" 7402
[ ${#failures[@]} = 0 ] || fail "$(printf '%s; ' "${failures[@]}")"
