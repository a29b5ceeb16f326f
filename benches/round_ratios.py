#!/usr/bin/env python3
"""Ratios of edgews to every other server, round by round, over one or
more `benches/compare.sh` runs.

    python3 benches/round_ratios.py target/compare/compare-*.jsonl [--test connect] [--goal 1.1]

compare.sh interleaves its rounds: round k of every server and setting runs
within a minute or two of the others. The rounds of one run still spread
by 10-20% on this machine as its speed drifts, so a ratio of two medians
(the tables compare.sh prints) can fall either side of a goal by chance.
This script pairs each edgews round with the same round of each other
server (same run, same setting), and gives for each pair of servers:

- the median of the per-round ratios, and its 95% confidence interval by
  bootstrap (4,000 resamples of the rounds, a fixed seed: the same files
  always give the same figures);
- in how many rounds the ratio reached the goal (`--goal`, default 1.1);
- the pooled ratio: each server's work (cycles, messages or deliveries)
  over its server CPU-seconds, summed over the paired rounds, and its 95%
  interval by the same bootstrap. This is the figure a goal such as
  "upgrades per server CPU-second" names; the median is less moved by one
  odd round.

"best peer" pairs each edgews round with the round of the run's best real
library (the peer with the highest pooled figure in that run and setting),
as compare.sh's "/ best peer" column does.

The key figure is `per_cpu_s` (work per server CPU-second, higher is
cheaper), read from each record's `server_cpu`; rounds that failed or have
no CPU reading are left out.
"""
import argparse
import collections
import json
import random
import statistics

PEERS = ("tokio-tungstenite", "fastwebsockets", "tokio-websockets")
RESAMPLES = 4000


def work_of(record):
    """Work units the round did in its CPU window (for the pooled ratio)."""
    load, cpu = record["load"], record["server_cpu"]
    for key in ("cycles_per_s", "msg_per_s", "deliveries_per_s"):
        if load.get(key) is not None:
            return load[key] * cpu["window_s"]
    return None


def cpu_seconds(record):
    cpu = record["server_cpu"]
    return (cpu["user_ticks"] + cpu["sys_ticks"]) / cpu["clk_tck"]


def usable(record, test):
    cpu = record.get("server_cpu") or {}
    return record["test"] == test and record.get("ok") and cpu.get("per_cpu_s")


def best_peer(recs, setting, servers):
    """The run's best real library in `setting`: the highest pooled figure."""
    figures = {}
    for peer in set(PEERS) & servers:
        rounds = [r for k, r in recs.items() if k[0] == setting and k[1] == peer]
        work = sum(work_of(r) or 0 for r in rounds)
        cpu = sum(cpu_seconds(r) for r in rounds)
        if work and cpu:
            figures[peer] = work / cpu
    return max(figures, key=figures.get, default=None)


def pooled_ratio(rounds):
    """Work per CPU-second of edgews over the other's, summed over `rounds`."""
    w1, c1, w2, c2 = (sum(r[i] for r in rounds) for i in range(4))
    return (w1 / c1) / (w2 / c2) if c1 and c2 and w2 else float("nan")


def confidence(values, statistic, rng):
    """95% bootstrap interval of `statistic` over `values` (the rounds)."""
    stats = sorted(statistic(rng.choices(values, k=len(values))) for _ in range(RESAMPLES))
    return stats[int(0.025 * RESAMPLES)], stats[int(0.975 * RESAMPLES) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="compare.sh raw results (.jsonl)")
    ap.add_argument("--test", default="connect", help="echo, connect or broadcast")
    ap.add_argument("--goal", type=float, default=1.1, help="ratio to count rounds against")
    args = ap.parse_args()
    rng = random.Random(19)

    ratios = collections.defaultdict(list)  # (setting, other) -> per-round ratios
    # (setting, other) -> per round: (edgews work, edgews CPU-s, other's work,
    # other's CPU-s)
    pooled = collections.defaultdict(list)
    settings = set()
    for path in args.files:
        recs = [json.loads(line) for line in open(path)]
        recs = {(r["setting"], r["server"], r["round"]): r for r in recs if usable(r, args.test)}
        for setting in sorted({k[0] for k in recs}):
            settings.add(setting)
            servers = {k[1] for k in recs if k[0] == setting} - {"edgews"}
            rounds = sorted({k[2] for k in recs if k[0] == setting})
            best = best_peer(recs, setting, servers)
            for rnd in rounds:
                mine = recs.get((setting, "edgews", rnd))
                if not mine:
                    continue
                pairs = [(other, other) for other in servers]
                if best:
                    pairs.append(("best peer", best))
                for name, other in pairs:
                    theirs = recs.get((setting, other, rnd))
                    if not theirs:
                        continue
                    ratios[(setting, name)].append(
                        mine["server_cpu"]["per_cpu_s"] / theirs["server_cpu"]["per_cpu_s"]
                    )
                    pooled[(setting, name)].append(
                        (work_of(mine) or 0, cpu_seconds(mine), work_of(theirs) or 0, cpu_seconds(theirs))
                    )

    print(f"{args.test}: edgews / other server, per_cpu_s paired by round; {len(args.files)} file(s)")
    print(f'{"setting":<16}{"other":<20}{"rounds":>7}{"median":>8}  {"95% CI":<16}'
          f'{f">= {args.goal}":>8}{"pooled":>8}  95% CI')
    for setting in sorted(settings):
        for other in sorted(o for (s, o) in ratios if s == setting):
            vals = ratios[(setting, other)]
            lo, hi = confidence(vals, statistics.median, rng)
            rounds = pooled[(setting, other)]
            plo, phi = confidence(rounds, pooled_ratio, rng)
            reached = sum(v >= args.goal for v in vals)
            print(f"{setting:<16}{other:<20}{len(vals):>7}{statistics.median(vals):>8.3f}  "
                  f"[{lo:.3f}, {hi:.3f}]{f'{reached}/{len(vals)}':>8}"
                  f"{pooled_ratio(rounds):>8.3f}  [{plo:.3f}, {phi:.3f}]")
        print()


if __name__ == "__main__":
    main()
