#!/usr/bin/env python3
"""Turns the raw results of bench/vm.sh (a directory) into bench/run's results: results.csv
(one row per measurement), summary.json (medians, ratios, targets), bench.png (gnuplot) and
report.md, all written into OUTDIR.

    report.py RAWDIR OUTDIR META.json

META.json holds what the host knows: date, commit, commands, accelerator, QEMU version,
host CPUs, elapsed seconds, whether this is a smoke run. RAWDIR also holds bench/run's
host-load.txt ("TIME QEMU_PROCESSES LOAD" every 2 s, ours included).
"""
import csv
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PATHS = ["tcp", "shim", "vsock", "socat", "bypass", "relay-copy", "relay-sockmap", "guestwide"]
PATH_NAMES = {
    "tcp": "1 TCP",
    "shim": "2 shim (vsock)",
    "vsock": "3 native vsock",
    "socat": "4 socat pair",
    "bypass": "5 shim, not co-resident",
    "relay-copy": "6 relay, copies",
    "relay-sockmap": "7 relay, sockmap",
    "guestwide": "8 guest-wide (bridge)",
}
# The relay's ratios: figures only, the issue sets no targets for them.
RELAY_RATIOS = [("relay-copy", "vsock"), ("relay-sockmap", "vsock"), ("relay-copy", "socat"),
                ("relay-sockmap", "socat"), ("relay-sockmap", "relay-copy")]
# Guest-wide mode's, likewise: against TCP, native vsock and the shim's direct path.
GUESTWIDE_RATIOS = [("guestwide", "tcp"), ("guestwide", "vsock"), ("guestwide", "shim")]
SIZE_NAMES = {1: "1 B", 1024: "1 KiB", 4096: "4 KiB", 65536: "64 KiB", 262144: "256 KiB",
              1048576: "1 MiB"}


