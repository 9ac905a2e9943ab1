# The sockmap engine (common/splice.c) on vsock loopback, TCP loopback and unix
# pairs: on a kernel with vsock in sockmap (scripts/testvm --kernel 6.12) every splice check
# runs, vsock to vsock and vsock to TCP both ways (the guest-wide bridge's pairs); on the
# stock 6.1 splice_add refuses vsock cleanly and the sockets still work. AF_UNIX is always
# refused.
expect=fallback
! kernel_at_least 6.12 || expect=splice # as t_relay: the kernel the engine was seen on
"$PROGS/splice_check" vv:$expect vt:$expect tv:$expect vu:fallback uu:fallback >"$WORK/splice.out" 2>&1 ||
	fail "splice_check: $(cat "$WORK/splice.out")"
# Its benchmark (bench/results/2026-12-07-splice-tcp), briefly, so that it cannot rot.
if [ $expect = splice ]; then
	"$PROGS/splice_check" bench 2 vt 1048576 >"$WORK/bench.out" 2>&1 ||
		fail "splice_check bench: $(cat "$WORK/bench.out")"
fi
log "$(uname -r): $(grep -c '^    ok:' "$WORK/splice.out") splice checks passed; pairs $(grep -c 'spliced (id' "$WORK/splice.out") of 3 spliced"
