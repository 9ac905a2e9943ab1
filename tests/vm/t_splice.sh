# The relay's sockmap engine (relay/splice.c) on vsock loopback and unix pairs: on a kernel
# with vsock in sockmap (scripts/testvm --kernel 6.12) every splice check runs; on the stock
# 6.1 splice_add refuses vsock cleanly and the sockets still work. AF_UNIX is always refused.
"$PROGS/splice_check" vv:any vu:fallback uu:fallback >"$WORK/splice.out" 2>&1 ||
	fail "splice_check: $(cat "$WORK/splice.out")"
log "$(uname -r): $(grep -c '^    ok:' "$WORK/splice.out") splice checks passed; vsock pair $(grep -q 'spliced (id' "$WORK/splice.out" && echo spliced || echo 'not spliced (fallback)')"
