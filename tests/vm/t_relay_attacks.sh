# What a hostile guest, or a hostile VMM user on a hybrid host, must not get out of
# vmshim-relay, which runs as root on the host (README, "Host side"; issue 15). Each attack
# is tried and what it got is logged; the test fails at the end if any of them worked:
#   - a guest that may `reach` another without naming ports gets the relay to dial a vsock
#     port outside that guest's vmshim ports (an agent trusting "the host")
#   - a VMM user who owns a hybrid socket's directory makes the relay unlink, bind and chmod
#     in a root-only directory, or connect to a root-only Unix socket, through symlinks
#   - a hybrid socket answers CONNECT with a malformed "OK" and the relay goes on
#   - readers of the status socket that read nothing stall the relay's event loop
#   - a guest's bad requests and refusals, and callers of no guest, flood the log
#   - a user who can write the host policy file (here nobody, who owns it) grants a guest a
#     port: the relay must refuse such a file when it starts and whenever it reloads
PY_ATTACK="python3 -S $TOP/tests/vm/apps/relay_attack.py"
VMM_ALPHA=5400
worked=()
# attack WHAT WORKED DETAIL: logs an attack's outcome; WORKED is yes or no.
attack() {
	log "$1: $([ "$2" = yes ] && echo WORKED || echo failed): $3"
	[ "$2" = no ] || worked+=("$1")
}

ip netns add "$(netns host)"
# The hostile guest alpha: hybrid, its VMM delivers its connections to the relay.
mkdir -p "$WORK/vmm-alpha" "$WORK/vmm-eps" "$WORK/vmm-zeta" "$WORK/rootonly"
chmod 0700 "$WORK/rootonly"
start_bg vmm-alpha ip netns exec "$(netns host)" python3 -S "$TOP/tests/vm/apps/hybrid_vmm.py" \
	"$WORK/vmm-alpha/alpha.vsock" "$VMM_ALPHA" "$RELAY_PORT"
wait_for "alpha's VMM" grep -q ready "$WORK/vmm-alpha.out"
# delta's VMM user replaced delta's directory by a symlink to a root-only one, where a
# root file lies at the name of the relay's listener and a root-only socket at the VMM's.
echo precious >"$WORK/rootonly/delta.vsock_$RELAY_PORT"
ln -s "$WORK/rootonly" "$WORK/vmm-delta"
start_bg rootsock ip netns exec "$(netns host)" $PY_ATTACK unix "$WORK/rootonly/delta.vsock" 120
# eps's VMM user made eps's socket a symlink to a root-only socket.
start_bg secret ip netns exec "$(netns host)" $PY_ATTACK unix "$WORK/rootonly/secret.sock" 120
ln -s "$WORK/rootonly/secret.sock" "$WORK/vmm-eps/eps.vsock"
# zeta's "VMM" answers CONNECT with these lines, one per connection, the last a good one.
bad_oks=('OK -1\n' 'OK 4294967296\n' 'OK +7\n' 'OK 007\n' 'OK 7 8\n' 'OK 4294967295\n')
start_bg zeta ip netns exec "$(netns host)" $PY_ATTACK unix "$WORK/vmm-zeta/zeta.vsock" 120 \
	"${bad_oks[@]}" 'OK 1073741824\n'
for f in rootsock secret zeta; do
	wait_for "$f" grep -q ready "$WORK/$f.out"
done

cat >"$WORK/relay.policy" <<POLICY
port $RELAY_PORT
request-timeout 60000
guest alpha
    cid 3
    hybrid $WORK/vmm-alpha/alpha.vsock
    reach beta
    reach delta
    reach eps
    reach zeta
guest beta
    cid 1
guest delta
    cid 5
    hybrid $WORK/vmm-delta/delta.vsock
guest eps
    cid 6
    hybrid $WORK/vmm-eps/eps.vsock
guest zeta
    cid 7
    hybrid $WORK/vmm-zeta/zeta.vsock
POLICY
RELAY_DEBUG= start_relay "$WORK/relay.policy"

# 10: the listener for delta, made through the symlinked directory.
what=$(stat -c %F "$WORK/rootonly/delta.vsock_$RELAY_PORT" 2>/dev/null || echo gone)
attack "bind through a symlinked directory" "$([ "$what" = "regular file" ] && echo no || echo yes)" \
	"the root file at delta.vsock_$RELAY_PORT is now: $what"
log "relay: $(grep -m1 "cannot listen" "$WORK/relay.log" || echo "no line about a socket it could not make")"

