#!/usr/bin/env python3
"""Puts a full benchmark run's summary (bench/run's OUTDIR) into README.md, between the
lines <!-- bench:begin --> and <!-- bench:end -->: the ratios with their targets, the
figure, and what produced them.

    readme_summary.py OUTDIR README.md
"""
import json
import os
import sys

COLUMNS = ["shim / tcp", "shim / vsock", "shim / socat", "bypass / tcp"]


def main():
    outdir, readme = sys.argv[1:3]
    with open(os.path.join(outdir, "summary.json")) as f:
        s = json.load(f)
    meta, vm = s["meta"], s["vm"]
    rows, targets = {}, {}
    for t in s["targets"]:
        rows.setdefault(t["measurement"], {})[t["ratio"]] = t
        if t["target"]:
            targets[t["ratio"]] = targets.get(t["ratio"], set()) | {t["target"]}
    out = [f"Measured {meta['date']} with `{meta['host_command']}` at commit `{meta['commit']}` "
           f"({meta['elapsed'] // 60} min): Linux {vm.get('uname', '?')} in QEMU "
           f"{meta['qemu'].split('version ')[-1]}, accelerator {meta['accel']}"
           f"{' (software emulation: only ratios carry over, not absolute figures)' if meta['accel'] == 'tcg' else ''}. "
           "Each ratio is between the medians of the repetitions of two paths measured in the same run; "
           f"[the full report]({outdir}/report.md) has every figure with its min and max, and "
           f"[results.csv]({outdir}/results.csv) every measurement.",
           "",
           "Targets: shim / vsock >= 0.95 for throughput and <= 1.05 for latency; shim / socat >= 2.0 "
           "for throughput at 64 KiB and above and for the connection rate, <= 0.5 for latency; bypass / "
           "tcp >= 0.98 for throughput, >= 0.95 for the connection rate. ✓ met; ✗ missed, with the "
           "ratio's range over the repetitions (\"within noise\" when the target lies inside it).",
           "",
           "| measurement | " + " | ".join(COLUMNS) + " |",
           "|---|" + "---|" * len(COLUMNS)]
    for name, by_ratio in rows.items():
        if name.startswith("system calls"):
            continue
        cells = []
        for c in COLUMNS:
            t = by_ratio.get(c)
            if not t:
                cells.append("")
            elif t["met"] is None:
                cells.append(f"{t['value']:.2f}")
            else:
                mark = "✓" if t["met"] else f"✗ {'within noise ' if t['within_noise'] else ''}({t['low']:.2f}..{t['high']:.2f})"
                cells.append(f"{t['value']:.2f} {mark}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    cg = s.get("callgrind", {})
    calls = s.get("syscalls_per_conn", {})
    if "tcp" in cg and "bypass" in cg and len(calls) == 2:
        out += ["", f"A connect() the shim leaves alone: {calls['bypass'] - calls['tcp']:+.0f} system "
                f"calls per connection (strace -c), {cg['bypass']['ir_per_conn'] - cg['tcp']['ir_per_conn']:+.0f} "
                "user-space instructions (callgrind)."]
    dp = s.get("datapath", {})
    if dp:
        out += ["", "During a transfer: " + ", ".join(
            f"{v['shim_ir']:,} instructions in libvmshim.so on path {k} ({v['bytes']:,} bytes written)"
            for k, v in dp.items()) + " (callgrind)."]
    out += ["", f"![benchmarks]({outdir}/bench.png)"]
    with open(readme) as f:
        text = f.read()
    begin, end = "<!-- bench:begin -->\n", "<!-- bench:end -->"
    if begin not in text or end not in text:
        sys.exit(f"readme_summary: {readme} has no {begin.strip()} ... {end} block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(readme, "w") as f:
        f.write(head + begin + "\n".join(out) + "\n" + end + tail)


if __name__ == "__main__":
    main()
