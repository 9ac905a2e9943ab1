# Sibling traffic through vmshim-relay, the host side (README, "Host side"): alpha and beta
# reach each other `via relay`, and the relay, in the namespace "host", forwards over
# vhost-vsock (all on CID 1 here, so it knows the guests by their port blocks). Discovery,
# curl, iperf3 and a half-close go through it, with the names of a direct connection; the
# host policy refuses a port; a stopped relay means TCP until it is back; the caps per guest
# and in total; bad requests are closed and counted while good ones pass.
write_relay_policy
write_host_policy "$WORK/relay.policy"
start_relay "$WORK/relay.policy"
start_helperd alpha
start_helperd beta
want=copy
! kernel_at_least 6.12 || want=sockmap
path=$(relay_value 'd["forwarding"]')
[ "$path" = "$want" ] || fail "relay forwards by $path on $(uname -r), want $want"
log "discovery through the relay: alpha and beta up; forwarding: $path on $(uname -r)"

# curl in alpha fetches 4 MiB from beta: redirected, through the relay, not over the veth.
mkdir -p "$WORK/www"
head -c $((4 << 20)) /dev/urandom >"$WORK/www/big"
start_bg http shimmed beta python3 -S -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www"
wait_for "http.server's vsock listener" vsock_listening beta "$(vsock_port beta 8080)"

