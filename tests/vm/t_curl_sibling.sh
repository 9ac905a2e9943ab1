# curl in alpha fetches 12 MiB from python3 -m http.server in beta, both under the shim:
# the file arrives byte-identical, `ss --vsock` sees the connection, and alpha's network
# interface carries almost nothing of it. curl takes at most 8 MB/s, so that the connection
# lasts about 1.6 s: at full speed the sampler (an `ip netns exec` and an `ss` a look, about
# 0.1 s here) missed it in CI-92.
start_helperd alpha
start_helperd beta
mkdir -p "$WORK/www"
head -c $((12 << 20)) /dev/urandom >"$WORK/www/big"
vport=$(vsock_port beta 8080)

start_bg server shimmed beta python3 -S -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www"
wait_for "http.server in beta" tcp_listening beta 8080
wait_for "beta's vsock listener $vport" vsock_listening beta "$vport"

before=$(veth_bytes alpha)
start_bg sampler sample_vsock alpha "$vport" "$WORK/seen"
HTTP_GET_LIMIT=8000000 http_get alpha http://198.18.0.2:8080/big "$WORK/got" LD_PRELOAD="$SHIM_PRELOAD" >"$WORK/rate"
stop_bg sampler
moved=$(($(veth_bytes alpha) - before))

cmp -s "$WORK/www/big" "$WORK/got" || fail "the file differs"
grep -q . "$WORK/seen" || fail "ss --vsock never saw a connection to port $vport"
[ "$moved" -lt 200000 ] || fail "alpha's interface carried $moved bytes"
log "12 MiB byte-identical, $(cat "$WORK/rate") B/s; veth carried $moved bytes"
log "ss --vsock: $(sort -u "$WORK/seen" | head -n 1 | tr -s ' ')"
