# The swap onto the application's descriptor when another thread closes it (issue 16, item
# 6): close() during a sibling connect(), the number taken at once by a file (tests/progs/
# close_race): the file keeps its number. Out of memory at the swap: t_out_of_memory.
start_helperd alpha
start_helperd beta
failures=() # every part runs; the test fails at the end if one did

start_bg server shimmed beta "$PROGS/stress" server 7403 300
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7403)"
before=$(counter alpha redirected)
if shimmed alpha "$PROGS/close_race" 198.18.0.2 7403 300 >"$WORK/race.out" 2>&1; then
	log "close during connect: $(sed -n 's/^ok: //p' "$WORK/race.out"); $(($(counter alpha redirected) - before)) redirected"
else
	failures+=("close during connect: $(tail -n 3 "$WORK/race.out")")
fi
stop_bg server
[ ${#failures[@]} = 0 ] || fail "$(printf '%s; ' "${failures[@]}")"
