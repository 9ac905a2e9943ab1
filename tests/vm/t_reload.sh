# One long-lived client process follows its helperd's table as it changes: a reload that
# drops the sibling (the table is rewritten in place), a reload that brings it back, a clean
# restart of helperd (a new table file), helperd killed (the table goes stale) then
# started again, and the file changed without a signal (and then broken). Each connection's path is read off alpha's veth byte counter.
cp "$POLICY" "$WORK/policy.alpha"
start_helperd alpha "$WORK/policy.alpha"
start_helperd beta
start_bg server shimmed beta "$PROGS/echo_server" epoll-lt 7600 0.0.0.0 100
wait_for "vsock listener" vsock_listening beta "$(vsock_port beta 7600)"
wait_for "alpha to know beta serves 7600" serves alpha beta 7600

# One connection stays open through everything below and must come out whole.
start_bg held shimmed alpha python3 -S -u -c '
import os, socket, sys, time
s = socket.create_connection(("198.18.0.2", 7600))
half = os.urandom(100000)
s.sendall(half)
print("open", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
s.sendall(half)
s.shutdown(socket.SHUT_WR)
got = b""
while chunk := s.recv(65536):
    got += chunk
assert got == half + half, len(got)
print("intact", flush=True)
' "$WORK/go"
wait_for "the held connection" grep -q open "$WORK/held.out"
ss_in alpha -Hn --vsock state established | grep -q ":$(vsock_port beta 7600)" ||
	fail "the held connection is not over vsock"

mkfifo "$WORK/ask"
start_bg client shimmed alpha python3 -S -u -c '
import socket, sys
for line in open(sys.argv[1]):
    s = socket.create_connection(("198.18.0.2", 7600))
    data = bytes(200000)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    assert got == data
    s.close()
    print("done", line.strip(), flush=True)
' "$WORK/ask"
exec 7>"$WORK/ask"

# connect_via PATH STEP: one connection from the client; checks the path it took.
connect_via() {
	local want=$1 step=$2 before moved
	before=$(veth_bytes alpha)
	echo "$step" >&7
	wait_for "connection $step" grep -q "^done $step\$" "$WORK/client.out"
	moved=$(($(veth_bytes alpha) - before))
	if [ "$want" = vsock ]; then
		[ "$moved" -lt 20000 ] || fail "$step: $moved bytes on the veth, expected vsock"
	else
		[ "$moved" -gt 400000 ] || fail "$step: $moved bytes on the veth, expected TCP"
	fi
	log "$step: $want"
}

reload_alpha() {
	kill -HUP "$(leaf_pid "$(cat "$WORK/helperd-alpha.pid")")"
	wait_for "alpha's reload" grep -q "$1" "$WORK/helperd-alpha.log"
}

connect_via vsock start
sed -i '/^peer beta$/,$d' "$WORK/policy.alpha"
reload_alpha "1 peers"
connect_via TCP "reload without beta"
cp "$POLICY" "$WORK/policy.alpha"
: >"$WORK/helperd-alpha.log"
reload_alpha "2 peers"
wait_for "alpha to know beta serves 7600" serves alpha beta 7600
connect_via vsock "reload with beta again"
stop_helperd alpha
connect_via TCP "helperd stopped"
start_helperd alpha "$WORK/policy.alpha"
wait_for "alpha to know beta serves 7600" serves alpha beta 7600
sleep 1.1 # the shim looks for a new table at most once a second
connect_via vsock "helperd restarted"
stop_helperd alpha KILL
sleep 6
connect_via TCP "helperd killed, table stale"
start_helperd alpha "$WORK/policy.alpha"
wait_for "alpha to know beta serves 7600" serves alpha beta 7600
sleep 1.1
connect_via vsock "helperd started again"
# The file changes, and no signal is sent: helperd notices by itself.
: >"$WORK/helperd-alpha.log"
sed -i '/^peer beta$/,$d' "$WORK/policy.alpha"
wait_for "alpha to notice the file" grep -q "1 peers" "$WORK/helperd-alpha.log"
connect_via TCP "file changed without beta, no signal"
: >"$WORK/helperd-alpha.log"
cp "$POLICY" "$WORK/policy.alpha"
wait_for "alpha to notice the file" grep -q "2 peers" "$WORK/helperd-alpha.log"
wait_for "alpha to know beta serves 7600" serves alpha beta 7600
connect_via vsock "file changed back, no signal"
echo "peer broken" >>"$WORK/policy.alpha"
wait_for "alpha to refuse the file" grep -q "reload refused, keeping the policy in force: $WORK/policy.alpha:" "$WORK/helperd-alpha.log"
connect_via vsock "broken file refused, the last good policy stays"
touch "$WORK/go"
join_bg held || fail "the held connection: $(cat "$WORK/held.out")"
grep -q intact "$WORK/held.out" || fail "the held connection: $(cat "$WORK/held.out")"
log "a vsock connection held open through all of the above: intact"
exec 7>&-