def kv(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def num(v):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def read_raw(d):
    """The results, the VM's line, and the paths skipped: {path: the reason, as said}."""
    rows, header, skipped = [], {}, {}
    with open(os.path.join(d, "raw.txt")) as f:
        for line in f:
            if line.startswith("result "):
                rows.append({k: num(v) for k, v in kv(line).items()})
            elif line.startswith(("vm ", "relay ")):
                header.update(kv(line))
            elif line.startswith("bridge "):
                header.update({"bridge_" + k: v for k, v in kv(line).items()})
            elif line.startswith("skip "):
                head, _, reason = line.rstrip("\n").partition(" reason=")
                skipped[kv(head)["path"]] = reason
    return rows, header, skipped


def stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def group(rows, section, metric, *keys):
    """{(path, *keys): stats of metric} over the repetitions."""
    out = {}
    for r in rows:
        if r.get("section") == section and metric in r:
            out.setdefault((r["path"],) + tuple(r[k] for k in keys), []).append(r[metric])
    return {k: stats(v) for k, v in out.items()}


def strace_table(path):
    """{syscall: calls} from an strace -c summary."""
    calls = {}
    if not os.path.exists(path):
        return calls
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and re.match(r"^[\d.]+$", p[0]) and p[-1] != "total":
                calls[p[-1]] = int(p[3])
    return calls


def cg_objects(path):
    out = subprocess.run([sys.executable, os.path.join(HERE, "cg_objects.py"), path],
                         capture_output=True, text=True, check=True).stdout
    objs, total = {}, {}
    for line in out.splitlines():
        p = line.split()
        vals = {k: int(v) for k, v in (x.split("=") for x in p if "=" in x and not x.startswith("/"))}
        if p[0] == "total":
            total = vals
        else:
            objs[p[-1]] = vals
    return objs, total


def cg_ir(path):
    """(user-space instructions in all, those in libvmshim.so) of a callgrind profile."""
    objs, total = cg_objects(path)
    return total.get("Ir", 0), sum(v.get("Ir", 0) for o, v in objs.items()
                                   if o.endswith("libvmshim.so"))


def client_calls_per_conn(rows, section, path):
    """The client's system calls per connection: the difference between its 2N and N runs
    (strace -c), which leaves start-up out; None without both."""
    runs = sorted((r["n"], r["total_calls"]) for r in rows
                  if r["section"] == section and r["path"] == path and r["who"] == "client")
    if len(runs) != 2:
        return None
    (n1, c1), (n2, c2) = runs
    return (c2 - c1) / (n2 - n1)


def max_other_qemus(d):
    try:
        with open(os.path.join(d, "host-load.txt")) as f:
            samples = [line.split() for line in f if line.strip()]
        return max(int(n) for _, n, _ in samples) - 1, max(float(l) for _, _, l in samples)
    except (OSError, ValueError):
        return None, None


def fmt(x, digits=2):
    return f"{x:,.{digits}f}"


def cell(s, digits=2):
    """median [min..max]"""
    if not s:
        return "—"
    return f"{fmt(s['median'], digits)} [{fmt(s['min'], digits)}..{fmt(s['max'], digits)}]"


def path_table(w, paths, heads, rows, digits):
    """A table with a column per path; rows are (leading cells, path -> stats)."""
    w("| " + " | ".join(heads + [PATH_NAMES[p] for p in paths]) + " |")
    w("|" + "---|" * (len(heads) + len(paths)))
    for lead, get in rows:
        w("| " + " | ".join(lead + [cell(get(p), digits) for p in paths]) + " |")


class Targets:
    """Ratios between paths, each with its target (or none: reported only). A ratio is one of
    medians; its range, from the least favourable pairing of the repetitions (num min / den
    max) to the most (num max / den min), shows how far the noise of the run reaches."""

    def __init__(self):
        self.rows = []

    def add(self, what, num_path, den_path, num, den, op=None, target=None):
        if not num or not den:
            return
        value = ratio(num["median"], den["median"])
        low, high = ratio(num["min"], den["max"]), ratio(num["max"], den["min"])
        met = None
        if op == ">=":
            met = value >= target
        elif op == "<=":
            met = value <= target
        self.rows.append({"measurement": what, "ratio": f"{num_path} / {den_path}",
                          "value": round(value, 3), "low": round(low, 3), "high": round(high, 3),
                          "target": f"{op} {target}" if op else "", "met": met,
                          "within_noise": met is False and low <= target <= high})


def ratio(a, b):
    return a / b if b else float("nan")


def ratios_by_measurement(rows, ratios):
    """The ratios num / den of each measurement (rows: (name, a path's value)): the Targets
    they were added to, and {measurement: {"num / den": row}}."""
    t = Targets()
    for name, at in rows:
        for a, b in ratios:
            t.add(name, a, b, at(a), at(b))
    table = {}
    for r in t.rows:
        table.setdefault(r["measurement"], {})[r["ratio"]] = r
    return t, table


def ratio_table(w, table, ratios, paths):
    """Writes the table of ratios_by_measurement, for the ratios whose paths were measured."""
    cols = [f"{a} / {b}" for a, b in ratios if a in paths and b in paths]
    if not table or not cols:
        return
    w("")
    w("| measurement | " + " | ".join(cols) + " |")
    w("|---|" + "---|" * len(cols))
    for name, by in table.items():
        w(f"| {name} | " + " | ".join(
            f"{by[c]['value']:.2f} [{by[c]['low']:.2f}..{by[c]['high']:.2f}]" if c in by else ""
            for c in cols) + " |")


def plot(outdir, paths, thr, pp, cr, scale, sizes, streams):
    """bench.png: six panels, each median with min..max error bars; a line per path."""
    data = os.path.join(outdir, "bench.dat")
    blocks = []  # gnuplot data blocks, addressed by index
    def block(rows):
        blocks.append("\n".join(" ".join(str(x) for x in r) for r in rows))
        return len(blocks) - 1
    panels = []
    n = len(paths)
    def lines(title, ylabel, table, xs, xlabels, keyf):
        plots = []
        for i, p in enumerate(paths):
            rows = []
            for j, x in enumerate(xs):
                s = table.get(keyf(p, x))
                if s:
                    off = (i - (n - 1) / 2) * 0.06
                    rows.append((j + off, s["median"], s["min"], s["max"]))
            if not rows:
                continue
            idx = block(rows)
            plots.append(f"'{data}' index {idx} using 1:2:3:4 with yerrorlines ls {PATHS.index(p) + 1} "
                         f"title '{PATH_NAMES[p]}'")
        tics = ", ".join(f"'{l}' {j}" for j, l in enumerate(xlabels))
        panels.append(f"set title '{title}'\nset ylabel '{ylabel}'\nset xtics ({tics})\n"
                      f"set xrange [-0.5:{len(xs) - 0.5}]\n"
                      + "plot " + ", \\\n  ".join(plots))
    size_labels = [SIZE_NAMES.get(s, str(s)) for s in sizes]
    for st in streams[:2]:
        lines(f"Throughput, {st} stream{'s' if st > 1 else ''}", "Gbit/s", thr, sizes, size_labels,
              lambda p, x, st=st: (p, x, st))
    pp_sizes = sorted({k[1] for k in pp})
    pp_labels = [SIZE_NAMES.get(s, str(s)) for s in pp_sizes]
    for m in ("p50_us", "p99_us"):
        lines(f"Round-trip latency, {m[:3]} (lower is better)", "µs", pp, pp_sizes, pp_labels,
              lambda p, x, m=m: (p, x, m))
    lines("Connection rate: connect, 1 B there and back, close", "connections/s", cr, [0],
          ["all paths"], lambda p, x: (p,))
    conns = sorted({k[1] for k in scale})
    lines("Many connections at once (64 KiB writes)", "Gbit/s", scale, conns,
          [str(c) for c in conns], lambda p, x: (p, x))
    with open(data, "w") as f:
        f.write("\n\n\n".join(blocks) + "\n")
    # a style per path, whichever of them this run has; the relay's dashed
    styles = "\n".join(f"set style line {i + 1} lw 2 pt {i + 5} lc rgb '{c}'{' dt 2' if i >= 5 else ''}"
                       for i, c in enumerate(["#555555", "#d62728", "#1f77b4", "#ff7f0e", "#2ca02c",
                                              "#9467bd", "#8c564b"]))
    script = (f"set terminal pngcairo size 1500,1300 font 'sans,10'\n"
              f"set output '{os.path.join(outdir, 'bench.png')}'\n{styles}\n"
              "set key top left font ',8'\nset grid ytics\nset yrange [0:*]\n"
              "set multiplot layout 3,2\n" + "\n".join(panels) + "\nunset multiplot\n")
    gp = os.path.join(outdir, "bench.gp")
    with open(gp, "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", gp], check=True)


