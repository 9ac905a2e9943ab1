# It shares the VM with the other tests of its pass, though it loads vhost_vsock and runs
# libvirtd: no other test talks to libvirtd, and with vhost_vsock loaded a connection to
# CID 1, the only one they make, still goes through vsock_loopback (the kernel's
# vsock_use_local_transport). What it does change is the CID that
# IOCTL_VM_SOCKETS_GET_LOCAL_CID reports (2, vhost's, where the test VM without a
# virtio-vsock device says 1), which only helperd reads, to find itself in a policy without
# `self`, and every test's helperd is given --self (lib.sh, start_helperd).
#
# vmshim-relay learns its guests from libvirt (relay/FORMAT.md, "Guests from libvirt"): the
# machine's own libvirtd runs in the VM (lib.sh, libvirt_up), its domains TCG qemus with a
# vhost-vsock device and nothing to boot. A block without `cid` stands for the running
# domain of its name, one with `domains PATTERN...` for every running domain whose name
# matches, each a guest of its own under its domain's name; a domain that no block stands
# for is no guest, nor is one only defined. Each start and destroy shows in the relay's
# status within 1 s of virsh's return. libvirt gives a freed automatic CID again (the
# lowest free one from 3): the new domain has it, with its own UUID; a domain undefined and
# defined again under its name is another guest. While libvirtd is stopped the relay says
# so and keeps its guests; once it is back, it lists the domains again: the same guests.
# Domains start paused (`virsh start --paused`): running, their vsock device and CID in
# place, as libvirt lists and tells them, but without the nested TCG guest's firmware
# taking the VM's two CPUs from what is timed here. The policy's hand-written guests (alpha
# and beta, CID 1) stay throughout, and a connection from alpha to beta held open through
# the relay across every change comes out byte-intact: no domain event touches it. alpha's
# helperd has no list of siblings (`peers relay`): the relay tells it the domains its block
# reaches, and each change shows in its status within 1 s of virsh's return too, a CID that
# passes to another domain as that other domain (its name and UUID).
within=1000 # ms from virsh's return to the relay's status showing what it did
HOST_POLICY=$WORK/relay.policy
trap 'stop_relay; libvirt_down' EXIT

