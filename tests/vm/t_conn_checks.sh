# tests/progs/conn_checks over a sibling connection: options set before connect survive
# the swap, TCP-level options answer as TCP's, names are what was asked for, and dup, dup2,
# F_DUPFD_CLOEXEC, fork and close keep all of that right. IPv4 on an AF_INET socket, and
# IPv4-mapped on an AF_INET6 socket to a dual-stack listener.
start_helperd alpha
start_helperd beta

check() {
	local what=$1 bind=$2 host=$3 port=$4 before moved
	start_bg server shimmed beta "$PROGS/echo_server" block "$port" "$bind" 1
	wait_for "vsock listener" vsock_listening beta "$(vsock_port beta "$port")"
	before=$(veth_bytes alpha)
	shimmed alpha "$PROGS/conn_checks" "$host" "$port" >"$WORK/checks.out" 2>&1 ||
		fail "$what: $(cat "$WORK/checks.out")"
	join_bg server || fail "$what: server: $(cat "$WORK/server.out")"
	moved=$(($(veth_bytes alpha) - before))
	[ "$moved" -lt 20000 ] || fail "$what: $moved bytes crossed the veth"
	log "$what: all checks pass over vsock"
}

check "IPv4" 0.0.0.0 198.18.0.2 7301
check "IPv4-mapped, dual-stack listener" :: ::ffff:198.18.0.2 7302

# sendto(MSG_FASTOPEN) connects too; and four threads of one process connecting at once.
start_bg server shimmed beta "$PROGS/echo_server" epoll-et 7303 0.0.0.0 5
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7303)"
before=$(veth_bytes alpha)
shimmed alpha "$PROGS/echo_client" fastopen 198.18.0.2 7303 200000 >"$WORK/fo.out" ||
	fail "fastopen: $(cat "$WORK/fo.out")"
shimmed alpha "$PROGS/echo_client" threads 198.18.0.2 7303 400000 >"$WORK/th.out" ||
	fail "threads: $(cat "$WORK/th.out")"
join_bg server || fail "server: $(cat "$WORK/server.out")"
moved=$(($(veth_bytes alpha) - before))
[ "$moved" -lt 20000 ] || fail "fastopen/threads: $moved bytes crossed the veth"
[ "$(grep -c '^accepted' "$WORK/server.out")" = 5 ] || fail "server: $(cat "$WORK/server.out")"
log "sendto(MSG_FASTOPEN) and 4 threads connecting at once: over vsock"
