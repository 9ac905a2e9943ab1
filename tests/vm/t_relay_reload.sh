# vmshim-relay reloads its host policy on SIGHUP and when its file changes, as helperd does
# (README, "Host side"): a new policy applies to new requests at once; a session it no
# longer grants is closed, an unrelated one goes on byte-intact; caps apply to new
# connections; a port change is kept for a restart; a broken or deleted file is refused
# with its file and line and the policy in force stays.
write_relay_policy
HOST_POLICY=$WORK/relay.policy
write_host_policy "$HOST_POLICY"
start_relay "$HOST_POLICY"
start_helperd alpha
start_helperd beta
for port in 7700 7701; do
	start_bg "server$port" shimmed beta "$PROGS/echo_server" epoll-lt "$port" 0.0.0.0 100
	wait_for "echo server on $port" vsock_listening beta "$(vsock_port beta "$port")"
done

# The policy file has a second name in another directory: written through it, the relay's
# watch on the first one's directory sees nothing, so only SIGHUP can make it reload.
mkdir -p "$WORK/quiet"
ln -f "$HOST_POLICY" "$WORK/quiet/relay.policy"
# quiet_write [SETTINGS...]: write_host_policy's policy, written in place through that name;
# PORT, if set, for the relay's port.
quiet_write() {
	write_host_policy "$WORK/next.policy" "$@"
	sed "s/^port $RELAY_PORT\$/port ${PORT:-$RELAY_PORT}/" "$WORK/next.policy" >"$WORK/quiet/relay.policy"
	sleep 1
	[ "$(reloads)" = "$r0" ] || fail "the relay reloaded a file written through another directory"
}
reloads() { relay_value 'd["reloads"]'; }
refused_reloads() { relay_value 'd["reloads_refused"]'; }
# reload_by_signal: SIGHUP to the relay; waits until it says it reloaded or refused.
reload_by_signal() {
	local before=$(($(reloads) + $(refused_reloads)))
	kill -HUP "$(leaf_pid "$(cat "$WORK/relay.pid")")"
	wait_for "the relay's reload" reloaded_since "$before"
}
reloaded_since() { [ $(($(reloads) + $(refused_reloads))) -gt "$1" ]; }
reloads_reach() { [ "$(reloads)" -ge "$1" ]; }
# sessions_to PORT: the relay's sessions to beta's TCP PORT.
sessions_to() {
	relay_value "len([s for s in d['sessions'] if s['port'] == $(vsock_port beta "$1")])"
}
# echo_once PORT WANT: one connection from alpha to beta's PORT, which must take the path
# WANT: relay (relayed by it) or tcp (refused by it; alpha's shim falls back).
echo_once() {
	local n0 f0
	n0=$(relayed_total)
	f0=$(fallbacks alpha)
	shimmed alpha "$PROGS/echo_client" block 198.18.0.2 "$1" 100000 >"$WORK/once.out" ||
		fail "a connection to beta's $1: $(cat "$WORK/once.out")"
	if [ "$2" = relay ]; then
		[ "$(relayed_total)" -gt "$n0" ] && [ "$(fallbacks alpha)" = "$f0" ] ||
			fail "beta's $1: not relayed ($(($(fallbacks alpha) - f0)) fallbacks)"
	else
		[ "$(relayed_total)" = "$n0" ] && [ "$(fallbacks alpha)" -gt "$f0" ] ||
			fail "beta's $1: relayed, want TCP"
	fi
}

# Two connections held open through the relay: one to 7700, whose grant goes, and one to
# 7701, which nothing below touches.
for port in 7700 7701; do
	start_bg "held$port" shimmed alpha python3 -S -u "$TOP/tests/vm/apps/held_echo.py" 198.18.0.2 "$port" "$WORK/go"
	wait_for "the held connection to $port" grep -q open "$WORK/held$port.out"
	[ "$(sessions_to "$port")" = 1 ] || fail "the held connection to $port is not relayed"
done
echo_once 7700 relay
log "two connections held open through the relay (to 7700 and 7701), $(relay_value "' and '.join(s['path'] for s in d['sessions'] if s['port'] in ($(vsock_port beta 7700), $(vsock_port beta 7701)))")"