def main():
    rawdir, outdir, metafile = sys.argv[1:4]
    with open(metafile) as f:
        meta = json.load(f)
    rows, vm, skipped = read_raw(rawdir)
    paths = [p for p in PATHS if p not in skipped and any(r.get("path") == p for r in rows)]
    os.makedirs(outdir, exist_ok=True)

    # results.csv: every measurement, every field netbench printed.
    fields = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)

    thr = group(rows, "stream", "gbit_s", "size", "streams")
    pp = {}
    for m in ("p50_us", "p99_us"):
        pp.update({k + (m,): v for k, v in group(rows, "pingpong", m, "size").items()})
    cr = group(rows, "connrate", "conns_s")
    cr_us = group(rows, "connrate", "per_conn_us")
    scale = group(rows, "scale", "gbit_s", "conns")
    mem = group(rows, "memcpy", "gbit_s").get(("none",))
    sizes = sorted({k[1] for k in thr})
    streams = sorted({k[2] for k in thr})

    t = Targets()
    for st in streams:
        for s in sizes:
            name = f"throughput {SIZE_NAMES.get(s, s)}, {st} stream{'s' if st > 1 else ''}"
            at = lambda p: thr.get((p, s, st))
            t.add(name, "shim", "vsock", at("shim"), at("vsock"), ">=", 0.95)
            if s >= 65536:
                t.add(name, "shim", "socat", at("shim"), at("socat"), ">=", 2.0)
            t.add(name, "bypass", "tcp", at("bypass"), at("tcp"), ">=", 0.98)
            t.add(name, "shim", "tcp", at("shim"), at("tcp"))
    for s in sorted({k[1] for k in pp}):
        for m in ("p50_us", "p99_us"):
            name = f"latency {SIZE_NAMES.get(s, s)} {m[:3]}"
            at = lambda p: pp.get((p, s, m))
            t.add(name, "shim", "vsock", at("shim"), at("vsock"), "<=", 1.05)
            t.add(name, "shim", "socat", at("shim"), at("socat"), "<=", 0.5)
    at = lambda p: cr.get((p,))
    t.add("connection rate", "shim", "tcp", at("shim"), at("tcp"))
    t.add("connection rate", "shim", "socat", at("shim"), at("socat"), ">=", 2.0)
    t.add("connection rate", "bypass", "tcp", at("bypass"), at("tcp"), ">=", 0.95)

    # The relay's ratios and guest-wide mode's, by measurement: {measurement: {"num / den": row}}.
    relay_rows = [(f"throughput {SIZE_NAMES.get(s, s)}, {st} stream{'s' if st > 1 else ''}",
                   lambda p, s=s, st=st: thr.get((p, s, st))) for st in streams for s in sizes]
    relay_rows += [(f"latency {SIZE_NAMES.get(s, s)} {m[:3]}", lambda p, s=s, m=m: pp.get((p, s, m)))
                   for s in sorted({k[1] for k in pp}) for m in ("p50_us", "p99_us")]
    relay_rows.append(("connection rate", lambda p: cr.get((p,))))
    rt, relay_table = ratios_by_measurement(relay_rows, RELAY_RATIOS)
    gt, guestwide_table = ratios_by_measurement(relay_rows, GUESTWIDE_RATIOS)
    relay_runs = [r for r in rows if str(r.get("path", "")).startswith("relay-") and "relayed" in r
                  and r["section"] != "check"]
    not_relayed = [r for r in relay_runs if r["relayed"] < r["expected"]]

    # The decision cost: system calls and instructions per connection, tcp vs bypass; and
    # the instructions of a transfer.
    per_conn_calls = {p: c for p in ("tcp", "bypass")
                      if (c := client_calls_per_conn(rows, "strace", p)) is not None}
    cg, datapath = {}, {}
    for r in rows:
        if r["section"] == "callgrind":
            ir, shim_ir = cg_ir(os.path.join(rawdir, r["file"]))
            cg[r["path"]] = {"ir_per_conn": ir / r["count"], "shim_ir_per_conn": shim_ir / r["count"],
                             "n": r["count"]}
        elif r["section"] == "datapath":
            ir, shim_ir = cg_ir(os.path.join(rawdir, r["file"]))
            datapath[r["path"]] = {"bytes": r["bytes"], "ir": ir, "shim_ir": shim_ir}

    summary = {"meta": meta, "vm": vm, "targets": t.rows,
               "throughput_gbit_s": {f"{p} {s} x{st}": v for (p, s, st), v in thr.items()},
               "latency_us": {f"{p} {s} {m}": v for (p, s, m), v in pp.items()},
               "connrate_conns_s": {p: v for (p,), v in cr.items()},
               "memcpy_gbit_s": mem, "callgrind": cg, "syscalls_per_conn": per_conn_calls,
               "scale": [r for r in rows if r["section"] == "scale"], "datapath": datapath,
               "relay_ratios": rt.rows, "guestwide_ratios": gt.rows, "skipped": skipped,
               "relay_runs": {"runs": len(relay_runs), "not_fully_relayed": not_relayed,
                              "restarts": vm.get("restarts")}}
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    plot(outdir, paths, thr, pp, cr, scale, sizes, streams)

    others, load = max_other_qemus(rawdir)
    out = []
    w = out.append
    w(f"# vmshim benchmarks, {meta['date']}{' (smoke run: tiny sizes, not for reading)' if meta.get('smoke') else ''}")
    w("")
    in_vm = f" ({vm['seconds']} s of them measuring in the VM)" if "seconds" in vm else ""
    w(f"`{meta['host_command']}` at commit `{meta['commit']}`, {meta['elapsed']} s{in_vm}. "
      f"Test VM: Linux {vm.get('uname', '?')}, {vm.get('cpus', '?')} vCPUs, "
      f"{meta['qemu']}, accelerator **{meta['accel']}**"
      f"{' (software emulation)' if meta['accel'] == 'tcg' else ''}; host {meta['host_cpus']} CPUs, "
      f"other QEMU processes during the run: {others if others is not None else '?'}, "
      f"highest load average {load if load is not None else '?'}.")
    w("")
    w("Under emulation absolute figures mean little: only ratios between paths measured in the "
      "same run carry over. Every figure is the median of the repetitions, with [min..max]. "
      "The guests are network namespaces of one kernel and vsock is `vsock_loopback` (CID 1), "
      "with the kernel's default buffer (256 KiB) on every vsock path.")
    w("")
    w("![benchmarks](bench.png)")
    w("")
    w("## Targets")
    w("")
    w("A ratio is one of medians; its range goes from the least favourable pairing of the "
      "repetitions (one path's minimum against the other's maximum) to the most favourable. "
      "\"within noise\": the target lies inside that range.")
    w("")
    w("| measurement | ratio | value | range | target | met |")
    w("|---|---|---|---|---|---|")
    for r in t.rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else
                                           "**no**, within noise" if r["within_noise"] else "**no**")
        w(f"| {r['measurement']} | {r['ratio']} | {r['value']:.3f} | {r['low']:.2f}..{r['high']:.2f} | "
          f"{r['target']} | {met} |")
    w("")
    w("## The relay paths")
    w("")
    w("A guest reaching a sibling `via relay` (delta's client to beta's server, the shim at both "
      "ends): 6 the relay forwarding by copies in user space (`vmshim-relay --copy`), 7 splicing in "
      "the kernel (BPF sockmap, where the relay can: 6.12 here). Ratios of medians as above, with their ranges; "
      "no targets. Throughput and connection rate: above 1 the first path is faster; latency: below 1.")
    for p, why in skipped.items():
        w("")
        w(f"**{PATH_NAMES.get(p, p)}: not measured** on Linux {vm.get('uname', '?')}: the relay says "
          f"\"{why}\".")
    ratio_table(w, relay_table, RELAY_RATIOS, paths)
    w("")
    w(f"{len(relay_runs)} measured runs on the relay paths; "
      + ("in each the relay carried every connection the client opened (its `relayed` counter)."
         if not not_relayed else
         f"**in {len(not_relayed)} the relay carried fewer connections than the client opened** "
         "(the others went over TCP): " + ", ".join(
             f"{r['section']} {r['path']} rep {r.get('rep', '?')}: {r['relayed']} of {r['expected']}"
             for r in not_relayed[:10]) + ".")
      + (f" The relay was restarted {vm['restarts']} times to change its way of forwarding."
         if int(vm.get("restarts", 0)) else ""))
    if "guestwide" in paths:
        w("")
        w("## Guest-wide mode")
        w("")
        w("alpha's client and beta's server, neither under the shim, each in the cgroup its helperd "
          "covers with `--guest-wide` (path 8): the client's connect goes to alpha's bridge, which "
          "carries it over vsock to beta's bridge, which connects to the server (each bridge "
          "spliced in the kernel where it can, as on 6.12, else copying in user "
          "space: `bridge_spliced` in helperd's status). Ratios of medians with their ranges; no targets. Throughput and "
          "connection rate: above 1 the first path is faster; latency: below 1."
          + (f" Over the whole run the two bridges handed {vm['bridge_spliced']} connections to "
             f"the kernel and took {vm['bridge_taken_back']} back."
             if "bridge_spliced" in vm else ""))
        ratio_table(w, guestwide_table, GUESTWIDE_RATIOS, paths)
    # A stream's time covers the delivery of every byte: far beyond the time the client wrote
    # for (STREAM_SECONDS), the bytes waited on the way (in the relay, say).
    took = {p: [r["seconds"] for r in rows if r["section"] == "stream" and r["path"] == p]
            for p in paths}
    if any(took.values()):
        w("")
        w("Each stream's time, from its first write to the sink's EOF (s; the client writes for "
          "STREAM_SECONDS, see the commands), median [min..max] over all sizes and stream counts: "
          + ", ".join(f"{PATH_NAMES[p]} {cell(stats(v))}" for p, v in took.items() if v) + ".")
    w("")
    w("## Throughput (Gbit/s)")
    w("")
    path_table(w, paths, ["streams", "write size"],
               [([str(st), SIZE_NAMES.get(s, s)], lambda p, s=s, st=st: thr.get((p, s, st)))
                for st in streams for s in sizes], 2)
    if mem:
        w("")
        w(f"Single-core memcpy in the VM (64 KiB blocks over 64 MiB buffers): {cell(mem)} Gbit/s. "
          "Each path's best median throughput as a fraction of it:")
        w("")
        w("| path | best throughput (Gbit/s) | fraction of memcpy |")
        w("|---|---|---|")
        for p in paths:
            best = max((v["median"] for k, v in thr.items() if k[0] == p), default=float("nan"))
            w(f"| {PATH_NAMES[p]} | {fmt(best)} | {ratio(best, mem['median']):.3f} |")
    w("")
    w("## Round-trip latency (µs)")
    w("")
    path_table(w, paths, ["size", "percentile"],
               [([SIZE_NAMES.get(s, s), m[:3]], lambda p, s=s, m=m: pp.get((p, s, m)))
                for s in sorted({k[1] for k in pp}) for m in ("p50_us", "p99_us")], 1)
    w("")
    w("## Connection rate")
    w("")
    w("Each connection: connect, 1 byte there and back, close, one after another.")
    w("")
    w("| path | connections/s | µs per connection |")
    w("|---|---|---|")
    for p in paths:
        w(f"| {PATH_NAMES[p]} | {cell(cr.get((p,)), 0)} | {cell(cr_us.get((p,)), 0)} |")
    w("")
    w("## The shim's decision on a connect() it leaves alone")
    w("")
    w("The client connects to beta's second address (in no policy) with and without the shim; "
      "callgrind counts user-space instructions in the timed loop only (`--toggle-collect=connrate_loop`: "
      "socket, connect, write, read, close per connection); strace -c counts system calls for N and "
      "2N connections (the difference is per connection, without start-up).")
    w("")
    w("| | instructions per connection | in libvmshim.so | system calls per connection |")
    w("|---|---|---|---|")
    for p in ("tcp", "bypass"):
        c = cg.get(p, {})
        w(f"| {PATH_NAMES[p]} | {fmt(c.get('ir_per_conn', float('nan')), 1)} | "
          f"{fmt(c.get('shim_ir_per_conn', float('nan')), 1)} | {fmt(per_conn_calls.get(p, float('nan')))} |")
    if "tcp" in cg and "bypass" in cg:
        w("")
        w(f"**The shim adds {cg['bypass']['ir_per_conn'] - cg['tcp']['ir_per_conn']:.0f} user-space "
          "instructions per connection that it does not redirect.**")
    if datapath:
        w("")
        w("## The data path")
        w("")
        w("callgrind over a 0.5 s stream of 64 KiB writes, counting only netbench's `stream_thread` "
          "(where the writes are made): user-space instructions in all, and in libvmshim.so.")
        w("")
        w("| path | bytes written | instructions | in libvmshim.so |")
        w("|---|---|---|---|")
        for p, d in datapath.items():
            w(f"| {PATH_NAMES[p]} | {d['bytes']:,} | {d['ir']:,} | {d['shim_ir']:,} |")
    setup = {(r["path"], r["who"]): r for r in rows if r["section"] == "setup" and r["who"] != "client"}
    if setup:
        parties = [("server", "server"), ("helperd", "helperd (beta)"),
                   ("client_helperd", "helperd (the client's guest)"), ("relay", "relay")]
        w("")
        w("## Where a connection's set-up goes")
        w("")
        w("Each connection: connect, 1 byte there and back, close. System calls per connection "
          "(strace -c): the client's as the difference of N and 2N connections, the others "
          "attached during the 2N run (the helperds' include what they do meanwhile anyway: "
          "announcements, ticks; TCP's row, which none of them serves, shows how much).")
        w("")
        w("| path | client | " + " | ".join(name for _, name in parties) + " | total |")
        w("|---|---|" + "---|" * len(parties) + "---|")
        per_conn = []  # (who, {call: per connection}) for the paths the shim makes
        for p in ("tcp", "vsock", "shim", "relay-copy"):
            client = client_calls_per_conn(rows, "setup", p)
            if client is None:
                continue
            vals = [setup[p, who]["total_calls"] / setup[p, who]["n"] if (p, who) in setup else None
                    for who, _ in parties]
            w(f"| {PATH_NAMES[p]} | {client:.1f} | "
              + " | ".join("" if v is None else f"{v:.1f}" for v in vals)
              + f" | {client + sum(v for v in vals if v is not None):.1f} |")
            if p in ("shim", "relay-copy"):
                clients = sorted((r["n"], strace_table(os.path.join(rawdir, r["file"]))) for r in rows
                                 if r["section"] == "setup" and r["path"] == p and r["who"] == "client")
                if len(clients) == 2 and clients[0][1] and clients[1][1]:
                    (n1, t1), (n2, t2) = clients
                    per_conn.append((f"{PATH_NAMES[p]}: the client",
                                     {k: (v - t1.get(k, 0)) / (n2 - n1) for k, v in t2.items()}))
                for who, name in parties:
                    o = setup.get((p, who))
                    calls = strace_table(os.path.join(rawdir, o["file"])) if o else {}
                    if calls:
                        per_conn.append((f"{PATH_NAMES[p]}: {name}", {k: v / o["n"] for k, v in calls.items()}))
        for name, calls in per_conn:
            w("")
            w(f"{name}, per connection: " + ", ".join(
                f"{k} {v:.1f}" for k, v in sorted(calls.items(), key=lambda x: -x[1]) if v >= 0.05))
    packets = [r for r in rows if r["section"] == "packets" and r.get("made")]
    if packets:
        kinds = ["request", "response", "rw", "credit_update", "credit_request", "shutdown", "rst"]
        w("")
        w("vsock packets per connection, by kind, over the N-connection run (the kernel's "
          "`vsock:virtio_transport_alloc_pkt` tracepoint; every vsock connection the client's "
          "connections made, a relay path's two hops each): what the emulation cannot change. "
          "`rw` carries bytes: the 1-byte request and answer, and on the shim's paths what "
          "vmshim says before them.")
        w("")
        w("| path | vsock connections per connection | packets | " + " | ".join(kinds) + " | rw bytes |")
        w("|---|---|---|" + "---|" * len(kinds) + "---|")
        for r in packets:
            c = r["conns"]
            w(f"| {PATH_NAMES[r['path']]} | {r['made'] / c:.1f} | {r['total'] / c:.1f} | "
              + " | ".join(f"{r.get(k, 0) / c:.1f}" for k in kinds) + f" | {r['rw_bytes'] / c:.1f} |")
    relay_calls = [r for r in rows if r["section"] == "relay-calls" and r.get("bytes")]
    if relay_calls:
        r = relay_calls[-1]
        mib = r["bytes"] / 2**20
        w("")
        w("## The relay's copy path")
        w("")
        w(f"System calls per MiB forwarded (strace -c on the relay, one stream of 64 KiB writes, "
          f"{mib:.0f} MiB): {r['total_calls'] / mib:.1f}")
        calls = strace_table(os.path.join(rawdir, r["file"]))
        if calls:
            w("")
            w("Per MiB: " + ", ".join(f"{k} {v / mib:.1f}"
                                      for k, v in sorted(calls.items(), key=lambda x: -x[1])))
    sc = [r for r in rows if r["section"] == "scale"]
    if sc:
        w("")
        w("## Many connections at once")
        w("")
        w("`netbench hold`: N connections opened one after another, held 2 s (memory read then), "
          "then 64 KiB writes round robin over all of them. Memory is resident set size in KiB: "
          "the client's while the connections are held, the helperds' and the server's before "
          "and while.")
        w("")
        w("| path | connections | Gbit/s | client RSS held | server RSS before → held | beta's helperd before → held | alpha's helperd before → held |")
        w("|---|---|---|---|---|---|---|")
        for r in sorted(sc, key=lambda r: (r["conns"], r["path"])):
            w(f"| {PATH_NAMES[r['path']]} | {r['conns']} | {r['gbit_s']:.3f} | {r['held_client_kib']} | "
              f"{r['server_kib']} → {r['held_server_kib']} | {r['helperd_beta_kib']} → {r['held_helperd_beta_kib']} | "
              f"{r['helperd_alpha_kib']} → {r['held_helperd_alpha_kib']} |")
    checks = [r for r in rows if r["section"] == "check"]
    if checks:
        w("")
        w("## Each path is the path it claims to be")
        w("")
        w("Before measuring, 20 round trips on each path with `VMSHIM_DEBUG=1`: bytes that crossed "
          "the client guest's veth, what the shim said about the connection (the vsock port it "
          "connected to: beta's, or the relay's), and on a relay path the connections the relay "
          "counted, then what its status said of 4 connections held through it (`forwarding`, and "
          "each session's `path`).")
        w("")
        w("| path | client | bytes on its veth | the shim said | relayed | the relay's forwarding: sessions |")
        w("|---|---|---|---|---|---|")
        held = {r["path"]: r for r in rows if r["section"] == "check-relay"}
        for r in checks:
            h = held.get(r["path"])
            relayed = f"{r['relayed']} of {r['expected']}" if "relayed" in r else ""
            said = f"{h['forwarding']}: {h['sessions']}" if h else ""
            w(f"| {PATH_NAMES[r['path']]} | {r.get('client', 'alpha')} | {r['veth_bytes']} | "
              f"{str(r['shim_said']).replace('_', ' ')} | {relayed} | {said} |")
    w("")
    w("## Commands")
    w("")
    w(f"On the host: `{meta['host_command']}`; in the VM: `{meta['vm_command']}`. Every command as run "
      "in the VM is in `commands.txt`, next to this report.")
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    missed = [r for r in t.rows if r["met"] is False]
    print(f"report: {len(t.rows)} ratios, {sum(1 for r in t.rows if r['met'])} targets met, "
          f"{len(missed)} missed" + "".join(
              f"\n  missed: {r['measurement']} {r['ratio']} = {r['value']:.3f} (range {r['low']:.2f}.."
              f"{r['high']:.2f}, target {r['target']})" for r in missed))


if __name__ == "__main__":
    main()
