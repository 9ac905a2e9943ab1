# Half-close: `nc -N` sends a file, shuts down its write side, and reads the whole reply
# (here the SHA-256 of what the server read) over vsock. And a static binary that makes raw
# system calls (the shim cannot see it) keeps working, over plain TCP, against the same
# shimmed listener.
start_helperd alpha
start_helperd beta
start_bg server shimmed beta python3 -S "$TOP/tests/vm/apps/pyserve.py" threading-server 7951 2
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7951)"

head -c 3000000 /dev/urandom >"$WORK/file"
want=$(sha256sum <"$WORK/file" | cut -d' ' -f1)
before=$(veth_bytes alpha)
answer=$(shimmed alpha nc -N 198.18.0.2 7951 <"$WORK/file") || fail "nc -N failed"
moved=$(($(veth_bytes alpha) - before))
[ "${answer%% *}" = "$want" ] || fail "nc -N: server read $answer, want $want"
[ "$moved" -lt 20000 ] || fail "nc -N: $moved bytes crossed alpha's veth"
log "nc -N: 3 MB sent, write side shut, reply read over vsock; digests match"

before=$(veth_bytes alpha)
shimmed alpha "$PROGS/raw_static" 198.18.0.2 7951 1000000 >"$WORK/raw.out" ||
	fail "static binary: $(cat "$WORK/raw.out")"
moved=$(($(veth_bytes alpha) - before))
[ "$moved" -gt 1000000 ] || fail "the static binary's bytes did not cross the veth ($moved)"
# pyserve answers with the SHA-256 of what it read: the pattern of tests/progs/progs.h.
want=$(python3 -S -c 'import hashlib; print(hashlib.sha256(bytes(((i * 2654435761) >> 13) & 255 for i in range(1000000))).hexdigest())')
grep -q "^ok $want " "$WORK/raw.out" || fail "static binary: server read $(cat "$WORK/raw.out"), want $want"
log "static binary with raw system calls under LD_PRELOAD: plain TCP, $moved bytes on the veth; digest matches"
