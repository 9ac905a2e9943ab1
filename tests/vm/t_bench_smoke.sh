# The benchmark suite (bench/vm.sh: every path, every measurement) at its smoke sizes
# (bench/smoke.env), in the guests tests/vm/run set up, so that the suite cannot rot
# without the test suite failing. Its output goes to DIR/bench-smoke of testvm's --out DIR,
# where scripts/test makes the report from it on the host (bench/run --smoke --from). Its
# figures are not for reading: other tests run beside it.
BENCH_IN_SUITE=1
BENCH_OUT=${VMSHIM_TESTVM_OUT:?t_bench_smoke writes to testvm --out DIR}/bench-smoke
mkdir -p "$BENCH_OUT"
source "$TOP/bench/smoke.env"
source "$TOP/bench/vm.sh"
