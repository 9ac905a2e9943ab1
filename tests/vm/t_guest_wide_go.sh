# Guest-wide mode with Go (issue 18): Go's net package makes its own system calls, so no
# preload sees a Go program. A static Go client (net/http, CGO_ENABLED=0) in alpha's cgroup
# of the mode fetches 8 MiB from a static Go net/http server in beta's: over vsock (alpha's
# veth quiet, `ss --vsock` sees it), the bytes identical, and each side's names, as Go reads
# them from the kernel, are TCP's. The same client outside the cgroup goes over TCP.
guest_wide_cgroups
HELPERD_ARGS=--guest-wide=$CG start_helperd alpha
HELPERD_ARGS=--guest-wide=$CGB start_helperd beta
head -c $((8 << 20)) /dev/urandom >"$WORK/big"
want=$(sha256sum <"$WORK/big" | cut -d' ' -f1)
start_bg server in_cg beta "$PROGS/gwnet" server 7960 "$WORK/big"
wait_for "beta to offer the Go server's port" serves alpha beta 7960

# go_get HOW: the Go client in alpha (HOW in_cg or in_guest); checks the bytes and sets
# moved (bytes on alpha's veth meanwhile).
go_get() {
	local before
	before=$(veth_bytes alpha)
	$1 alpha "$PROGS/gwnet" client 198.18.0.2:7960 >"$WORK/go.out" 2>&1 || fail "Go client ($1): $(cat "$WORK/go.out")"
	moved=$(($(veth_bytes alpha) - before))
	grep -qx "ok $want $((8 << 20))" "$WORK/go.out" || fail "Go client ($1): $(cat "$WORK/go.out"), want $want"
}

start_bg sampler sample_vsock beta "$(vsock_port beta 7960)" "$WORK/seen"
go_get in_cg
stop_bg sampler
[ "$moved" -lt 100000 ] || fail "the Go client in the cgroup: $moved bytes crossed alpha's veth"
grep -q . "$WORK/seen" || fail "ss --vsock never saw a connection to beta's port"
names=$(sed -n 's/^names //p' "$WORK/go.out")
server=$(sed -n 's/^server //p' "$WORK/go.out")
[[ $names =~ ^local=198\.18\.0\.1:([0-9]+)\ peer=198\.18\.0\.2:7960$ ]] || fail "the Go client's names: $names"
[[ $server =~ ^peer=198\.18\.0\.1:[0-9]+\ local=198\.18\.0\.2:7960$ ]] || fail "the Go server's names: $server"
log "Go net/http, static, both ends without the shim: 8 MiB over vsock ($moved bytes on the veth), identical; the client's names $names; the server's $server"

go_get in_guest
[ "$moved" -gt $((8 << 20)) ] || fail "the Go client outside the cgroup: only $moved bytes crossed the veth"
log "the Go client outside the cgroup: TCP ($moved bytes on the veth)"