# 8: beta's agent on vsock port 9999, outside vmshim's ports; alpha asks for it. The relay
# answers once it has dialed, and ask sends its payload and closes before it returns: by
# then, whatever the relay did reached the agent, which can stop waiting.
start_bg agent ip netns exec "$(netns beta)" $PY_ATTACK agent 9999 8 "$WORK/agent.stop"
wait_for "beta's agent" grep -q ready "$WORK/agent.out"
answer=$(ip netns exec "$(netns alpha)" $PY_ATTACK ask "$VMM_ALPHA" 1 9999 "reboot now")
touch "$WORK/agent.stop"
join_bg agent 20 || true
seen=$(grep agent: "$WORK/agent.out" || echo "agent: nothing")
attack "reach an agent's port 9999" "$(grep -q reboot "$WORK/agent.out" && echo yes || echo no)" \
	"relay answered $answer; $seen"
# ... while beta's vmshim ports stay reachable: its control port, where nothing listens.
answer=$(ip netns exec "$(netns alpha)" $PY_ATTACK ask "$VMM_ALPHA" 1 $((1048576 + 131072)))
[ "$answer" = "status 2" ] || fail "beta's control port: the relay answered $answer, want 2"

# 10: the relay dials delta (directory a symlink) and eps (socket a symlink).
for g in 5:rootsock 6:secret; do
	answer=$(ip netns exec "$(netns alpha)" $PY_ATTACK ask "$VMM_ALPHA" "${g%:*}" 1048656)
	sleep 1
	seen=$(grep -m1 connection "$WORK/${g#*:}.out" || echo "nothing")
	attack "connect to a root-only socket through a symlink (cid ${g%:*})" \
		"$(grep -q CONNECT "$WORK/${g#*:}.out" && echo yes || echo no)" \
		"relay answered $answer; the root-only socket got: $seen"
done

# 10: zeta answers malformed OK lines; the relay must refuse each, and take the good one.
for ok in "${bad_oks[@]}" 'OK 1073741824\n'; do
	answer=$(ip netns exec "$(netns alpha)" $PY_ATTACK ask "$VMM_ALPHA" 7 1048656)
	if [ "$ok" = 'OK 1073741824\n' ]; then
		[ "$answer" = "status 0" ] || fail "a good OK line: the relay answered $answer"
	else
		attack "hybrid answer '${ok%\\n}'" "$([ "$answer" = "status 0" ] && echo yes || echo no)" \
			"relay answered $answer"
	fi
done

# 10: status readers that read nothing, while the relay holds 40 sessions (a long answer):
# a refused request meanwhile must be answered at once. Their socket buffers are made small
# so that the answer does not fit.
start_bg silent ip netns exec "$(netns alpha)" $PY_ATTACK hold "$VMM_ALPHA" 40 60
held() { [ "$(relay_value 'd["connections"]')" -ge 40 ]; }
wait_for "40 silent sessions" held
# timed CMD...: runs CMD; its output in $answer, how long it took in $took (ms).
timed() {
	local start
	start=$(date +%s%N)
	answer=$("$@")
	took=$((($(date +%s%N) - start) / 1000000))
}
alone_begin # net.core.wmem_default is the whole VM's, and a stall is timed
timed ip netns exec "$(netns alpha)" $PY_ATTACK ask "$VMM_ALPHA" 9 1048656
alone=$took
wmem=$(cat /proc/sys/net/core/wmem_default)
echo 4608 >/proc/sys/net/core/wmem_default
start_bg hogs $PY_ATTACK status-hogs "$RUN/vmshim-relay/status" 4 15
wait_for "the status hogs" grep -q ready "$WORK/hogs.out"
echo "$wmem" >/proc/sys/net/core/wmem_default
sleep 0.5
timed ip netns exec "$(netns alpha)" $PY_ATTACK ask "$VMM_ALPHA" 9 1048656
attack "stall the loop with status readers" "$([ "$took" -ge $((alone + 1000)) ] && echo yes || echo no)" \
	"a refused request took $took ms ($answer) while 4 readers held the status socket, $alone ms before"
alone_end
stop_bg hogs # they would hold the socket for 15 s; what they could stall is measured
stop_bg silent

# 5: the log is limited per source to 10 lines in a window of 10 s, and then one line
# about the rest once the window is over. flood_start: notes where the log is and when;
# flood_lines PATTERN: what the flood since then may write at most (10 per window begun),
# and, once a suppressed line about its source came (up to 15 s), the lines it wrote
# ($lines) and that suppressed line ($said).
flood_start() {
	from=$(($(wc -l <"$WORK/relay.log") + 1))
	flood_t0=$(date +%s)
}
flood_lines() {
	local _
	allowed=$((10 * (($(date +%s) - flood_t0) / 10 + 2)))
	for _ in $(seq 150); do
		! tail -n "+$from" "$WORK/relay.log" | grep -q "$2" || break
		sleep 0.1
	done
	lines=$(tail -n "+$from" "$WORK/relay.log" | grep -c -e "$1" || true)
	said=$(tail -n "+$from" "$WORK/relay.log" | grep -m1 "$2" || echo "no suppressed line")
}
# alpha sends 300 bad requests and 300 for a CID no guest has.
flood_start
ip netns exec "$(netns alpha)" $PY_ATTACK garbage "$VMM_ALPHA" 300 >"$WORK/garbage.out"
ip netns exec "$(netns alpha)" $PY_ATTACK refused "$VMM_ALPHA" 300 >>"$WORK/garbage.out"
flood_lines "bad request\|refused by the host policy" "lines about cid 3 suppressed"
attack "flood the log with bad requests and refusals" \
	"$([ "$lines" -le "$allowed" ] && [ "$said" != "no suppressed line" ] && echo no || echo yes)" \
	"$(tr '\n' ';' <"$WORK/garbage.out") $lines lines in the log (at most $allowed allowed); $said"
stop_relay

# 5: 300 callers that are no guest (guests on CID 1 told apart by their blocks).
write_host_policy "$WORK/relay-shared.policy"
RELAY_DEBUG= start_relay "$WORK/relay-shared.policy"
flood_start
ip netns exec "$(netns alpha)" $PY_ATTACK strangers "$RELAY_PORT" 7777000 300 >"$WORK/strangers.out"
flood_lines "no guest of the policy" "lines about cid 1 suppressed"
attack "flood the log as unknown callers" \
	"$([ "$lines" -le "$allowed" ] && [ "$said" != "no suppressed line" ] && echo no || echo yes)" \
	"$(cat "$WORK/strangers.out"), $lines lines in the log (at most $allowed allowed); $said"
[ "$(relay_value 'd["unknown_callers"]')" -ge 300 ] || fail "unknown callers not all counted"
stop_relay

# 19: the host policy file belongs to nobody. The relay must not start on it; started on it
# while it was root's, it must refuse every reload once it is nobody's (on the file's change
# and on SIGHUP), so that nobody's grant of beta's port 7702 to alpha never applies.
OWNED=$WORK/owned.policy
REACH_BETA=$((BASE[beta] + 131072)) write_host_policy "$OWNED"
chown nobody "$OWNED"
rc=0
timeout 5 ip netns exec "$(netns host)" "$RELAY" -f -c "$OWNED" -r "$RUN/vmshim-relay" >"$WORK/owned.out" 2>&1 || rc=$?
attack "start the relay on a host policy nobody owns" "$([ "$rc" = 124 ] && echo yes || echo no)" \
	"exit status $rc: $(grep -m1 -e "$OWNED" -e ready "$WORK/owned.out" || echo "nothing said")"
chown root "$OWNED"
RELAY_DEBUG= start_relay "$OWNED"
chown nobody "$OWNED"
REACH_BETA="$((BASE[beta] + 131072)) $(vsock_port beta 7702)" write_host_policy "$WORK/granted.policy"
setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c 'cat "$1" >"$2"' sh "$WORK/granted.policy" "$OWNED" ||
	fail "nobody could not write the file it owns"
refusals() { grep -c "reload refused, keeping the policy in force: $OWNED: belongs to uid" "$WORK/relay.log" || true; }
for _ in $(seq 50); do
	[ "$(refusals)" -lt 1 ] || break
	sleep 0.1
done
kill -HUP "$(leaf_pid "$(cat "$WORK/relay.pid")")" 2>/dev/null || true
for _ in $(seq 50); do
	[ "$(refusals)" -lt 2 ] || break
	sleep 0.1
done
start_bg agent7702 ip netns exec "$(netns beta)" $PY_ATTACK agent "$(vsock_port beta 7702)" 8 "$WORK/agent7702.stop"
wait_for "beta's agent on 7702" grep -q ready "$WORK/agent7702.out"
answer=$(ip netns exec "$(netns alpha)" $PY_ATTACK ask-from $((BASE[alpha] + 131072 + 40001)) "$RELAY_PORT" 1 \
	"$(vsock_port beta 7702)" "granted by nobody" 2>&1 | tail -n 1) || true
touch "$WORK/agent7702.stop"
join_bg agent7702 20 || true
attack "grant a port by editing a host policy nobody owns, and reload" \
	"$(grep -q "granted by nobody" "$WORK/agent7702.out" && echo yes || echo no)" \
	"relay answered $answer; $(refusals) reloads refused: $(grep -m1 "reload refused" "$WORK/relay.log" | sed 's/.*reload refused/reload refused/' || echo none)"
stop_relay

[ ${#worked[@]} -eq 0 ] || fail "attacks that worked: ${worked[*]}"
[ "$(refusals)" -ge 2 ] || fail "the relay refused $(refusals) reloads of a file nobody owns, want 2 (its change, SIGHUP)"
