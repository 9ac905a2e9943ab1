# The Debian packages (scripts/debs builds them into build/deb, or DEBS): install, what they
# install, the packaged helperd serving the test guests with `vmshim run`, the units' start
# commands telling a service manager when they are ready, upgrade to the next version with a
# changed conffile, remove and purge.
#
# Not covered, because systemd is not PID 1 in the test VM (busybox is, and the tests run in
# a chroot): the maintainer scripts' start, restart and stop of the units (debhelper's scripts
# do them only where /run/systemd/system exists) and the boot order. What stands in for
# them: `systemd-analyze verify` of the installed units, each unit's ExecStart run by hand
# as systemd would run it (NOTIFY_SOCKET) and the enable symlinks deb-systemd-helper makes.
debs=${DEBS:-$TOP/build/deb}
plain=$TOP/build/progs # the shim of the package is not sanitized: nor may its programs be
wants=/etc/systemd/system/multi-user.target.wants
demo=/etc/systemd/system/t-packages-demo.service # a service for `vmshim enable`

# deb WHICH PACKAGE: the package file of that version (current or next).
deb() {
	compgen -G "$debs/$1/$2_*.deb" || fail "no $2 in $debs/$1: run scripts/debs first"
}

# installed PACKAGE: its dpkg status and version ("ii 0.1.0", "rc 0.1.0"), or nothing.
installed() { dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$1" 2>/dev/null | tr -s ' '; }

# dpkg_do ARGS...: dpkg with its output in $WORK/dpkg.log, shown on failure.
dpkg_do() {
	dpkg "$@" </dev/null >>"$WORK/dpkg.log" 2>&1 || { tail -n 20 "$WORK/dpkg.log"; fail "dpkg $*"; }
}

# The units' start commands as systemd would run them, which tells a Type=notify service
# where to say READY=1. The receiver stands for systemd's notify socket (a datagram socket
# that reads "READY=1"); unlike systemd it takes one message and checks, at that moment,
# that FILES exist.
NOTIFY_PY='
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(float(sys.argv[2]))
try:
    msg = s.recv(4096).decode()
except socket.timeout:
    sys.exit("nothing on the notify socket within %s s" % sys.argv[2])
missing = [f for f in sys.argv[3:] if not os.path.exists(f)]
print("got %r, missing then: %s" % (msg, missing or "none"))
sys.exit(1 if msg.split("\n").count("READY=1") != 1 or missing else 0)
'

# start_unit_by_hand UNIT NAME FILES...: UNIT's ExecStart in the background (job NAME),
# after making its RuntimeDirectory, and fails unless it says READY=1 once FILES exist.
start_unit_by_hand() {
	local unit=/lib/systemd/system/$1 name=$2 rundir
	shift 2
	local what="${unit##*/}'s ExecStart by hand"
	rundir=/run/$(sed -n 's/^RuntimeDirectory=//p' "$unit")
	mkdir -m 0755 "$rundir"
	rm -f "$WORK/notify.sock"
	start_bg "$name-ready" python3 -S -c "$NOTIFY_PY" "$WORK/notify.sock" 30 "$@"
	wait_for "the notify socket" test -S "$WORK/notify.sock"
	# shellcheck disable=SC2046 # the command line, split as systemd splits one without quotes
	start_bg "$name" env NOTIFY_SOCKET="$WORK/notify.sock" $(sed -n 's/^ExecStart=//p' "$unit")
	join_bg "$name-ready" 60 || fail "$what: $(cat "$WORK/$name-ready.out")"
	log "$what: $(cat "$WORK/$name-ready.out")"
}

# scripts/test builds the packages while the first tests run: it marks $debs/pending and,
# once scripts/debs is done, writes its exit status to $debs/rc ("unfinished" if it ended
# first).
for _ in $(seq 600); do
	[ -e "$debs/pending" ] || break
	sleep 1
done
[ ! -e "$debs/pending" ] || fail "the packages were not built within 600 s ($debs/pending is left from an interrupted scripts/test? run scripts/debs)"
[ ! -e "$debs/rc" ] || [ "$(cat "$debs/rc")" = 0 ] || fail "scripts/debs did not succeed (exit status or state: $(cat "$debs/rc")): run scripts/debs"

[ -z "$(installed vmshim-guest)$(installed vmshim-host)" ] ||
	fail "vmshim-guest or vmshim-host is installed on the machine the VM shares"
# Whatever happens, the next test finds neither the packages nor their daemons.
cleanup() {
	stop_bg helperd-unit
	stop_bg relay-unit
	rm -rf /run/vmshim /run/vmshim-relay
	dpkg -P vmshim-guest vmshim-host </dev/null >/dev/null 2>&1 || true
	rm -rf "$demo" "$demo.d"
}
trap cleanup EXIT
guest=$(deb current vmshim-guest)
host=$(deb current vmshim-host)
version=$(dpkg-deb -f "$guest" Version)
# man-db's trigger would index every manual page on the machine at each install: minutes
# under emulation. The file that asks for it lies in the VM's own layer.
rm -f /var/lib/man-db/auto-update

log "install $version"
dpkg_do -i "$guest" "$host"
[ "$(installed vmshim-guest)" = "ii $version" ] || fail "vmshim-guest: $(installed vmshim-guest)"
[ "$(installed vmshim-host)" = "ii $version" ] || fail "vmshim-host: $(installed vmshim-host)"
shim=$(vmshim path)
for f in "$shim" /usr/sbin/helperd /usr/bin/vmshimctl /usr/sbin/vmshim-relay \
	/lib/systemd/system/vmshim-helperd.service /lib/systemd/system/vmshim-relay.service \
	/usr/share/doc/vmshim-guest/examples/example.policy \
	/usr/share/doc/vmshim-host/examples/example-relay.policy; do
	[ -e "$f" ] || fail "$f is not installed"
done
[ "$(dpkg-query -W -f='${Conffiles}' vmshim-guest | awk '{print $1}')" = /etc/vmshim/policy ] ||
	fail "vmshim-guest's conffiles: $(dpkg-query -W -f='${Conffiles}' vmshim-guest)"
[ "$(dpkg-query -W -f='${Conffiles}' vmshim-host | awk '{print $1}')" = /etc/vmshim/relay.policy ] ||
	fail "vmshim-host's conffiles: $(dpkg-query -W -f='${Conffiles}' vmshim-host)"
for u in vmshim-helperd vmshim-relay; do
	[ -L "$wants/$u.service" ] || fail "$u is not enabled"
done
/usr/sbin/helperd --check -c /etc/vmshim/policy >"$WORK/check.out" 2>&1 ||
	fail "the packaged policy: $(cat "$WORK/check.out")"
/usr/sbin/vmshim-relay --check -c /etc/vmshim/relay.policy >"$WORK/check.out" 2>&1 ||
	fail "the packaged host policy: $(cat "$WORK/check.out")"
systemd-analyze verify /lib/systemd/system/vmshim-helperd.service \
	/lib/systemd/system/vmshim-relay.service >"$WORK/verify.out" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$WORK/verify.out")"

log "vmshim run puts the shim first; enable and disable write and remove a drop-in"
[ "$(LD_PRELOAD=libc.so.6 vmshim run -- sh -c 'echo "$LD_PRELOAD"')" = "$shim libc.so.6" ] ||
	fail "vmshim run: LD_PRELOAD is not '$shim libc.so.6'"
printf '%s\n' "[Service]" "ExecStart=/bin/true" >"$demo"
vmshim enable t-packages-demo >/dev/null
dropin=$demo.d/vmshim.conf
grep -qx "Environment=LD_PRELOAD=$shim" "$dropin" || fail "$dropin: no LD_PRELOAD"
grep -qx "After=vmshim-helperd.service" "$dropin" || fail "$dropin: not after helperd"
systemd-analyze verify "$demo" >"$WORK/verify.out" 2>&1 ||
	fail "systemd-analyze verify with the drop-in: $(cat "$WORK/verify.out")"
vmshim disable t-packages-demo >/dev/null
[ ! -e "$dropin" ] && [ ! -e "${dropin%/*}" ] || fail "vmshim disable left ${dropin%/*}"
! vmshim enable ../escape >/dev/null 2>&1 || fail "vmshim enable took ../escape"

# helperd finds only the listeners opened while it answers (README, Limits): which is why
# its unit comes before network.target and `vmshim enable` orders a service after it.
log "the packaged helperd and shim between alpha and beta"
HELPERD=/usr/sbin/helperd
VMSHIMCTL=/usr/bin/vmshimctl
start_helperd alpha
start_bg early in_guest beta vmshim run -- "$plain/echo_server" block 7000 0.0.0.0 1
wait_for "beta's listener on 7000" tcp_listening beta 7000
start_helperd beta
start_bg late in_guest beta vmshim run -- "$plain/echo_server" block 7001 0.0.0.0 1
wait_for "alpha to see beta serve 7001" serves alpha beta 7001
! serves alpha beta 7000 || fail "a listener opened before helperd is served now: see the unit's comment"
in_guest alpha vmshim run -- "$plain/echo_client" block 198.18.0.2 7001 100000 >"$WORK/late.client" ||
	fail "client to 7001: $(cat "$WORK/late.client")"
in_guest alpha vmshim run -- "$plain/echo_client" block 198.18.0.2 7000 100000 >"$WORK/early.client" ||
	fail "client to 7000: $(cat "$WORK/early.client")"
join_bg early && join_bg late || fail "the servers did not end"
[ "$(counter alpha redirected)" = 1 ] || fail "alpha redirected $(counter alpha redirected), not 1"
[ "$(counter beta sibling_accepted)" = 1 ] || fail "beta accepted $(counter beta sibling_accepted), not 1"
stop_helperd alpha
stop_helperd beta

# Not alone, though what the units use is the whole VM's: no other test uses their run
# directories (lanes have /run/laneK), the relay's vsock port 5460 (lanes have 5460 + K x
# 10^8) or /etc/vmshim, and the helperd's policy names no peer, so it binds no vsock port.
# Only t_security's set-user-ID client ignores VMSHIM_RUNDIR; it would find a table that
# lists no one, which leaves it on TCP as no table does.
log "the units' start commands say READY=1 once they serve"
start_unit_by_hand vmshim-helperd.service helperd-unit /run/vmshim/helperd.sock /run/vmshim/table
/usr/bin/vmshimctl status >"$WORK/status.out" || fail "vmshimctl status: $(cat "$WORK/status.out")"
start_unit_by_hand vmshim-relay.service relay-unit /run/vmshim-relay/status
stop_bg helperd-unit
stop_bg relay-unit
rm -rf /run/vmshim /run/vmshim-relay

next_guest=$(deb next vmshim-guest)
next_host=$(deb next vmshim-host)
next=$(dpkg-deb -f "$next_guest" Version)
dpkg --compare-versions "$next" gt "$version" || fail "next version $next is not above $version"
log "upgrade to $next, with /etc/vmshim/policy changed"
echo "# changed by t_packages" >>/etc/vmshim/policy
dpkg_do -i "$next_guest" "$next_host"
[ "$(installed vmshim-guest)" = "ii $next" ] || fail "vmshim-guest: $(installed vmshim-guest)"
[ "$(installed vmshim-host)" = "ii $next" ] || fail "vmshim-host: $(installed vmshim-host)"
grep -qx "# changed by t_packages" /etc/vmshim/policy || fail "the upgrade lost the changed policy"
[ -L "$wants/vmshim-helperd.service" ] || fail "vmshim-helperd is not enabled after the upgrade"

log "remove: the conffiles stay"
dpkg_do -r vmshim-guest vmshim-host
[ "$(installed vmshim-guest)" = "rc $next" ] || fail "vmshim-guest: $(installed vmshim-guest)"
for f in "$shim" /usr/sbin/helperd /usr/bin/vmshim /usr/sbin/vmshim-relay \
	/lib/systemd/system/vmshim-helperd.service; do
	[ ! -e "$f" ] || fail "$f is still there after remove"
done
[ -f /etc/vmshim/policy ] && [ -f /etc/vmshim/relay.policy ] || fail "remove took the conffiles"

log "purge: nothing stays"
dpkg_do -P vmshim-guest vmshim-host
[ -z "$(installed vmshim-guest)$(installed vmshim-host)" ] || fail "still known to dpkg after purge"
[ ! -e /etc/vmshim ] || fail "/etc/vmshim is still there after purge: $(ls -A /etc/vmshim)"
for u in vmshim-helperd vmshim-relay; do
	[ ! -e "$wants/$u.service" ] || fail "$u is still enabled after purge"
done
