#!/usr/bin/env python3
"""Exclusive cost per object file (executable, libc, libvmshim.so, ...) in a callgrind
profile; callgrind_annotate groups only by function. Used by bench/run.

    cg_objects.py FILE.callgrind

Prints one line per object with any cost: "EVENT=N ... object", and a last line
"total EVENT=N ..." (the profile's own totals, to check the sum against).
"""
import collections
import sys


def parse(path):
    events, positions, totals = [], 1, None
    objects = {}  # ob= and cob= share one table of compressed names
    ob = None
    skip_next_cost = False
    cost = collections.defaultdict(lambda: collections.Counter())
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                if skip_next_cost:  # the inclusive cost of a call: not this object's
                    skip_next_cost = False
                    continue
                vals = line.split()[positions:]
                for ev, v in zip(events, vals):
                    cost[ob][ev] += int(v)
                continue
            key, _, val = line.partition("=")
            if key == "ob":
                ob = compressed(objects, val)
            elif key == "cob":
                compressed(objects, val)
            elif key == "calls":
                skip_next_cost = True
            elif line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("positions:"):
                positions = len(line.split()) - 1
            elif line.startswith("totals:") or line.startswith("summary:"):
                if totals is None or line.startswith("totals:"):
                    totals = [int(x) for x in line.split()[1:]]
    return events, cost, totals


def compressed(table, val):
    """Callgrind's name compression: "(N) name" defines N, "(N)" refers to it."""
    val = val.strip()
    if val.startswith("("):
        num, _, name = val[1:].partition(")")
        name = name.strip()
        if name:
            table[num] = name
        return table.get(num, "?")
    return val


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    events, cost, totals = parse(sys.argv[1])
    for ob, c in sorted(cost.items(), key=lambda kv: -kv[1][events[0]]):
        if any(c.values()):
            print(" ".join(f"{ev}={c[ev]}" for ev in events), ob)
    if totals is not None:
        print("total", " ".join(f"{ev}={v}" for ev, v in zip(events, totals)))


if __name__ == "__main__":
    main()
