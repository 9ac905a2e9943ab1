# redis-server in beta, redis-benchmark and redis-cli in alpha, all under the shim.
# redis-benchmark: 50 clients, the default test set, with and without pipelining. redis-cli:
# values up to 1 MiB, read back and compared. redis itself sees the sibling's address.
start_helperd alpha
start_helperd beta
start_bg redis shimmed beta redis-server --port 6379 --bind 0.0.0.0 --protected-mode no \
	--save "" --appendonly no --dir "$WORK" --logfile "$WORK/redis.log"
wait_for "redis-server" vsock_listening beta "$(vsock_port beta 6379)"
before=$(veth_bytes alpha)

for pipeline in 1 16; do
	timeout 120 env VMSHIM_RUNDIR="$(rundir alpha)" LD_PRELOAD="$SHIM_PRELOAD" \
		ip netns exec "$(netns alpha)" redis-benchmark -h 198.18.0.2 -p 6379 -c 50 -n 1000 \
		-P "$pipeline" --csv >"$WORK/bench-$pipeline.csv" 2>"$WORK/bench-$pipeline.err" ||
		fail "redis-benchmark -P $pipeline (exit $?): $(tail -3 "$WORK/bench-$pipeline.err") $(tail -3 "$WORK/bench-$pipeline.csv")"
	tests=$(grep -c '^"[A-Z_]' "$WORK/bench-$pipeline.csv" || true)
	[ "$tests" -ge 15 ] || fail "-P $pipeline: only $tests tests: $(cat "$WORK/bench-$pipeline.csv")"
	if grep -qi error "$WORK/bench-$pipeline.csv" "$WORK/bench-$pipeline.err"; then
		fail "-P $pipeline: errors"
	fi
	log "redis-benchmark -c 50 -n 1000 -P $pipeline: $tests tests, e.g. $(grep '^"GET"' "$WORK/bench-$pipeline.csv")"
done

for size in 1 1000 100000 1048576; do
	# printable, so that redis-cli --raw prints it as it is; no pipe into head (SIGPIPE)
	head -c "$size" /dev/urandom | base64 -w 0 >"$WORK/b64"
	head -c "$size" "$WORK/b64" >"$WORK/value"
	answer=$(shimmed alpha redis-cli -h 198.18.0.2 -x SET "key$size" <"$WORK/value")
	[ "$answer" = OK ] || fail "SET of $size bytes: $answer"
	shimmed alpha redis-cli -h 198.18.0.2 --raw GET "key$size" >"$WORK/got"
	# --raw ends the value with a newline
	cmp -s <(cat "$WORK/value"; echo) "$WORK/got" || fail "GET of $size bytes differs"
done
log "redis-cli SET/GET of 1, 1000, 100000 and 1048576 bytes: identical"

clients=$(shimmed alpha redis-cli -h 198.18.0.2 CLIENT LIST)
echo "$clients" | grep -q "addr=198.18.0.1:" || fail "redis saw: $clients"
moved=$(($(veth_bytes alpha) - before))
[ "$moved" -lt 100000 ] || fail "$moved bytes crossed alpha's veth"
log "redis sees its client as $(echo "$clients" | grep -o 'addr=[^ ]*' | head -n 1); veth carried $moved bytes"
