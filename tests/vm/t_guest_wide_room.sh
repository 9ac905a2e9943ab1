# What one user or one sibling may hold of guest-wide mode's bridge (issue 18's security):
# alpha's helperd runs with 400 descriptors and without CAP_SYS_RESOURCE to raise them, as a
# unit with LimitNOFILE= and a bounded capability set would, so that its bridge has room for
# a few connections only. nobody, in alpha's cgroup, opens 200 connections to a sibling's
# echo server and holds them: it gets its share of the bridge and the rest go over TCP,
# every one answering; root's connection meanwhile still goes over vsock. Before the bridge
# had shares, nobody's connections took helperd's descriptors until it could accept no more,
# and its connections stalled. A sibling opening as many connections to a listener of
# alpha's without the shim is held to its share the same way: the rest fall back to TCP.
guest_wide_cgroups
HELPERD_ARGS=--guest-wide=$CG HELPERD_WRAP="prlimit --nofile=400:400 setpriv --bounding-set=-sys_resource" \
	start_helperd alpha
HELPERD_ARGS=--guest-wide=$CGB start_helperd beta
N=200
room=$(sed -n 's/.*the bridge has room for \([0-9]*\) connections, \([0-9]*\) per user.*/\1 \2/p' "$WORK/helperd-alpha.log")
[ -n "$room" ] || room="none 0" # a helperd that does not share its bridge
share=${room#* }
log "alpha's helperd with 400 descriptors: the bridge has room for ${room% *} connections, $share per user or sibling"
start_bg server shimmed beta "$PROGS/echo_server" epoll-lt 7961 0.0.0.0 1000
wait_for "alpha to know beta serves 7961" serves alpha beta 7961

# (a helperd without the counter says nothing: 0)
no_room() { local n; n=$(counter alpha bridge_no_room); echo "${n:-0}"; }

# hold GUEST HOW... -- ADDR PORT: hold_conns.py as HOW says, until $WORK/release.
hold() {
	rm -f "$WORK/release"
	start_bg holder "$@" python3 -S "$TOP/tests/vm/apps/hold_conns.py" "$HOST" "$PORT" "$N" "$WORK/release"
	held() { grep -q '^held\|^stalled' "$WORK/holder.out"; }
	wait_for "$N connections held" held
	grep -q "^held $N" "$WORK/holder.out" || fail "$WHO's $N connections: $(cat "$WORK/holder.out")"
}
release() {
	touch "$WORK/release"
	join_bg holder 70 || fail "$WHO's connections, answering again: $(cat "$WORK/holder.out")"
}

# nobody, in alpha's cgroup, to beta's server.
HOST=198.18.0.2 PORT=7961 WHO=nobody
nr0=$(no_room) v0=$(counter alpha bridged_vsock) veth0=$(veth_bytes alpha)
hold in_cg alpha setpriv --reuid=nobody --regid=nogroup --clear-groups
bridging=$(counter alpha bridging) left_tcp=$(($(no_room) - nr0))
by_nobody=$(($(counter alpha bridged_vsock) - v0))
[ "$bridging" -le "$share" ] || fail "nobody's $N connections: the bridge carries $bridging, more than a user's share ($share)"
[ "$left_tcp" -ge $((N - $share)) ] || fail "nobody's $N connections: only $left_tcp left on TCP for want of room"
# root's connection, in the same cgroup, while nobody holds its share.
got=$(in_cg alpha python3 -S -c '
import socket
s = socket.create_connection(("198.18.0.2", 7961), timeout=5)
s.sendall(b"root\n")
print(s.recv(10).decode().strip())
' 2>&1) || fail "root's connection while nobody holds its share: $got"
[ "$got" = root ] || fail "root's connection while nobody holds its share: echoed $got"
[ "$(($(counter alpha bridged_vsock) - v0))" -gt "$by_nobody" ] || fail "root's connection was not bridged over vsock while nobody held its share"
release
log "nobody's $N connections from alpha's cgroup: $by_nobody over vsock, $left_tcp left on TCP ($(($(veth_bytes alpha) - veth0)) bytes on the veth), all answering; the bridge carried $bridging; root's connection meanwhile over vsock"

# beta, a sibling, to a listener of alpha's without the shim.
start_bg alpha_server in_cg alpha "$PROGS/echo_server" epoll-lt 7962 0.0.0.0 1000
wait_for "beta to know alpha serves 7962" serves beta alpha 7962
HOST=198.18.0.1 PORT=7962 WHO=beta
a0=$(counter alpha sibling_accepted) busy0=$(counter alpha sibling_busy) fb0=$(fallbacks beta)
hold shimmed beta
accepted=$(($(counter alpha sibling_accepted) - a0)) busy=$(($(counter alpha sibling_busy) - busy0))
fell_back=$(($(fallbacks beta) - fb0)) bridging=$(counter alpha bridging)
[ "$bridging" -le "$share" ] || fail "beta's $N connections: alpha's bridge carries $bridging, more than a sibling's share ($share)"
[ "$busy" -ge $((N - $share)) ] || fail "beta's $N connections: alpha refused only $busy for want of room"
release
log "beta's $N connections to alpha's server without the shim: $accepted bridged, $busy refused for want of room, $fell_back fallbacks to TCP in beta, all answering"
stop_bg alpha_server
stop_bg server
