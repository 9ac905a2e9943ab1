# close() and the dup family in a signal handler (they are async-signal-safe) while the
# interrupted thread is in malloc, in a sibling connect() or in dup/close itself
# (tests/progs/sigsafe, issue 16): no deadlock (the program's watchdog), no descriptor the
# handler replaced overwritten by the swap, every echo right.
start_helperd alpha
start_helperd beta
port=7420
start_bg server shimmed beta "$PROGS/stress" server "$port" 60
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta "$port")"
before=$(counter alpha redirected)
status=0
shimmed alpha "$PROGS/sigsafe" 198.18.0.2 "$port" 5 >"$WORK/sigsafe.out" 2>&1 || status=$?
redirected=$(($(counter alpha redirected) - before))
stop_bg server
log "$(tail -n 3 "$WORK/sigsafe.out"); $redirected redirected"
[ "$status" = 0 ] || fail "sigsafe exited with $status"
# the kept connection, and at least one of the loop's (a swap the signals may interrupt)
[ "$redirected" -gt 1 ] || fail "$redirected connections redirected: the swap was not tried"
