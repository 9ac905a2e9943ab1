# What a hostile peer guest can do against a sibling's helperd while speaking the real
# protocol: alpha (root there) opens vsock connections from its own port block to beta's
# sibling ports and never takes them further, as no shim would. gamma is an honest peer.
# Each attack is tried and what it got is logged; the test fails at the end if any of
# them worked (issue 15, items 7 and 10):
#   - alpha fills beta's pool of sibling connections waiting for a slow acceptor, and
#     then gamma's connections to every other listener of beta are refused
#   - alpha's connections stay in the pool after alpha closed them, beyond the
#     connect-timeout (helperd keeps no copy of a connection it sent into a listener's
#     channel, so it learns of alpha's closing no sooner: until then they count in
#     alpha's own share)
#   - alpha's connections that no shim waits for stay in the pool far beyond the
#     connect-timeout
#   - four peers together (alpha and three it plays) fill the pool, each within its share,
#     and gamma's connections are refused
#   - six peers of the policy (p1 to p6: only alpha runs them) announce as many ports as a
#     frame holds, and beta's status can no longer be asked for
#   - alpha's DIALLED names an address beta does not have, loopback, another port, or is
#     malformed or missing, and reaches beta's server all the same
BASE[gamma]=$((3000000 + LANE_PORTS))
worked=()
# attack WHAT WORKED DETAIL: logs an attack's outcome; WORKED is yes or no.
attack() {
	log "$1: $([ "$2" = yes ] && echo WORKED || echo failed): $3"
	[ "$2" = no ] || worked+=("$1")
}
# bells PORT: the sibling connections to beta's TCP port PORT that wait in beta's helperd
# (its ends of their doorbells).
bells() { ss_in beta -Htn src 127.86.83.77 "dport = :$1" | wc -l; }
# flood NAME N PORT: alpha's connections to beta's TCP port PORT (peer_flood).
flood() { peer_flood "$1" alpha "$2" "$3"; }
# stopped_server NAME PORT: a shimmed server in beta on PORT that takes nothing: a slow
# acceptor.
stopped_server() {
	start_bg "$1" shimmed beta "$PROGS/echo_server" block "$2" 0.0.0.0 1
	wait_for "vsock listener $2" vsock_listening beta "$(vsock_port beta "$2")"
	kill -STOP "$(leaf_pid "$(cat "$WORK/$1.pid")")"
}

