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
