#!/usr/bin/env python3
"""Turns the raw results of bench/vm.sh (a directory) into the Markdown report that bench/run
writes to bench/results/DATE.md.

    report.py DIR DATE ELAPSED_S ACCEL COMMIT HOST_COMMAND TESTVM_COMMAND HOST_CPUS

DIR also holds bench/run's host-load.txt ("TIME QEMU_PROCESSES LOAD" every 2 s, ours
included) and console.txt (the VM's output, each line prefixed with the host's TIME).
"""
import glob
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def kv(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def read_raw(d):
    rows = []
    with open(os.path.join(d, "raw.txt")) as f:
        for line in f:
            line = line.strip()
            if line:
                key, _, rest = line.partition(" ")
                rows.append((key, kv(rest), line))
    return rows


def fmt(x, digits=1):
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return a / b if b else float("nan")


def strace_table(path):
    """{syscall: calls} from an strace -c summary."""
    calls = {}
    if not os.path.exists(path):
        return calls
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and re.match(r"^[\d.]+$", p[0]) and p[-1] != "total":
                # % time, seconds, usecs/call, calls, [errors], syscall
                calls[p[-1]] = int(p[3])
    return calls


def cg_objects(path):
    out = subprocess.run([sys.executable, os.path.join(HERE, "cg_objects.py"), path],
                         capture_output=True, text=True, check=True).stdout
    objs, total = {}, {}
    for line in out.splitlines():
        p = line.split()
        vals = dict(x.split("=") for x in p if "=" in x and not x.startswith("/"))
        vals = {k: int(v) for k, v in vals.items()}
        if p[0] == "total":
            total = vals
        else:
            objs[p[-1]] = vals
    return objs, total


def cg_functions(path):
    """callgrind_annotate's exclusive per-function listing, rows with a cost only."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100",
                          "--auto=no", path], capture_output=True, text=True).stdout
    rows, on = [], False
    for line in out.splitlines():
        if "file:function" in line:
            on = True
            continue
        if on and line.strip() and not line.startswith("---"):
            if re.match(r"^\s*\.\s", line):
                continue
            rows.append(line.rstrip())
    return rows


def host_phases(d):
    """The most other QEMU processes seen on the host during each part (a, b, c), and the
    highest load average."""
    try:
        samples = [(int(t), int(n), float(l)) for t, n, l in
                   (line.split() for line in open(os.path.join(d, "host-load.txt")) if line.strip())]
        console = [line.split(" ", 1) for line in open(os.path.join(d, "console.txt"))]
    except (OSError, ValueError):
        return {}, "?"
    marks = {}
    for t, line in console:
        for p, text in (("a", "bench: fast path:"), ("b", "bench: redirected:"),
                        ("c", "bench: throughput:")):
            if line.startswith(text) and p not in marks:
                marks[p] = int(t)
    end = int(console[-1][0]) if console else 0
    order = sorted(marks.items(), key=lambda x: x[1])
    phases = {}
    for i, (p, t0) in enumerate(order):
        t1 = order[i + 1][1] if i + 1 < len(order) else end
        seen = [n - 1 for t, n, _ in samples if t0 - 2 <= t <= t1 + 2]
        phases[p] = max(seen + [0])
    load = max((l for _, _, l in samples), default=0.0)
    return phases, f"{load:.2f}"


def main():
    d, date, elapsed, accel, commit, host_cmd, vm_cmd, cpus = sys.argv[1:9]
    phases, load = host_phases(d)
    qemus = str(max(phases.values())) if phases else "?"
    rows = read_raw(d)
    get = lambda key: [r for r in rows if r[0] == key]
    vm = get("vm")[0][1] if get("vm") else {}
    out = []
    w = out.append

    w(f"# vmshim benchmarks, {date}")
    w("")
    w("Produced by `bench/run` (see bench/README.md for what each benchmark measures).")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| commit | `{commit}` |")
    w(f"| host command | `{host_cmd}` |")
    w(f"| VM command | `{vm_cmd}` |")
    w(f"| VM | Linux {vm.get('uname', '?')}, {vm.get('cpus', '?')} vCPUs, "
      f"CPU model `{vm.get('model', '?').replace('_', ' ')}`, accelerator **{accel}** |")
    w(f"| wall time of the whole run | {elapsed} s |")
    w(f"| host during the run | {cpus} CPUs, highest load average {load}; other QEMU "
      "processes at once: " + (", ".join(f"{p}) {n}" for p, n in sorted(phases.items()))
                               if phases else "?") + " |")
    w("")
    disturbed = {p for p, n in phases.items() if n > 0}
    if disturbed:
        w("**Warning: another VM ran on the host during part " +
          ", ".join(sorted(disturbed)) + ", competing with the test VM for the host's CPUs: the "
          "times (not the counts) of that part are disturbed, and marked so below.**")
        w("")
    mark = lambda p: " (disturbed: another VM ran)" if p in disturbed else ""
    w("**How to read this.** ")
    if accel == "tcg":
        w("The VM ran under TCG, QEMU's software emulation: every guest instruction is "
          "translated, so absolute times are many times slower than on hardware and drift "
          "from run to run by tens of percent (system calls and context switches suffer most). "
          "Only ratios between variants measured in the same run, interleaved, mean anything, "
          "and even those are noisy; instruction counts (callgrind) and system-call counts "
          "(strace) do not depend on the emulation and are exact and repeatable.")
    else:
        w("The VM ran under KVM. Ratios between variants measured in the same run are the "
          "meaningful numbers; absolute values depend on the host.")
    w("The guests are network namespaces of one kernel (tests/vm/lib.sh), so \"vsock\" here "
      "is `vsock_loopback` (CID 1) inside that kernel, not virtio-vsock between two real VMs, "
      "and \"TCP\" is a veth pair and a bridge in the same kernel. The ratios compare the "
      "shim's paths with plain TCP under those conditions. helperd runs without `-d`.")
    w("")

    summary = []

    # ---- a) fast path -----------------------------------------------------------------
    w("## a) Fast path: a connect() that is not redirected")
    w("")
    w("alpha (helperd running, its table lists beta) connects to gamma (198.18.0.3, not in "
      "the policy; `bench/accept_server` there, no shim): `connect_bench 198.18.0.3 7000 N` "
      "without and with `LD_PRELOAD=libvmshim.so`, alternating which goes first in each round.")
    w("")
    check = get("fast-check")
    if check:
        dbg = [line.split(" ", 1)[1] for key, _, line in rows if key == "fast-check-stderr"]
        mapped = any("mapped table" in x for x in dbg)
        redirected = any("connected to sibling" in x for x in dbg)
        w("Check first, with `VMSHIM_DEBUG=1` (3 connects), that this is the path meant: the "
          "shim's debug output was")
        w("")
        w("```")
        w("\n".join(dbg) if dbg else "(nothing)")
        w("```")
        w("")
        w(("The table was mapped" if mapped else "**The table was NOT mapped**") + " and " +
          ("**a connection was redirected**" if redirected else "no connection was redirected") +
          "; the timed runs below all moved their bytes over alpha's veth (plain TCP).")
        w("")
    fast = get("fast")
    if fast:
        w("| round | variant | N | per connect (µs) | bytes on alpha's veth |")
        w("|---|---|---|---|---|")
        for _, k, _ in fast:
            w(f"| {k['round']} | {k['variant']} | {k['n']} | {k['per_connect_us']} | {k['veth_bytes']} |")
        w("")
        per = {v: [float(k["per_connect_us"]) for _, k, _ in fast if k["variant"] == v]
               for v in ("plain", "shim")}
        if per["plain"] and per["shim"]:
            med = {v: statistics.median(x) for v, x in per.items()}
            mn = {v: min(x) for v, x in per.items()}
            rounds = sorted({k["round"] for _, k, _ in fast})
            by = {(k["round"], k["variant"]): float(k["per_connect_us"]) for _, k, _ in fast}
            rr = [by[(r, "shim")] / by[(r, "plain")] for r in rounds
                  if (r, "shim") in by and (r, "plain") in by]
            w(f"Median per connect: without the shim {fmt(med['plain'])} µs, with "
              f"{fmt(med['shim'])} µs: **ratio with/without {med['shim'] / med['plain']:.2f}** "
              f"(best runs: {fmt(mn['plain'])} vs {fmt(mn['shim'])} µs, ratio "
              f"{mn['shim'] / mn['plain']:.2f}; per-round ratios "
              f"{', '.join(f'{x:.2f}' for x in rr)}).")
            w("")
            summary.append(("a) fast path, wall time per connect, with/without shim" + mark("a"),
                            f"{med['shim'] / med['plain']:.2f}",
                            f"median {fmt(med['shim'])} vs {fmt(med['plain'])} µs; per round "
                            f"{min(rr):.2f}..{max(rr):.2f}" if rr else ""))

    cg = {k["variant"]: k for _, k, _ in get("callgrind")}
    if cg:
        w("### Instruction counts (callgrind)")
        w("")
        w("`valgrind --tool=callgrind --collect-atstart=no --toggle-collect=bench_loop` counts "
          "only the timed loop: N connects (socket, connect, close), after an untimed warm-up "
          "connect that took the shim's one-time set-up (resolving libc, mapping the table). "
          "User-space instructions only: the kernel's work in the system calls is not counted. "
          "Exclusive instructions per object file (bench/cg_objects.py):")
        w("")
        w("| variant | N | total Ir | Ir per connect | in libvmshim.so | in libc | in connect_bench | system calls per connect (valgrind's count) |")
        w("|---|---|---|---|---|---|---|---|")
        per_conn = {}
        for v in ("plain", "shim"):
            if v not in cg:
                continue
            n = int(cg[v]["n"])
            objs, total = cg_objects(os.path.join(d, cg[v]["file"]))
            find = lambda sub: sum(c.get("Ir", 0) for o, c in objs.items() if sub in o)
            ir = total.get("Ir", 0)
            per_conn[v] = (ir / n, find("libvmshim.so") / n)
            w(f"| {v} | {n} | {ir:,} | {ir / n:,.1f} | {find('libvmshim.so') / n:,.1f} | "
              f"{find('libc.so') / n:,.1f} | {find('connect_bench') / n:,.1f} | "
              f"{total.get('sysCount', 0) / n:.2f} |")
        w("")
        if "plain" in per_conn and "shim" in per_conn:
            extra = per_conn["shim"][0] - per_conn["plain"][0]
            w(f"**The shim adds {extra:,.0f} user-space instructions per connect** "
              f"(socket + connect + close), {per_conn['shim'][1]:,.0f} of them inside "
              f"libvmshim.so; ratio of user-space instructions with/without "
              f"{per_conn['shim'][0] / per_conn['plain'][0]:.1f}.")
            w("")
            w("Valgrind hides the vDSO, so under it the shim's `clock_gettime(CLOCK_MONOTONIC_COARSE)` "
              "(the table's staleness check) becomes a real system call: that, and callgrind's "
              "attribution at the edges of the toggled function, is why its system-call column "
              "differs. strace, which leaves the vDSO alone, counts the real system calls below.")
            w("")
            summary.append(("a) fast path, user-space instructions per connect, shim - plain",
                            f"+{extra:,.0f}",
                            f"{per_conn['shim'][0]:,.0f} vs {per_conn['plain'][0]:,.0f} Ir; "
                            f"{per_conn['shim'][1]:,.0f} in libvmshim.so"))
        if "shim" in cg:
            fns = cg_functions(os.path.join(d, cg["shim"]["file"]))
            bad = [f for f in fns if re.search(
                r"malloc|calloc|realloc|\bfree\b|mutex|_lock|futex|pthread_once", f)]
            w("Functions that ran inside the loop with the shim (exclusive Ir for all N connects; "
              "`callgrind_annotate --inclusive=no`):")
            w("")
            w("```")
            w("\n".join(fns))
            w("```")
            w("")
            if bad:
                w("**Allocation or locking functions seen in the loop:** " + "; ".join(
                    f"`{b.strip()}`" for b in bad))
            else:
                w("No allocator (malloc/calloc/free) or lock (mutex, futex, pthread_once) function "
                  "ran inside the loop.")
            w("")

    st = {(k["variant"], int(k["n"])): int(k["total_calls"]) for _, k, _ in get("strace")}
    if st:
        w("### System calls (strace -c)")
        w("")
        w("`strace -f -c connect_bench 198.18.0.3 7000 N` for N and 2N; the difference is what N "
          "connects cost, without start-up:")
        w("")
        w("| variant | calls, N | calls, 2N | system calls per connect |")
        w("|---|---|---|---|")
        ns = sorted({n for _, n in st})
        for v in ("plain", "shim"):
            if (v, ns[0]) in st and (v, ns[-1]) in st:
                n = ns[0]
                w(f"| {v} | {st[(v, n)]} ({n}) | {st[(v, ns[-1])]} ({ns[-1]}) | "
                  f"{(st[(v, ns[-1])] - st[(v, n)]) / (ns[-1] - n):.2f} |")
        w("")
        if ("shim", ns[0]) in st and ("plain", ns[0]) in st:
            d_start = st[("shim", ns[0])] - st[("plain", ns[0])]
            w(f"The shim's extra system calls are start-up only ({d_start} more in the whole "
              f"process: loading the library, the first call's set-up, mapping the table).")
            w("")
            per_s = (st[("shim", ns[-1])] - st[("shim", ns[0])]) / (ns[-1] - ns[0])
            per_p = (st[("plain", ns[-1])] - st[("plain", ns[0])]) / (ns[-1] - ns[0])
            summary.append(("a) fast path, system calls per connect, shim vs plain",
                            f"{per_s:.2f} vs {per_p:.2f}", "strace -c, difference of N and 2N"))

    # ---- b) redirected ----------------------------------------------------------------
    w("## b) Redirected connects: alpha → beta over vsock vs plain TCP")
    w("")
    w("Both guests run helperd. beta runs `bench/accept_server` twice: under the shim on port "
      "7100 (its listener registered with helperd, reached over vsock) and with "
      "`VMSHIM_DISABLE=1` on port 7101. alpha runs `connect_bench 198.18.0.2 PORT N MODE` "
      "under the shim (to 7100: redirected) and with `VMSHIM_DISABLE=1` (to 7101: TCP over the "
      "veth). Modes: `connect` = socket, connect, close (the client's cost: over vsock connect() "
      "returns once beta's helperd accepted); `echo` = also one byte there and back before "
      "close, i.e. until the server application really has the connection. After each run "
      "the script waits until beta has dealt with every connection. The bytes on alpha's veth "
      "show the path taken (a few hundred or thousand bytes in a vsock run are ARP and stray "
      "segments of earlier TCP runs).")
    w("")
    redir = get("redir")
    if redir:
        w("| mode | round | variant | N | per connect (µs) | bytes on alpha's veth |")
        w("|---|---|---|---|---|---|")
        for _, k, _ in redir:
            w(f"| {k['mode']} | {k['round']} | {k['variant']} | {k['n']} | {k['per_connect_us']} | {k['veth_bytes']} |")
        w("")
        for mode in ("connect", "echo"):
            per = {v: [float(k["per_connect_us"]) for _, k, _ in redir
                       if k["variant"] == v and k["mode"] == mode] for v in ("shim", "disabled")}
            if per["shim"] and per["disabled"]:
                ms, md = statistics.median(per["shim"]), statistics.median(per["disabled"])
                w(f"- `{mode}`: median {fmt(ms)} µs over vsock vs {fmt(md)} µs over TCP: "
                  f"**vsock/TCP {ms / md:.2f}**")
                summary.append((f"b) redirected, `{mode}` time per connection, vsock/TCP" + mark("b"),
                                f"{ms / md:.2f}", f"median {fmt(ms)} vs {fmt(md)} µs"))
        w("")
    for _, k, line in get("warning"):
        w(f"Warning: `{line}`")
        w("")

    sc = {(k["variant"], k["who"], int(k["n"])): (int(k["total_calls"]), k["file"])
          for _, k, _ in get("sc")}
    if sc:
        n1 = min(n for (_, who, n) in sc if who == "client")
        n2 = max(n for (_, who, n) in sc if who == "client")
        w("### System calls per connection (echo mode, strace -c)")
        w("")
        w(f"Client: the difference between {n2} and {n1} connects. beta's server and helperd: "
          f"strace attached during the {n2}-connect run ({n2 + 1} connections with the "
          "warm-up); helperd's count includes its heartbeat, which the TCP column shows alone.")
        w("")
        w("| | client (alpha) | server (beta) | helperd (beta) | total |")
        w("|---|---|---|---|---|")
        tot = {}
        for v in ("shim", "disabled"):
            try:
                c = (sc[(v, "client", n2)][0] - sc[(v, "client", n1)][0]) / (n2 - n1)
                s = sc[(v, "server", n2 + 1)][0] / (n2 + 1)
                h = sc[(v, "helperd", n2 + 1)][0] / (n2 + 1)
            except KeyError:
                continue
            tot[v] = c + s + h
            label = "vsock (shim)" if v == "shim" else "TCP (VMSHIM_DISABLE=1)"
            w(f"| {label} | {c:.1f} | {s:.1f} | {h:.1f} | {c + s + h:.1f} |")
        w("")
        if "shim" in tot and "disabled" in tot:
            summary.append(("b) redirected, system calls per connection (client+server+helperd)",
                            f"{tot['shim']:.0f} vs {tot['disabled']:.0f}", "echo mode, strace -c"))
        # Per-syscall breakdown of the shim variant.
        for who in ("client", "server", "helperd"):
            if who == "client":
                a = strace_table(os.path.join(d, sc.get(("shim", "client", n2), (0, ""))[1]))
                b = strace_table(os.path.join(d, sc.get(("shim", "client", n1), (0, ""))[1]))
                per = {s: (a.get(s, 0) - b.get(s, 0)) / (n2 - n1) for s in set(a) | set(b)}
            else:
                a = strace_table(os.path.join(d, sc.get(("shim", who, n2 + 1), (0, ""))[1]))
                per = {s: c / (n2 + 1) for s, c in a.items()}
            per = {s: c for s, c in per.items() if c >= 0.05}
            if per:
                w(f"<details><summary>vsock: the {who}'s system calls per connection</summary>")
                w("")
                w("| system call | per connection |")
                w("|---|---|")
                for s, c in sorted(per.items(), key=lambda x: -x[1]):
                    w(f"| {s} | {c:.2f} |")
                w("")
                w("</details>")
                w("")

    # ---- c) throughput ----------------------------------------------------------------
    w("## c) Throughput: iperf3 alpha → beta")
    w("")
    w("`iperf3 -s` in beta under the shim (port 5201) and with `VMSHIM_DISABLE=1` (port 5202); "
      "`iperf3 -c 198.18.0.2 -t T -P S -J` in alpha the same way, alternating the order per "
      "round. Bit rates from iperf3's JSON (`end.sum_sent` / `end.sum_received`).")
    w("")
    ip = get("iperf3")
    failed = get("iperf3-failed")
    results = {}
    if ip or failed:
        w("| streams | round | variant | sent (Gbit/s) | received (Gbit/s) | MiB received | retransmits | bytes on alpha's veth |")
        w("|---|---|---|---|---|---|---|---|")
        for _, k, _ in ip:
            try:
                j = json.load(open(os.path.join(d, k["file"])))
                s = j["end"]["sum_sent"]
                r = j["end"]["sum_received"]
                err = j.get("error")
            except (OSError, ValueError, KeyError) as e:
                w(f"| {k['streams']} | {k['round']} | {k['variant']} | unreadable: {e} | | | | |")
                continue
            results.setdefault((k["streams"], k["variant"]), []).append(r["bits_per_second"])
            w(f"| {k['streams']} | {k['round']} | {k['variant']} | {s['bits_per_second'] / 1e9:.2f} | "
              f"{r['bits_per_second'] / 1e9:.2f} | {r['bytes'] / 2**20:,.0f} | "
              f"{s.get('retransmits', '-')} | {k['veth_bytes']} |" + (f" error: {err}" if err else ""))
        for _, k, _ in failed:
            msg = ""
            try:
                msg = json.load(open(os.path.join(d, k["file"]))).get("error", "")
            except (OSError, ValueError):
                pass
            w(f"| {k['streams']} | {k['round']} | {k['variant']} | FAILED {msg} | | | | |")
        w("")
        for streams in sorted({s for s, _ in results}, key=int):
            a, b = results.get((streams, "shim")), results.get((streams, "disabled"))
            if a and b:
                ma, mb = statistics.median(a), statistics.median(b)
                w(f"- `-P {streams}`: median {ma / 1e9:.2f} Gbit/s over vsock vs {mb / 1e9:.2f} "
                  f"Gbit/s over TCP: **vsock/TCP {ma / mb:.2f}**")
                summary.append((f"c) iperf3 -P {streams} throughput, vsock/TCP" + mark("c"), f"{ma / mb:.2f}",
                                f"median {ma / 1e9:.2f} vs {mb / 1e9:.2f} Gbit/s"))
        w("")
        if failed:
            w("**iperf3 failed under the shim in some runs: see the table and the log.**")
            w("")

    # ---- summary, raw -----------------------------------------------------------------
    out_final = [out[0], ""]
    if summary:
        out_final += ["## Summary", "", "| measurement | result | detail |", "|---|---|---|"]
        out_final += [f"| {a} | **{b}** | {c} |" for a, b, c in summary]
        out_final += [""]
    out = out_final + out[2:]
    w = out.append
    w("## Commands, exactly as run (inside the VM)")
    w("")
    w("```")
    with open(os.path.join(d, "commands.txt")) as f:
        w(f.read().rstrip())
    w("```")
    w("")
    w("## Raw results (bench/vm.sh's raw.txt)")
    w("")
    w("```")
    with open(os.path.join(d, "raw.txt")) as f:
        w(f.read().rstrip())
    w("```")
    print("\n".join(out))


if __name__ == "__main__":
    main()