FAKES="p1 p2 p3 p4 p5 p6"
for p in $FAKES; do
	BASE[$p]=$((BASE[gamma] + ${p#p} * 1000000))
done
{
	guest_policy alpha beta gamma
	for p in $FAKES; do
		printf 'peer %s\n    cid 1\n    vsock-base %s\n' "$p" "${BASE[$p]}"
	done
} >"$POLICY"
for g in alpha beta gamma; do
	start_helperd "$g"
done
stopped_server slow 7500
stopped_server slow2 7502

# p1 to p6 announce 7546 ports each: beta's status answers, all of it.
start_bg announce in_guest alpha python3 -S "$TOP/tests/vm/apps/peer_announce.py" \
	$((BASE[beta] + 131072)) $(for p in $FAKES; do echo $((BASE[$p] + 131072 + 1)); done) \
	"$WORK/announce.go"
wait_for "the announcements" grep -q announcing "$WORK/announce.out"
wait_for "beta to take them" grep -q "peer p6 (cid 1) is up" "$WORK/helperd-beta.log"
rc=0
in_guest beta "$VMSHIMCTL" status --json >"$WORK/status.json" 2>"$WORK/status.err" || rc=$?
ports=$(python3 -S -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(sum(len(p["ports4"]) for p in d["peers"] if p["name"].startswith("p")))' "$WORK/status.json" 2>/dev/null) || ports=none
attack "six peers announcing 7546 ports each silence beta's status" \
	"$([ "$rc" = 0 ] && [ "$ports" = 45276 ] && echo no || echo yes)" \
	"vmshimctl status --json: exit $rc, $(wc -c <"$WORK/status.json") bytes, $ports ports of p1 to p6 $(head -c 100 "$WORK/status.err"); helperd: $(grep -m1 'status request' "$WORK/helperd-beta.log" || echo nothing logged)"
touch "$WORK/announce.go"
join_bg announce 30 || fail "announce: $(cat "$WORK/announce.out")"

# The policy's connect-timeout is 2 s: no shim waits longer for its connection to be
# accepted, so none of alpha's 100 connections to a slow acceptor may be kept much longer.
flood stale 100 7502
rung=$(bells 7502)
# Polled for up to 5 s rather than looked at once after 5 s: alpha opens no more, so once
# none is left none comes back.
deadline=$((${EPOCHREALTIME/./} + 5000000))
while [ "$(bells 7502)" != 0 ] && [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do
	sleep 0.1
done
left=$(bells 7502)
attack "alpha's connections outlive the connect-timeout in beta's pool" \
	"$([ "$left" = 0 ] && echo no || echo yes)" \
	"alpha $(cat "$WORK/stale.out"); then $rung doorbells rung, within 5 s (connect-timeout 2 s) $left left"
touch "$WORK/stale.go"
join_bg stale 30 || fail "flood: $(cat "$WORK/stale.out")"

# dialled HOST PORT: a DIALLED message, in hex.
dialled() { python3 -S -c 'import socket, struct, sys
print((b"VMSD\x01\x04" + struct.pack(">H", int(sys.argv[2]))
       + socket.inet_aton(sys.argv[1]).ljust(16, b"\0")).hex())' "$1" "$2"; }
# alpha's DIALLED, as it pleases, for a connection to beta's server on 7503, bound to the
# wildcard: only the honest one (the last) may reach it.
start_bg wild shimmed beta "$PROGS/echo_server" block 7503 0.0.0.0 1
wait_for "vsock listener 7503" vsock_listening beta "$(vsock_port beta 7503)"
bad0=$(counter beta bad_messages)
source=$((BASE[alpha] + 131072 + 20000))
for said in "8.8.8.8 7503" "198.18.0.99 7503" "127.0.0.1 7503" "198.18.0.2 7504" \
	"$(dialled 198.18.0.2 7503 | sed 's/^564d5344/584d5344/')" - "198.18.0.2 7503"; do
	case $said in
	*" "*) hex=$(dialled $said) ;;
	*) hex=$said ;;
	esac
	source=$((source + 1))
	got=$(in_guest alpha python3 -S "$TOP/tests/vm/apps/peer_dialled.py" 1 \
		"$(vsock_port beta 7503)" "$source" "$hex")
	if [ "$said" = "198.18.0.2 7503" ]; then
		[ "$got" = "handed over" ] || fail "alpha's honest DIALLED: $got"
	else
		attack "alpha's DIALLED '$said' reaches beta's server" \
			"$([ "$got" = "handed over" ] && echo yes || echo no)" "$got"
	fi
done
join_bg wild 10 || fail "server on 7503: $(cat "$WORK/wild.out")"
log "beta counted $(($(counter beta bad_messages) - bad0)) bad messages: $(grep -c 'DIALLED' "$WORK/helperd-beta.log") log lines name DIALLED"

# Now with a connect-timeout of 20 s. alpha sends 3000 connections to the slow acceptor on
# 7500; gamma then connects to beta's other server, on 7501, which takes what comes.
sed -i "s/^connect-timeout .*/connect-timeout 20000/" "$POLICY" # helperd sees the new file
wait_for "the reload" sh -c "[ \$(grep -c 'policy $POLICY' '$WORK/helperd-beta.log') -ge 2 ]"
start_bg fast shimmed beta "$PROGS/echo_server" block 7501 0.0.0.0 1
wait_for "vsock listener 7501" vsock_listening beta "$(vsock_port beta 7501)"
lines=$(wc -l <"$WORK/helperd-beta.log")
flood fill 3000 7500
held=$(bells 7500)
lines=$(($(wc -l <"$WORK/helperd-beta.log") - lines))
shimmed gamma env VMSHIM_DEBUG=1 timeout 60 "$PROGS/echo_client" block 198.18.0.2 7501 1000 \
	>"$WORK/gamma.out" 2>&1 || fail "gamma's client: $(cat "$WORK/gamma.out")"
join_bg fast 30 || fail "fast server: $(cat "$WORK/fast.out")"
if grep -q "connected to sibling" "$WORK/gamma.out"; then got=no; else got=yes; fi
attack "alpha fills beta's pool for a slow acceptor" "$got" \
	"alpha $(cat "$WORK/fill.out"); beta's helperd holds $held of them and wrote $lines log lines; gamma's connection to another listener: $(grep -m1 'sibling cid' "$WORK/gamma.out" | sed 's/^.*: fd [0-9]*: //')"
[ "$held" -le 1100 ] || attack "alpha takes more than its share of beta's pool" yes "$held held"

# alpha closes them: beta's helperd must let go of them within the connect-timeout (20 s
# now) and a second more.
touch "$WORK/fill.go"
join_bg fill 30 || fail "flood: $(cat "$WORK/fill.out")"
for i in $(seq 230); do
	[ "$(bells 7500)" != 0 ] || break
	sleep 0.1
done
left=$(bells 7500)
attack "alpha's closed connections stay in beta's pool" "$([ "$left" = 0 ] && echo no || echo yes)" \
	"23 s after alpha closed them (connect-timeout 20 s), $left of its connections still wait in beta's helperd"
for s in slow slow2; do
	kill -CONT "$(leaf_pid "$(cat "$WORK/$s.pid")")"
	stop_bg "$s"
done

# Four hostile peers together (alpha, and p1 to p3, which alpha plays) against a pool of 164:
# beta's helperd with 1700 descriptors and without CAP_SYS_RESOURCE, as under a unit's
# LimitNOFILE=. Each may hold a ninth of the pool now (nine peers in the policy), not a
# quarter: together they leave gamma room.
stop_helperd beta
HELPERD_WRAP="prlimit --nofile=1700:1700 setpriv --bounding-set=-sys_resource" start_helperd beta
pool=$(sed -n 's/.*at most \([0-9]*\) sibling connections can wait.*/\1/p' "$WORK/helperd-beta.log" | tail -n 1)
stopped_server slow3 7504 # two slow acceptors: a listener may hold only half the pool
stopped_server slow4 7506
start_bg fast2 shimmed beta "$PROGS/echo_server" block 7505 0.0.0.0 1
wait_for "vsock listener 7505" vsock_listening beta "$(vsock_port beta 7505)"
wait_for "gamma to know beta serves 7505" serves gamma beta 7505
peer_flood four-alpha alpha 100 7504
peer_flood four-p1 p1 100 7504
peer_flood four-p2 p2 100 7506
peer_flood four-p3 p3 100 7506
held=$(($(bells 7504) + $(bells 7506)))
shimmed gamma env VMSHIM_DEBUG=1 timeout 60 "$PROGS/echo_client" block 198.18.0.2 7505 1000 \
	>"$WORK/gamma2.out" 2>&1 || fail "gamma's client: $(cat "$WORK/gamma2.out")"
join_bg fast2 30 || fail "fast server: $(cat "$WORK/fast2.out")"
if grep -q "connected to sibling" "$WORK/gamma2.out"; then got=no; else got=yes; fi
attack "four hostile peers fill beta's pool of $pool" "$got" \
	"$(for p in alpha p1 p2 p3; do printf '%s %s; ' "$p" "$(head -n 1 "$WORK/four-$p.out")"; done)beta's helperd holds $held; gamma's connection to another listener: $(grep -m1 'sibling cid' "$WORK/gamma2.out" | sed 's/^.*: fd [0-9]*: //')"
for p in alpha p1 p2 p3; do
	touch "$WORK/four-$p.go"
	join_bg "four-$p" 30 || fail "flood: $(cat "$WORK/four-$p.out")"
done
for s in slow3 slow4; do
	kill -CONT "$(leaf_pid "$(cat "$WORK/$s.pid")")"
	stop_bg "$s"
done

[ ${#worked[@]} = 0 ] || fail "attacks that worked: ${worked[*]}"
