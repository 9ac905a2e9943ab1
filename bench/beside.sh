#!/usr/bin/env bash
# Inside the test VM (bench/run --smoke -- COMMAND...): the benchmarks (bench/vm.sh, with
# the sizes VAR=VALUE) as lane 3 of the tests (tests/vm/lib.sh: guests, run directories and
# vsock ports of its own), COMMAND beside them. The benchmarks' progress comes after
# COMMAND's output. Fails if either fails.
#
#   bash bench/beside.sh [VAR=VALUE...] -- COMMAND...
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sizes=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	sizes+=("$1")
	shift
done
shift
env "${sizes[@]}" VMSHIM_LANE=3 bash "$here/vm.sh" 2>"$VMSHIM_TESTVM_OUT/progress.txt" &
bench=$!
"$@"
rc=$?
wait "$bench" || rc=1
echo "== bench/vm.sh (lane 3)"
cat "$VMSHIM_TESTVM_OUT/progress.txt"
exit $rc