# relay_guests: sets GUESTS to the relay's guests, one a line, sorted: NAME CID SOURCE BLOCK
# UUID ("-" for a field it lacks). Read from one status with bash patterns, in this shell: a
# python3 takes 0.3 s to start under emulation, and these reads are timed to the 1 s.
relay_guests() {
	local json entry line lines=() re='\{"name": ?"([^"]*)"(.*)'
	GUESTS=
	json=$(relay_status) || return 1
	json=${json#*\"guests\":}
	json=${json%%\"sessions\":*}
	while [[ $json =~ $re ]]; do
		line=${BASH_REMATCH[1]}
		json=${BASH_REMATCH[2]}
		entry=${json%%\{\"name\":*} # up to the next guest
		entry_field cid
		entry_field source
		entry_field block
		entry_field uuid
		lines+=("$line")
	done
	GUESTS=$(printf '%s\n' "${lines[@]}" | sort)
}
# entry_field KEY: adds KEY's value in relay_guests' entry (a string's text, or a number) to
# its line.
entry_field() {
	local re="\"$1\": ?(\"([^\"]*)\"|-?[0-9]+)" v=-
	if [[ $entry =~ $re ]]; then
		v=${BASH_REMATCH[1]}
		[[ $v != \"* ]] || v=${BASH_REMATCH[2]:--}
	fi
	line+=" $v"
}
# guests_brief: GUESTS for a message: NAME(CID,SOURCE,BLOCK) ...
guests_brief() { awk 'NF { printf "%s%s(%s,%s,%s)", (NR > 1 ? " " : ""), $1, $2, $3, $4 }' <<<"$GUESTS"; }
# guest_line NAME: NAME's line in GUESTS (empty if none).
guest_line() { grep "^$1 " <<<"$GUESTS" || true; }
# listed NAME CID SOURCE BLOCK: the relay lists guest NAME so; CID + is any CID from 3 up
# (an automatic one, checked against virsh's afterwards). unlisted NAME: not at all.
listed() {
	local cid=$2
	[ "$cid" != + ] || cid='([3-9]|[1-9][0-9]+)'
	relay_guests && grep -Eq "^$1 $cid $3 $4 " <<<"$GUESTS"
}
unlisted() { relay_guests && [ -z "$(guest_line "$1")" ]; }
# libvirt_is KEY VALUE: the relay's "libvirt" object has KEY VALUE.
libvirt_is() {
	WAIT_SAW=$(relay_value "d[\"libvirt\"][\"$1\"]") || WAIT_SAW="no libvirt.$1"
	[ "$WAIT_SAW" = "$2" ]
}
# libvirt_state: what the relay's status says of libvirt, for a log line.
libvirt_state() {
	local k v=
	for k in connected domains lists updates; do
		v+="${v:+, }$k $(relay_value "d[\"libvirt\"][\"$k\"]")"
	done
	echo "$v"
}

# virsh_do ARGS...: virsh ARGS; sets t0 (µs), when it returned, and vms, the ms it took.
virsh_do() {
	local t=${EPOCHREALTIME/./}
	vsh "$@" >"$WORK/virsh.out" 2>&1 ||
		fail "virsh $*: $(cat "$WORK/virsh.out") $(tail -n 5 "/var/log/libvirt/qemu/$2.log" 2>/dev/null)"
	t0=${EPOCHREALTIME/./}
	vms=$(((t0 - t) / 1000))
}
# seen WHAT CMD...: polls CMD, a check of the relay's status, every 20 ms from t0 for up to
# 10 s; sets ms, when (after t0) the status that passed had been read; fails if none did,
# or only after $within ms.
seen() {
	local what=$1
	shift
	WAIT_SAW=
	until "$@"; do
		[ $((${EPOCHREALTIME/./} - t0)) -lt 10000000 ] ||
			fail "the relay did not show $what within 10 s of virsh's return (last seen: ${WAIT_SAW:-$(guests_brief)})"
		sleep 0.02
	done
	ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
	[ "$ms" -le "$within" ] || fail "the relay showed $what only $ms ms after virsh returned, want $within at most"
}
# same_uuid NAME: the relay's UUID for NAME is libvirt's; sets uuid to it.
same_uuid() {
	uuid=$(domain_uuid "$1")
	[ "$(guest_line "$1" | cut -d' ' -f5)" = "$uuid" ] ||
		fail "the relay's UUID for $1: $(guest_line "$1" | cut -d' ' -f5), libvirt's $uuid"
}
# same_cid NAME: the relay's CID for NAME is the one in libvirt's live XML; sets cid to it.
same_cid() {
	cid=$(domain_cid "$1") || fail "no CID in $1's live XML"
	[ "$(guest_line "$1" | cut -d' ' -f2)" = "$cid" ] ||
		fail "the relay's CID for $1: $(guest_line "$1" | cut -d' ' -f2), virsh dumpxml's $cid"
}
# told NAME CID UUID: alpha's helperd has peer NAME, CID and UUID as the relay told it;
# untold NAME: it has no peer NAME.
told() { [[ $(status_json alpha) =~ \"name\":\"$1\",\"cid\":$2,\"uuid\":\"$3\" ]]; }
untold() { [[ ! $(status_json alpha) =~ \"name\":\"$1\" ]]; }
# told_as_listed NAME: told, with the CID and UUID of NAME in the relay's GUESTS (which
# same_cid and same_uuid then hold against libvirt's: checked after, as a virsh takes
# 0.1-0.3 s, which would count in the helperd's time).
told_as_listed() {
	local l
	l=$(guest_line "$1")
	told "$1" "$(cut -d' ' -f2 <<<"$l")" "$(cut -d' ' -f5 <<<"$l")"
}
# start_pooled NAME: starts domain NAME of the group pool; it must show in the relay with a
# CID from 3 up, then in alpha's helperd, each within $within ms of virsh's return (ms,
# helperd_ms), with the CID and UUID libvirt gives it (cid, uuid).
start_pooled() {
	virsh_do start "$1" --paused
	seen "$1" listed "$1" + libvirt pool
	local relay_ms=$ms
	seen "$1 in alpha's helperd" told_as_listed "$1"
	helperd_ms=$ms
	ms=$relay_ms
	same_cid "$1"
	same_uuid "$1"
}
# only_libvirt_guests NAME...: the relay's libvirt guests are these, no more.
only_libvirt_guests() {
	local want have
	want=$(printf '%s\n' "$@" | sort | xargs)
	have=$(awk '$3 == "libvirt" { print $1 }' <<<"$GUESTS" | sort | xargs)
	[ "$have" = "$want" ] || fail "the relay's libvirt guests: ${have:-none}, want ${want:-none}"
}

libvirt_up
for d in solo:10 pool-a:auto pool-b:auto pool-c:auto stray:auto; do
	libvirt_define "${d%:*}" "${d#*:}"
done
log "libvirtd $(virsh --version) runs; defined solo (CID 10), pool-a, pool-b, pool-c and stray (CID auto)"

# The policy: alpha and beta written by hand (CID 1), alpha reaching pool; solo, and the
# group pool, from libvirt.
write_host_policy "$HOST_POLICY" "libvirt $LIBVIRT_URI"
sed -i 's/^guest alpha$/&\n    reach pool/' "$HOST_POLICY"
cat >>"$HOST_POLICY" <<EOF
guest solo
    reach pool
guest pool
    domains pool-*
    reach pool
    reach solo
EOF
"$RELAY" --check -c "$HOST_POLICY" >"$WORK/check.out" 2>&1 ||
	fail "the relay refuses the policy: $(cat "$WORK/check.out")"
start_relay "$HOST_POLICY"
wait_for "the relay to connect to libvirt" libvirt_is connected true
[ "$(relay_value 'd["libvirt"]["uri"]')" = "$LIBVIRT_URI" ] ||
	fail "the relay's libvirt URI: $(relay_value 'd["libvirt"]["uri"]')"
libvirt_is domains 0 || fail "the relay counts $WAIT_SAW running domains, want 0"
relay_guests
only_libvirt_guests
for g in alpha beta; do
	grep -q "^$g 1 policy " <<<"$GUESTS" || fail "the policy's guest $g: $(guest_line "$g")"
done
log "relay up ($(libvirt_state)), domains defined, none running: no libvirt guests; alpha and beta from the policy (CID 1)"
for g in alpha beta; do
	own_policy "$g" >"$WORK/policy-$g"
	start_helperd "$g" "$WORK/policy-$g"
done
wait_for "alpha's helperd to follow the relay" status_check alpha 'd["peers_from_relay"]["following"]'
status_check alpha '[p["name"] for p in d["peers"]] == ["beta"]' ||
	fail "alpha's helperd, before any domain runs: $(status_json alpha)"
start_bg server shimmed beta "$PROGS/echo_server" epoll-lt 7700 0.0.0.0 10
wait_for "beta's listener offered to alpha" serves alpha beta 7700
start_bg held shimmed alpha python3 -S -u "$TOP/tests/vm/apps/held_echo.py" 198.18.0.2 7700 "$WORK/go"
wait_for "the held connection" grep -q open "$WORK/held.out"
[ "$(relay_value "len([s for s in d['sessions'] if s['port'] == $(vsock_port beta 7700)])")" = 1 ] ||
	fail "the held connection is not relayed: sessions $(relay_value 'd["sessions"]'); alpha's redirected $(counter alpha redirected), fallbacks $(fallbacks alpha)"

# solo, a block of its own, with a fixed CID.
virsh_do start solo --paused
seen "solo" listed solo 10 libvirt solo
same_uuid solo
log "start solo (virsh: $vms ms): listed $ms ms after, CID 10, source libvirt, block solo, libvirt's UUID"

# pool-a and pool-b, of the group pool, with automatic CIDs.
declare -A CID UUID
for d in pool-a pool-b; do
	start_pooled "$d"
	CID[$d]=$cid
	UUID[$d]=$uuid
	log "start $d (virsh: $vms ms): listed $ms ms after, CID $cid as virsh dumpxml says, block pool; in alpha's helperd $helperd_ms ms after"
done
[ "${CID[pool-a]}" != "${CID[pool-b]}" ] || fail "pool-a and pool-b both have CID ${CID[pool-a]}"

# stray, which no block stands for: the relay counts it among the running domains, and it
# is no guest, then or in the 1.5 s after.
virsh_do start stray --paused
seen "stray among 4 running domains" libvirt_is domains 4
took=$ms
end=$((t0 + 1500000))
while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
	relay_guests || fail "no status from the relay"
	[ -z "$(guest_line stray)" ] || fail "stray, which no block stands for, is a guest: $(guest_line stray)"
	sleep 0.1
done
only_libvirt_guests solo pool-a pool-b
log "start stray (virsh: $vms ms, CID $(domain_cid stray)): counted $took ms after, no guest in the 1.5 s after"

# pool-a destroyed: gone; the others stay.
virsh_do destroy pool-a
seen "pool-a gone" unlisted pool-a
only_libvirt_guests solo pool-b
took=$ms
seen "pool-a gone from alpha's helperd" untold pool-a
log "destroy pool-a (virsh: $vms ms): gone $took ms after, from alpha's helperd $ms ms after; solo and pool-b stay"

# pool-c: libvirt gives it the lowest free CID from 3, pool-a's.
start_pooled pool-c
[ "$uuid" != "${UUID[pool-a]}" ] || fail "pool-c has pool-a's UUID $uuid"
[ "$(awk -v c="$cid" '$2 == c' <<<"$GUESTS" | wc -l)" = 1 ] ||
	fail "CID $cid is more than one guest's: $(guests_brief)"
untold pool-a || fail "alpha's helperd still has pool-a"
if [ "$cid" = "${CID[pool-a]}" ]; then
	log "start pool-c (virsh: $vms ms): listed $ms ms after, with pool-a's CID $cid (libvirt gave it again) and a UUID of its own"
else
	log "start pool-c (virsh: $vms ms): listed $ms ms after, CID $cid: libvirt did not give pool-a's ${CID[pool-a]} again"
fi
log "alpha's helperd has pool-c, CID $cid, its own UUID, $helperd_ms ms after, and no pool-a"

# pool-a undefined and defined again: another domain under the old name, a new UUID.
vsh undefine pool-a >/dev/null
libvirt_define pool-a auto
start_pooled pool-a
[ "$uuid" != "${UUID[pool-a]}" ] || fail "pool-a, defined again, has its old UUID $uuid"
only_libvirt_guests solo pool-a pool-b pool-c
log "pool-a undefined, defined again, started (virsh: $vms ms): listed $ms ms after, CID $cid, a new UUID; in alpha's helperd so $helperd_ms ms after"

# libvirtd stopped (its domains run on): the relay says so and keeps its guests. Started
# again: the relay connects (it tries every second), lists the domains again, and has the
# same guests.
relay_guests
before=$GUESTS
lists=$(relay_value 'd["libvirt"]["lists"]')
stop_bg libvirtd
t0=${EPOCHREALTIME/./}
wait_for "the relay to see libvirtd gone" libvirt_is connected false
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
relay_guests
[ "$GUESTS" = "$before" ] || fail "without libvirtd the relay's guests changed: $(guests_brief)"
log "libvirtd stopped: connected false $ms ms after, the guests kept"
start_bg libvirtd /usr/sbin/libvirtd
wait_for "libvirtd to start again" vsh list
t0=${EPOCHREALTIME/./}
# listed_again: connected, with a list made since libvirtd came back.
listed_again() { libvirt_is connected true && [ "$(relay_value 'd["libvirt"]["lists"]')" -gt "$lists" ]; }
wait_for "the relay to connect to libvirt again and list its domains" listed_again
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
relay_guests
[ "$GUESTS" = "$before" ] ||
	fail "after libvirtd's restart the relay's guests: $(guests_brief); before: $(GUESTS=$before guests_brief)"
log "libvirtd started again: connected and listed $ms ms after virsh answered ($(libvirt_state)), the same $(wc -l <<<"$GUESTS") guests"
touch "$WORK/go"
join_bg held 30 || fail "the held connection: $(cat "$WORK/held.out")"
grep -q intact "$WORK/held.out" || fail "the held connection: $(cat "$WORK/held.out")"
log "the connection from alpha to beta held open through the relay all along: intact"
