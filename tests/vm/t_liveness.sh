# alone: the liveness timeout is timed to the millisecond, with nothing else on the VM's CPUs
#
# The default liveness timeout (3 s, not the 6 s of the other tests' policy), with three
# guests; the rest of discovery and liveness is t_discovery's.
BASE[gamma]=$((3000000 + LANE_PORTS))
guest_policy alpha beta gamma | grep -v '^liveness-timeout' >"$POLICY"
for g in alpha beta gamma; do
	start_helperd "$g"
done
start_bg served shimmed beta "$PROGS/echo_server" epoll-lt 7000 0.0.0.0 1
wait_for "alpha to learn beta serves 7000" serves alpha beta 7000

# A helperd that stops answering (SIGSTOP: its connections stay open) is dropped by the
# liveness timeout (3 s by default); new connections to its guest go over TCP.
beta_helperd=$(leaf_pid "$(cat "$WORK/helperd-beta.pid")")
kill -STOP "$beta_helperd"
stopped=$(date +%s%3N)
wait_for "alpha to drop beta" status_check alpha 'peer("beta")["state"] == "down"'
# When alpha dropped beta: its status says how long ago, when it answered.
ms=$(status_json alpha | python3 -S -c 'import json, sys, time
d = json.load(sys.stdin)
now = int(time.clock_gettime(time.CLOCK_REALTIME) * 1000)
print(now - next(p for p in d["peers"] if p["name"] == "beta")["state_for_ms"] - int(sys.argv[1]))' "$stopped")
[ "$ms" -le 3000 ] || fail "beta dropped $ms ms after it stopped"
status_check alpha 'peer("gamma")["state"] == "up"' || fail "gamma dropped too"
before=$(veth_bytes alpha)
shimmed alpha env VMSHIM_DEBUG=1 "$PROGS/echo_client" block 198.18.0.2 7000 100000 \
	>"$WORK/c3.out" 2>&1 || fail "client while beta is silent: $(cat "$WORK/c3.out")"
if grep -q "sibling cid" "$WORK/c3.out"; then fail "a vsock attempt to a silent peer: $(grep sibling "$WORK/c3.out")"; fi
[ $(($(veth_bytes alpha) - before)) -gt 200000 ] || fail "the bytes did not cross the veth"
log "beta's helperd stopped: dropped by alpha $ms ms later (timeout 3000 ms); its address went to TCP"
kill -CONT "$beta_helperd"
wait_for "alpha to take beta back" peer_up alpha beta
log "beta's helperd continued: alpha took it back"
stop_bg served