# SIGHUP with 7700 taken out of alpha's grant: the held session to it is closed, a new
# connection to it goes over TCP, 7701 is untouched.
r0=$(reloads)
REACH_BETA="$(vsock_port beta 7701) $((BASE[beta] + 131072))" quiet_write
reload_by_signal
[ "$(reloads)" = 1 ] || fail "the reload was refused: $(grep 'reload refused' "$WORK/relay.log" | tail -n 1)"
wait_for "the held session to 7700 to be closed" grep -q closed "$WORK/held7700.out"
join_bg held7700 10 || fail "held connection to 7700: $(cat "$WORK/held7700.out")"
[ "$(sessions_to 7700)" = 0 ] || fail "a session to 7700 outlived the reload"
[ "$(relay_value 'd["counters"]["revoked"]')" = 1 ] || fail "revoked: $(relay_value 'd["counters"]["revoked"]'), want 1"
[ "$(sessions_to 7701)" = 1 ] || fail "the held session to 7701 did not survive the reload"
echo_once 7700 tcp
echo_once 7701 relay
log "SIGHUP without 7700 in the grant: its held session closed ($(tail -n 1 "$WORK/held7700.out")), a new one over TCP; 7701 still relayed"

# The file changes, no signal: 7700 is granted again.
write_host_policy "$HOST_POLICY"
wait_for "the relay to notice the file" reloads_reach 2
echo_once 7700 relay
log "the file rewritten without a signal: reload 2, 7700 relayed again"

# Caps and the port: max-per-guest down to what alpha holds (its helperd's control
# connection and the held session), and another port, which needs a restart.
held=$(relay_value 'd["guests"][0]["connections"]')
r0=$(reloads)
PORT=$((RELAY_PORT + 7)) quiet_write "max-per-guest $held"
reload_by_signal
[ "$(reloads)" = $((r0 + 1)) ] || fail "the reload with max-per-guest $held was refused"
grep -q "port $((RELAY_PORT + 7)) needs a restart: the relay keeps port $RELAY_PORT" "$WORK/relay.log" ||
	fail "no word that the port was kept"
[ "$(relay_value 'd["port"]')" = "$RELAY_PORT" ] || fail "the port in force changed"
b0=$(relay_value 'd["counters"]["busy"]')
echo_once 7700 tcp
[ "$(relay_value 'd["counters"]["busy"]')" -gt "$b0" ] || fail "max-per-guest $held: not refused as busy"
[ "$(sessions_to 7701)" = 1 ] || fail "the held session to 7701 did not survive the lower cap"
log "max-per-guest $held by reload: a new connection busy (over TCP), held ones kept; port change kept for a restart"
write_host_policy "$HOST_POLICY"
wait_for "the relay to notice the file" reloads_reach $((r0 + 2))
wait_for "alpha to know beta serves 7700" serves alpha beta 7700
echo_once 7700 relay

# A broken file: refused with its file and line, and the policy in force stays.
r0=$(reloads)
echo "reach-everything" >>"$HOST_POLICY"
line=$(wc -l <"$HOST_POLICY")
wait_for "the relay to refuse the file" grep -q "reload refused, keeping the policy in force: $HOST_POLICY:$line: " "$WORK/relay.log"
[ "$(reloads)" = "$r0" ] && [ "$(refused_reloads)" -ge 1 ] || fail "the broken file was not refused"
echo_once 7700 relay
log "broken file refused: $(grep "reload refused" "$WORK/relay.log" | tail -n 1 | sed 's/.*reload refused/reload refused/')"

# The file deleted: the same. Written again, it is read once whole (at its writer's close),
# not when it appears empty, which would be a valid policy with no guests.
rm "$HOST_POLICY"
wait_for "the relay to refuse the missing file" grep -q "reload refused, keeping the policy in force: $HOST_POLICY: cannot open" "$WORK/relay.log"
echo_once 7700 relay
write_host_policy "$HOST_POLICY"
wait_for "the relay to take the file back" reloads_reach $((r0 + 1))
[ "$(relay_value 'd["counters"]["revoked"]')" = 1 ] || fail "the file written again closed sessions: $(grep 'no longer grants' "$WORK/relay.log" | tail -n 1)"
log "deleted file refused, the policy in force kept; written again: reload $(reloads)"

# The connection held through all of the above comes out whole.
touch "$WORK/go"
join_bg held7701 30 || fail "held connection to 7701: $(cat "$WORK/held7701.out")"
grep -q intact "$WORK/held7701.out" || fail "held connection to 7701: $(cat "$WORK/held7701.out")"
[ "$(relay_value 'd["counters"]["revoked"]')" = 1 ] || fail "a reload closed more than the one session"
log "the connection to 7701 held through $(reloads) reloads and $(refused_reloads) refusals: intact"
