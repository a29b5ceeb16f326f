#!/usr/bin/env python3
"""The hot code of a Callgrind profile: how much code one cycle runs through.

    python3 benches/hot_lines.py PROFILE CYCLES [TOP]

PROFILE is a `valgrind --tool=callgrind --dump-instr=yes` output (add
`--cache-sim=yes` for the simulated instruction-cache misses); CYCLES is
how many cycles (messages, connections) the run made. An instruction is
hot when it ran at least CYCLES / 2 times: once per cycle, give or take
start-up. Prints the hot instructions, the 64-byte cache lines they sit
in (what the CPU must fetch each cycle if the kernel's own code evicted
them since), Callgrind's simulated L1 instruction-cache misses per cycle
when the profile has them, and the TOP functions by hot lines.
"""
import collections
import re
import sys

LINE = 64


def number(token):
    return int(token, 0)


def read(path):
    """Self cost per instruction address, and the function of each."""
    names = {}
    cost = collections.Counter()
    misses = collections.Counter()
    function_of = {}
    events = []
    function = None
    last = [0, 0]
    skip_next = False
    for raw in open(path, errors="replace"):
        line = raw.rstrip("\n")
        if line.startswith("events:"):
            events = line.split()[1:]
            continue
        m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if not m.group(1):
                function = names.get(m.group(2), m.group(2))
            continue
        if line.startswith("calls="):
            # the next cost line is the call's inclusive cost, not this code's
            skip_next = True
            continue
        if not line or line[0] not in "0123456789+-*":
            continue
        tokens = line.split()
        position = []
        for i, token in enumerate(tokens[:2]):
            if token == "*":
                position.append(last[i])
            elif token[0] in "+-":
                sign = 1 if token[0] == "+" else -1
                position.append(last[i] + sign * number(token[1:]))
            else:
                position.append(number(token))
        last = position
        if skip_next:
            skip_next = False
            continue
        values = [int(t) for t in tokens[2:]]
        address = position[0]
        counts = dict(zip(events, values))
        cost[address] += counts.get("Ir", 0)
        misses[address] += counts.get("I1mr", 0)
        function_of[address] = function
    return cost, misses, function_of, "I1mr" in events


def main():
    path, cycles = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    cost, misses, function_of, simulated = read(path)
    hot = [a for a, n in cost.items() if n >= cycles / 2]
    lines = {a // LINE for a in hot}
    total = sum(cost.values())
    print(
        f"{total / cycles:,.0f} instructions per cycle, {len(hot):,} of them hot, "
        f"in {len(lines):,} cache lines ({len(lines) * LINE / 1024:.1f} KiB)"
    )
    if simulated:
        print(f"L1 instruction-cache misses (simulated): {sum(misses.values()) / cycles:,.1f} per cycle")
    per_function = collections.defaultdict(set)
    for a in hot:
        per_function[function_of[a]].add(a // LINE)
    ranked = sorted(per_function.items(), key=lambda kv: -len(kv[1]))
    for function, fn_lines in ranked[:top]:
        print(f"{len(fn_lines):5d} lines  {function[:110]}")


if __name__ == "__main__":
    main()
