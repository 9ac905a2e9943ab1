# iperf3 between the guests under the shim: 4 parallel streams for 2 s, in both directions
# (-R: the server sends). iperf3's JSON says what moved; alpha's veth says it was not TCP.
start_helperd alpha
start_helperd beta
start_bg iperf shimmed beta iperf3 -s -p 5201
wait_for "iperf3 server" vsock_listening beta "$(vsock_port beta 5201)"
for direction in "" -R; do
	iperf3_from_alpha $direction
	[ "$moved" -lt 100000 ] || fail "iperf3 $direction: $moved bytes crossed alpha's veth"
	log "iperf3 -P 4 ${direction:-(client sends)}: $summary; veth $moved bytes"
done
