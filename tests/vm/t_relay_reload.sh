# vmshim-relay reloads its host policy on SIGHUP and when its file changes, as helperd does
# (README, "Host side"): a new policy applies to new requests at once; a session it no
# longer grants is closed, an unrelated one goes on byte-intact; caps apply to new
# connections; a port change is kept for a restart; a broken or deleted file is refused
# with its file and line and the policy in force stays; where the relay splices, sessions
# past the kernel's maps (a raised max-connections) are copied until a spliced one ends.
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

# Where the relay splices (6.12), its kernel maps are sized to the start's max-connections: a
# reload that raises it lets more sessions in, copied while every pair is taken, and each is
# spliced within a second of a spliced one's end (forward.h), not copied to its own end.
[ "$(relay_value 'd["forwarding"]')" = sockmap ] || { log "no splice on $(uname -r): the maps' size not tried"; return 0; }
# path_to PORT: the path of the relay's session to beta's TCP PORT (sockmap, copy, ...).
path_to() {
	relay_value "' '.join(s['path'] for s in d['sessions'] if s['port'] == $(vsock_port beta "$1"))"
}
path_is() { [ "$(path_to "$1")" = "$2" ]; }
spliced_are() { [ "$(relay_value "sum(s['path'] == 'sockmap' for s in d['sessions'])")" = "$1" ]; }
write_host_policy "$HOST_POLICY" "max-connections 3" # the helperds' two and one more
stop_relay
start_relay "$HOST_POLICY"
wait_for "alpha to find beta again" peer_up alpha beta
wait_for "beta to find alpha again" peer_up beta alpha
start_bg full7700 shimmed alpha python3 -S -u "$TOP/tests/vm/apps/held_echo.py" 198.18.0.2 7700 "$WORK/go7700"
wait_for "the held connection to 7700" grep -q open "$WORK/full7700.out"
wait_for "every one of the 3 pairs spliced" spliced_are 3
r0=$(reloads)
write_host_policy "$HOST_POLICY" "max-connections 5"
wait_for "the relay to notice the file" reloads_reach $((r0 + 1))
grep -q "max-connections 5: the kernel splices at most 3 connections at once until a restart" "$WORK/relay.log" ||
	fail "no word that the kernel splices at most 3"
start_bg past7701 shimmed alpha python3 -S -u "$TOP/tests/vm/apps/held_echo.py" 198.18.0.2 7701 "$WORK/go7701"
wait_for "the held connection to 7701" grep -q open "$WORK/past7701.out"
path_is 7701 copy || fail "a fourth session with 3 pairs spliced: $(path_to 7701), want copy"
touch "$WORK/go7700"
join_bg full7700 30 || fail "held connection to 7700: $(cat "$WORK/full7700.out")"
ended=$(date +%s%N)
wait_for "the session past the maps to be spliced" path_is 7701 sockmap
took=$((($(date +%s%N) - ended) / 1000000))
[ "$took" -le 3000 ] || fail "the session past the maps spliced $took ms after a spliced one ended, want within 3000"
log "max-connections 3 -> 5 by reload: a fourth session copied while 3 were spliced, spliced $took ms after one of them ended"
touch "$WORK/go7701"
join_bg past7701 30 || fail "held connection to 7701: $(cat "$WORK/past7701.out")"
grep -q intact "$WORK/past7701.out" || fail "the session spliced late: $(cat "$WORK/past7701.out")"
