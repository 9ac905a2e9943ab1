# iperf3 between the guests under the shim: 4 parallel streams for 3 s, in both directions
# (-R: the server sends). iperf3's JSON says what moved; alpha's veth says it was not TCP.
start_helperd alpha
start_helperd beta
start_bg iperf shimmed beta iperf3 -s -p 5201
wait_for "iperf3 server" vsock_listening beta "$(vsock_port beta 5201)"
for direction in "" -R; do
	before=$(veth_bytes alpha)
	timeout 60 env VMSHIM_RUNDIR="$(rundir alpha)" LD_PRELOAD="$SHIM_PRELOAD" \
		ip netns exec alpha iperf3 -c 198.18.0.2 -p 5201 -P 4 -t 3 $direction -J \
		>"$WORK/iperf.json" || fail "iperf3 $direction: $(tail -5 "$WORK/iperf.json")"
	moved=$(($(veth_bytes alpha) - before))
	summary=$(python3 - "$WORK/iperf.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("error"):
    sys.exit("iperf3: " + r["error"])
streams = len(r["end"]["streams"])
got = r["end"]["sum_received"]["bytes"]
if streams != 4 or got <= 0:
    sys.exit(f"{streams} streams, {got} bytes")
print(f"{streams} streams, {got / 2**20:.0f} MiB, {r['end']['sum_received']['bits_per_second'] / 1e9:.2f} Gbit/s")
PY
	) || fail "iperf3 $direction: $summary"
	[ "$moved" -lt 100000 ] || fail "iperf3 $direction: $moved bytes crossed alpha's veth"
	log "iperf3 -P 4 ${direction:-(client sends)}: $summary; veth $moved bytes"
done
