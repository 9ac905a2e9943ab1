# The shim's calls from many threads at once (tests/progs/threads.c), with the build under
# test and, when there is one, with the ThreadSanitizer build (build-tsan: make TSAN=1).
# One program in alpha and one in beta: threads accept on a shared listener while others
# connect to the other guest (redirected) and to gamma (not in the policy: plain TCP), in
# each way an event loop does, with dup/F_DUPFD_CLOEXEC/dup3/dup2, close, names and TCP
# options on every connection (also set by another thread while it is in use), and every
# echo checked. The shims' counters show exactly
# the sibling connections redirected and none fallen back. A ThreadSanitizer report fails
# the test (tests/vm/run looks for one in every output).
rounds=30 # per connecting thread; two threads to each target
start_helperd alpha
start_helperd beta
start_bg remote in_guest gamma "$PROGS/stress" server 7600 900

# run_threads NAME WHAT PRELOAD PROGS PORT: the threads program of PROGS in alpha and in
# beta (jobs NAME-alpha and NAME-beta), under the shim(s) in PRELOAD, listening on PORT.
runs=0
run_threads() {
	local name=$1 what=$2 preload=$3 progs=$4 port=$5 g other before=()
	for g in alpha beta; do
		before+=("$(counter "$g" redirected)" "$(counter "$g" sibling_accepted)" "$(fallbacks "$g")")
	done
	rm -f "$WORK/go"
	for g in alpha beta; do
		other=alpha
		[ "$g" = beta ] || other=beta
		start_bg "$name-$g" in_guest "$g" env LD_PRELOAD="$preload" "$progs/threads" "$port" \
			$((2 * rounds)) "$rounds" "${ADDR[$other]}:$port" "${ADDR[gamma]}:7600" "$WORK/go"
	done
	for g in alpha beta; do
		wait_for "$what: $g's listener on vsock" vsock_listening "$g" "$(vsock_port "$g" "$port")"
	done
	touch "$WORK/go"
	for g in alpha beta; do
		join_bg "$name-$g" 240 || fail "$what in $g: $(tail -n 5 "$WORK/$name-$g.out")"
		grep -q '^ok: ' "$WORK/$name-$g.out" || fail "$what in $g: $(cat "$WORK/$name-$g.out")"
	done
	local i=0 redirected accepted fell_back
	for g in alpha beta; do
		redirected=$(($(counter "$g" redirected) - before[i]))
		accepted=$(($(counter "$g" sibling_accepted) - before[i + 1]))
		fell_back=$(($(fallbacks "$g") - before[i + 2]))
		[ "$redirected" = $((2 * rounds)) ] && [ "$accepted" = $((2 * rounds)) ] &&
			[ "$fell_back" = 0 ] ||
			fail "$what in $g: $redirected redirected, $accepted accepted, $fell_back fallbacks; $((2 * rounds)) each expected, no fallback"
		i=$((i + 3))
	done
	runs=$((runs + 1))
	log "$what: $(sed -n 's/^ok: //p' "$WORK/$name-alpha.out") (alpha), the same from beta; $((2 * rounds)) redirected and $((2 * rounds)) accepted in each guest, no fallback"
}

run_threads plain "$BUILD" "$SHIM_PRELOAD" "$PROGS" 7601
tsan=$TOP/build-tsan
if [ "$BUILD" = build-tsan ]; then
	log "the build under test is the ThreadSanitizer build"
elif [ -x "$tsan/progs/threads" ] && [ -f "$tsan/libvmshim.so" ]; then
	# The program links the TSan runtime itself; only the shim is preloaded.
	run_threads tsan "build-tsan (ThreadSanitizer)" "$tsan/libvmshim.so" "$tsan/progs" 7602
else
	log "no build-tsan (make TSAN=1): no ThreadSanitizer run"
fi

stop_bg remote
served=$(sed -n 's/^served \([0-9]*\) connections.*/\1/p' "$WORK/remote.out")
[ "$served" = $((runs * 4 * rounds)) ] || fail "gamma: $(tail -n 1 "$WORK/remote.out")"
log "gamma served the $served plain TCP connections"