# fetch WHAT: curl's download of big from beta, which must arrive intact; sets moved (bytes
# on alpha's veth meanwhile) and rate.
fetch() {
	local before
	before=$(veth_bytes alpha)
	rm -f "$WORK/got"
	rate=$(http_get alpha http://198.18.0.2:8080/big "$WORK/got" LD_PRELOAD="$SHIM_PRELOAD") ||
		fail "$1: the download failed"
	moved=$(($(veth_bytes alpha) - before))
	cmp -s "$WORK/www/big" "$WORK/got" || fail "$1: the file differs"
}

r0=$(counter alpha redirected)
n0=$(relayed_total)
s0=$(relay_value 'd["counters"]["spliced"]')
fetch "through the relay"
[ "$(counter alpha redirected)" -gt "$r0" ] || fail "curl was not redirected"
[ "$(relayed_total)" -gt "$n0" ] || fail "the relay carried nothing"
[ "$moved" -lt 200000 ] || fail "alpha's veth carried $moved bytes"
counted_down() { [ "$(relay_value 'd["counters"]["bytes_down"]')" -ge "$1" ]; }
wait_for "the relay to count the download" counted_down $((4 << 20))
spliced=$(($(relay_value 'd["counters"]["spliced"]') - s0))
[ "$want" = copy ] || [ "$spliced" -ge 1 ] || fail "curl's connection was not spliced"
log "curl: 4 MiB intact through the relay ($rate B/s), veth $moved bytes; $spliced spliced"

# Both ends see the names of a direct connection: FROM carried alpha's source port.
start_bg echo shimmed beta "$PROGS/echo_server" block 7400 0.0.0.0 1
wait_for "echo server" vsock_listening beta "$(vsock_port beta 7400)"
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7400 100000 >"$WORK/client.out" ||
	fail "echo client: $(cat "$WORK/client.out")"
join_bg echo 20 || fail "echo server: $(cat "$WORK/echo.out")"
names_agree "$WORK/client.out" "$WORK/echo.out"
log "names agree: $(field "$WORK/client.out" connected local) -> $(field "$WORK/client.out" connected peer)"

# Short connections one after another, each closed by the caller while beta's server still
# holds its end for a moment: the relay ends each session at the caller's close, before the
# server closes, and dials the next from its next source port in turn. vsock has no
# TIME_WAIT (on 6.12 a port of helperd's used again soon met the old connection's late
# reset): every one is relayed, none falls back.
cat >"$WORK/linger.py" <<'PY'
import socket, sys, threading, time
port, count = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(64)
ls.settimeout(60)
def serve(c):
    with c:
        c.sendall(c.recv(64))
        c.recv(64)  # the caller's close
        time.sleep(0.5)
threads = []
for _ in range(count):
    threads.append(threading.Thread(target=serve, args=(ls.accept()[0],)))
    threads[-1].start()
for t in threads:
    t.join()
print("served", count)
PY
n=20
start_bg linger shimmed beta python3 -S "$WORK/linger.py" 7410 "$n"
wait_for "lingering server" vsock_listening beta "$(vsock_port beta 7410)"
r0=$(counter alpha redirected)
f0=$(fallbacks alpha)
shimmed alpha python3 -S - "$n" <<'PY' || fail "short connections to a lingering server"
import socket, sys
for i in range(int(sys.argv[1])):
    with socket.create_connection(("198.18.0.2", 7410), timeout=10) as s:
        s.sendall(b"ping %d\n" % i)
        got = s.recv(64)
        assert got == b"ping %d\n" % i, f"connection {i} got {got!r}"
PY
join_bg linger 30 || fail "lingering server: $(cat "$WORK/linger.out")"
redirected=$(($(counter alpha redirected) - r0))
fell_back=$(($(fallbacks alpha) - f0))
[ "$redirected" = "$n" ] && [ "$fell_back" = 0 ] ||
	fail "$n short connections to a lingering server: $redirected redirected, $fell_back fell back"
log "$n short connections in a row, each closed before the server's end: all relayed"

# iperf3, 4 streams each way.
start_bg iperf shimmed beta iperf3 -s -p 5201
wait_for "iperf3 server" vsock_listening beta "$(vsock_port beta 5201)"
for direction in "" -R; do
	n0=$(relayed_total)
	iperf3_from_alpha $direction
	[ "$moved" -lt 100000 ] || fail "iperf3 $direction: $moved bytes crossed alpha's veth"
	# the control connection and 4 streams
	[ "$(relayed_total)" -ge $((n0 + 5)) ] || fail "iperf3 $direction: not through the relay"
	log "iperf3 -P 4 ${direction:-(client sends)}: $summary through the relay; veth $moved bytes"
done

# Half-close: nc -N sends 3 MB and shuts down its write side; the server answers with the
# digest of what it read, after the EOF the relay passed on.
start_bg half shimmed beta python3 -S "$TOP/tests/vm/apps/pyserve.py" threading-server 7951 1
wait_for "half-close server" vsock_listening beta "$(vsock_port beta 7951)"
head -c 3000000 /dev/urandom >"$WORK/file"
n0=$(relayed_total)
answer=$(shimmed alpha nc -N 198.18.0.2 7951 <"$WORK/file") || fail "nc -N failed"
[ "${answer%% *}" = "$(sha256sum <"$WORK/file" | cut -d' ' -f1)" ] ||
	fail "nc -N: the server read something else: $answer"
[ "$(relayed_total)" -gt "$n0" ] || fail "nc -N: not through the relay"
log "half-close: 3 MB, write side shut, digest came back through the relay"

# A slow reader: beta's server takes ~4 MB/s of alpha's 8 MB. Copies hold at most the
# buffer; on the sockmap path the kernel's queue for beta passes it and the relay takes the
# connection back to copy the rest. Every byte arrives.
start_bg slow shimmed beta python3 -S "$TOP/tests/vm/apps/pyserve.py" slow-server 7952 1
wait_for "slow server" vsock_listening beta "$(vsock_port beta 7952)"
head -c 8000000 /dev/urandom >"$WORK/file"
t0=$(relay_value 'd["counters"]["taken_back"]')
shimmed alpha nc -N 198.18.0.2 7952 <"$WORK/file" >"$WORK/slow.answer" &
client=$!
# its session in the relay's status says it was taken back, and why
why=
for _ in $(seq 100); do
	[ "$want" != copy ] && kill -0 $client 2>/dev/null || break
	why=$(relay_value "next((s['taken_back_why'] for s in d['sessions'] if s['port'] == $(vsock_port beta 7952) and s['taken_back']), '')")
	[ -z "$why" ] || break
done
wait $client || fail "slow reader: nc failed"
answer=$(cat "$WORK/slow.answer")
[ "${answer%% *}" = "$(sha256sum <"$WORK/file" | cut -d' ' -f1)" ] ||
	fail "slow reader: the server read something else: $answer"
taken=$(($(relay_value 'd["counters"]["taken_back"]') - t0))
[ "$want" = copy ] || [ "$taken" -ge 1 ] || fail "slow reader: the relay never took it back"
[ "$want" = copy ] || [ -n "$why" ] || fail "slow reader: no session in the relay's status said it was taken back"
log "slow reader: 8 MB intact; taken back from the kernel $taken times ($path${why:+; its status said: $why})"

# A bulk stream whose reader keeps up stays in the kernel: 14 writes of 1 MiB, one every
# 0.3 s (3.5 MB/s, a quarter of what one spliced stream moved under TCG), into a reader that
# takes all it gets. Each write passes the buffer (256 KiB) in the kernel's queue for a
# moment, which took it back before the kernel looked at the reader (bench/splice_probe.sh).
start_bg keepup shimmed beta python3 -S "$TOP/tests/vm/apps/pyserve.py" threading-server 7953 1
wait_for "keep-up server" vsock_listening beta "$(vsock_port beta 7953)"
t0=$(relay_value 'd["counters"]["taken_back"]')
s0=$(relay_value 'd["counters"]["spliced"]')
shimmed alpha python3 -S - <<'PY' || fail "a reader that keeps up: the stream failed"
import hashlib, os, socket, time
chunk, digest = os.urandom(1 << 20), hashlib.sha256()
s = socket.create_connection(("198.18.0.2", 7953), timeout=30)
for _ in range(14):
    s.sendall(chunk)
    digest.update(chunk)
    time.sleep(0.3)
s.shutdown(socket.SHUT_WR)
answer = b""
while piece := s.recv(4096):
    answer += piece
assert answer.split()[0].decode() == digest.hexdigest(), f"the server read something else: {answer!r}"
PY
join_bg keepup 20 || fail "keep-up server: $(cat "$WORK/keepup.out")"
taken=$(($(relay_value 'd["counters"]["taken_back"]') - t0))
spliced=$(($(relay_value 'd["counters"]["spliced"]') - s0))
[ "$want" = copy ] || [ "$spliced" -ge 1 ] || fail "a reader that keeps up: not spliced"
[ "$want" = copy ] || [ "$taken" = 0 ] ||
	fail "a reader that keeps up: taken back from the kernel $taken times: $(grep 'taken back' "$WORK/relay.log" | tail -n 1)"
log "a reader that keeps up: 14 MiB intact in 1 MiB writes; spliced $spliced, taken back $taken ($path)"

# Both directions at once with a slow reader: alpha sends 6 MB to an echo server and reads
# the echo slowly. The server blocks writing whenever the relay stops reading from it, so a
# relay that took the connection back but waited for the kernel's queue toward the server
# before reading would hold both for ever.
start_bg echo2 shimmed beta "$PROGS/echo_server" block 7954 0.0.0.0 1
wait_for "echo server" vsock_listening beta "$(vsock_port beta 7954)"
t0=$(relay_value 'd["counters"]["taken_back"]')
shimmed alpha python3 -S - <<'PY' || fail "echo with a slow reader"
import os, socket, threading, time
data = os.urandom(6_000_000)
s = socket.create_connection(("198.18.0.2", 7954), timeout=30)
def send_all():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
writer = threading.Thread(target=send_all)
writer.start()
got, deadline = bytearray(), time.monotonic() + 60
while len(got) < len(data) and time.monotonic() < deadline:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
    time.sleep(len(chunk) / 4e6)  # about 4 MB/s: slower than the relay
writer.join(30)
assert got == data, f"{len(got)} of {len(data)} bytes came back, {'equal' if got == data[:len(got)] else 'different'}"
PY
join_bg echo2 20 || fail "echo server: $(cat "$WORK/echo2.out")"
taken=$(($(relay_value 'd["counters"]["taken_back"]') - t0))
[ "$want" = copy ] || [ "$taken" -ge 1 ] || fail "echo with a slow reader: never taken back"
log "echo with a slow reader: 6 MB each way intact; taken back $taken times ($path), packets rescued so far $(relay_value 'd["counters"]["rescued"]')"

# A caller that leaves mid-stream: it writes to an echo server without reading its echo and
# closes once its writes block, so the server is stuck writing back and the relay holds
# bytes for a caller that is gone. The relay must notice, pass the server an error as a
# direct connection would, and end the session instead of holding it (and one of alpha's
# connections) for ever.
alpha_holds() { [ "$(relay_value 'd["guests"][0]["connections"]')" = "$1" ]; }
held=$(relay_value 'd["guests"][0]["connections"]')
start_bg stuck shimmed beta "$PROGS/echo_server" block 7953 0.0.0.0 1
wait_for "echo server" vsock_listening beta "$(vsock_port beta 7953)"
shimmed alpha python3 -S - <<'PY' || fail "the leaving caller"
import socket, time
s = socket.create_connection(("198.18.0.2", 7953), timeout=10)
s.setblocking(False)
sent, chunk, deadline = 0, b"x" * 65536, time.monotonic() + 20
blocked_since = None
while time.monotonic() < deadline:
    try:
        sent += s.send(chunk)
        blocked_since = None
    except BlockingIOError:
        blocked_since = blocked_since or time.monotonic()
        if time.monotonic() - blocked_since > 1:
            break
        time.sleep(0.01)
assert blocked_since, f"the writes never blocked ({sent} bytes sent)"
s.close()
print(f"    the caller wrote {sent} bytes, read none, and left")
PY
wait_for "the leaving caller's session to end" alpha_holds "$held"
join_bg stuck 20 || true # the server's write fails, as on a direct connection
log "a caller that left while the server wrote back: the relay ended the session"

# restart_relay POLICY: a relay with another host policy; the helperds find each other
# through it again.
restart_relay() {
	stop_relay
	start_relay "$1"
	wait_for "alpha to find beta again" peer_up alpha beta
	wait_for "beta to find alpha again" peer_up beta alpha
}

# The host policy lets alpha reach only beta's control port: discovery works, curl goes
# over TCP, and the relay counts the refusal.
REACH_BETA=$((BASE[beta] + 131072)) write_host_policy "$WORK/relay-narrow.policy"
restart_relay "$WORK/relay-narrow.policy"
f0=$(counter alpha fallback_refused)
fetch "refused by the host policy"
[ "$moved" -gt $((4 << 20)) ] || fail "refused, yet only $moved bytes crossed the veth"
[ "$(counter alpha fallback_refused)" -gt "$f0" ] || fail "alpha's shim did not count the refusal"
[ "$(relay_value 'd["counters"]["refused"]')" -ge 1 ] || fail "the relay did not count it"
log "host policy refuses beta's port 8080 to alpha: curl over TCP ($moved bytes on the veth)"

# A stopped relay: new connections go over TCP; back once it is.
stop_relay
fetch "relay stopped"
[ "$moved" -gt $((4 << 20)) ] || fail "relay stopped, yet only $moved bytes crossed the veth"
restart_relay "$WORK/relay.policy"
r0=$(counter alpha redirected)
fetch "relay back"
[ "$(counter alpha redirected)" -gt "$r0" ] && [ "$moved" -lt 200000 ] ||
	fail "relay back: not redirected ($moved bytes on the veth)"
log "relay stopped: curl over TCP; started again: through the relay"

# The cap: alpha may have 3 connections through the relay; its helperd's control
# connection is one, two held transfers the others; a fourth falls back to TCP.
write_host_policy "$WORK/relay-capped.policy" "max-per-guest 3"
restart_relay "$WORK/relay-capped.policy"
start_bg capped shimmed beta "$PROGS/echo_server" epoll-lt 7500 0.0.0.0 3
wait_for "echo server" vsock_listening beta "$(vsock_port beta 7500)"
for i in 1 2; do
	start_bg "hold$i" shimmed alpha python3 -S "$TOP/tests/vm/apps/hold_client.py" 198.18.0.2 7500 200000 "$WORK/go"
done
alpha_holds() { [ "$(relay_value 'd["guests"][0]["connections"]')" = "$1" ]; }
wait_for "alpha's 3 relayed connections" alpha_holds 3
e0=$(counter alpha fallback_error)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7500 100000 >"$WORK/fourth.out" ||
	fail "the fourth connection: $(cat "$WORK/fourth.out")"
[ "$(counter alpha fallback_error)" -gt "$e0" ] || fail "the fourth connection was not refused as busy"
[ "$(relay_value 'd["counters"]["busy"]')" -ge 1 ] || fail "the relay did not count it busy"
touch "$WORK/go"
for i in 1 2; do
	join_bg "hold$i" 30 || fail "held transfer $i: $(cat "$WORK/hold$i.out")"
done
log "max-per-guest 3: the fourth connection went over TCP, the held ones completed"

# The cap in total: the two helperds' control connections fill max-connections 2.
write_host_policy "$WORK/relay-full.policy" "max-connections 2"
restart_relay "$WORK/relay-full.policy"
start_bg full shimmed beta "$PROGS/echo_server" block 7501 0.0.0.0 1
wait_for "echo server" vsock_listening beta "$(vsock_port beta 7501)"
e0=$(counter alpha fallback_error)
b0=$(relay_value 'd["counters"]["busy"]')
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7501 100000 >"$WORK/full.out" ||
	fail "a connection to a full relay: $(cat "$WORK/full.out")"
[ "$(counter alpha fallback_error)" -gt "$e0" ] && [ "$(relay_value 'd["counters"]["busy"]')" -gt "$b0" ] ||
	fail "max-connections 2: the connection was not refused as busy"
join_bg full 20 || fail "echo server: $(cat "$WORK/full.out")"
log "max-connections 2: a third connection went over TCP"

# Bad requests: at least 500 connections from alpha's block send garbage, one sends nothing,
# one comes from no guest's ports; each is closed and counted, and a good connection
# meanwhile is relayed. The flood goes on until the good connection has ended (at most 5000,
# 60 s), however long that takes on a busy VM.
restart_relay "$WORK/relay.policy"
start_bg good shimmed beta "$PROGS/echo_server" block 7600 0.0.0.0 1
wait_for "echo server" vsock_listening beta "$(vsock_port beta 7600)"
cat >"$WORK/flood.py" <<'PY'
import os, socket, sys, time
relay, first, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 60
answers, n = {}, 0
while n < 500 or (not os.path.exists(stop) and n < 5000):
    if time.monotonic() > deadline:
        sys.exit("flood: out of time")
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.bind((socket.VMADDR_CID_ANY, first + n))
    s.connect((1, relay))
    s.sendall(b"GET / HTTP/1.0\r\n\r\nxx")  # 20 bytes, not a request
    s.settimeout(5)
    a = s.recv(64)
    answers[a] = answers.get(a, 0) + 1
    s.close()
    n += 1
    if n == 1:
        print("flooding", flush=True)
# REPLY with status 4 (bad request): magic VMSR, version 1, type 2
bad = answers.pop(bytes.fromhex("564d535201020400"), 0)
print(f"bad_requests={bad} other={answers} stopped={int(os.path.exists(stop))}")
PY
rm -f "$WORK/flood.stop"
start_bg flood ip netns exec "$(netns alpha)" python3 -S "$WORK/flood.py" "$RELAY_PORT" \
	"$((BASE[alpha] + 131072 + 40000))" "$WORK/flood.stop"
wait_for "the flood" grep -q flooding "$WORK/flood.out"
n0=$(relayed_total)
start=$(date +%s%N)
shimmed alpha "$PROGS/echo_client" block 198.18.0.2 7600 100000 >"$WORK/good-client.out" ||
	fail "good connection during the flood: $(cat "$WORK/good-client.out")"
took=$((($(date +%s%N) - start) / 1000000))
touch "$WORK/flood.stop"
[ "$(relayed_total)" -gt "$n0" ] || fail "the good connection was not relayed"
join_bg good 20 || fail "echo server: $(cat "$WORK/good.out")"
join_bg flood 90 || fail "flood: $(cat "$WORK/flood.out")"
grep -q "other={} stopped=1" "$WORK/flood.out" || fail "flood (stopped=0: it was over before the good connection): $(cat "$WORK/flood.out")"
flooded=$(sed -n 's/^bad_requests=\([0-9]*\) .*/\1/p' "$WORK/flood.out")
[ "${flooded:-0}" -ge 500 ] || fail "flood: $(cat "$WORK/flood.out")"
ip netns exec "$(netns alpha)" python3 -S - "$RELAY_PORT" "${BASE[alpha]}" "$((7777777 + LANE_PORTS))" <<'PY' || fail "silent and unknown callers"
import socket, sys, time
relay, alpha_base, stranger_port = map(int, sys.argv[1:4])
silent = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
silent.bind((socket.VMADDR_CID_ANY, alpha_base + 131072 + 50000))
silent.connect((1, relay))
silent.settimeout(10)
start = time.monotonic()
assert silent.recv(64) == b"", "the relay sent something to a silent caller"
print(f"    silent caller closed after {time.monotonic() - start:.1f} s")
stranger = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
stranger.bind((socket.VMADDR_CID_ANY, stranger_port))  # in no guest's block
stranger.connect((1, relay))
stranger.settimeout(10)
try:
    assert stranger.recv(64) == b"", "the relay answered a stranger"
except ConnectionResetError:
    pass
PY
bad=$(relay_value 'd["counters"]["bad_requests"]')
unknown=$(relay_value 'd["unknown_callers"]')
[ "$bad" -ge $((flooded + 1)) ] && [ "$unknown" -ge 1 ] || fail "counted $bad bad requests, $unknown unknown callers"
log "$flooded garbage requests and a silent one closed ($bad counted), a stranger refused; a good connection relayed meanwhile in $took ms"
