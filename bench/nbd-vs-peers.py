#!/usr/bin/env python3
"""Tables, target ratios and the plot of bench/nbd-vs-peers.sh's runs.

nbd-vs-peers.py RUNS.tsv --svg OUT.svg [--size-mib N] [--seconds S] [--command CMD] [--machine TEXT]
Prints the RESULTS.md section (Markdown) on stdout; draws OUT.svg with matplotlib.
"""
import argparse
import csv
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

WORKLOADS = {
    "write-4k": "4 KiB random first-touch writes",
    "write-1m": "1 MiB sequential first-touch writes",
    "rewrite-4k": "4 KiB random rewrites of allocated chunks",
    "write-flush-4k": "4 KiB random first-touch write + FLUSH",
    "read-4k": "4 KiB random reads",
    "read-1m": "1 MiB sequential reads",
}
CONDITIONS = [("1", "cache"), ("1", "cold"), ("16", "cache"), ("16", "cold")]


def mode(name):
    return [f"dmsnap-{name}-4k", f"dmsnap-{name}-64k"]


def targets(default):
    """(what, ours, theirs, minimum ratio): the issue's targets, each checked on every row where both ran."""
    return [
        (f"dmsnap's default ({default}) vs qemu-nbd's default (writeback)", mode(default), "qemu-nbd-writeback", 1.0),
        (f"dmsnap's default ({default}) vs nbdkit cow", mode(default), "nbdkit-cow", 1.0),
        (f"dmsnap's default ({default}) reads vs nbdkit file", mode(default), "nbdkit-file", 1.0),
        ("none vs qemu-nbd --cache=none", mode("none"), "qemu-nbd-none", 1.0),
        ("none vs nbdkit cow", mode("none"), "nbdkit-cow", 1.0),
        ("writeback vs qemu-nbd --cache=writeback", mode("writeback"), "qemu-nbd-writeback", 1.0),
        ("writeback vs nbdkit cow", mode("writeback"), "nbdkit-cow", 1.0),
        ("directsync vs qemu-nbd --cache=directsync", mode("directsync"), "qemu-nbd-directsync", 1.0),
        ("none reads vs nbdkit file", mode("none"), "nbdkit-file", 1.0),
    ]


def label(server):
    return server.replace("dmsnap-", "dmsnap ").replace("-4k", " 4K").replace("-64k", " 64K").replace(
        "-thick", " thick")


def amount(workload, iops):
    if workload.endswith("1m"):
        return f"{iops:.0f} MiB/s"
    return f"{iops / 1000:.1f}k" if iops >= 1000 else f"{iops:.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--svg", required=True)
    ap.add_argument("--size-mib", default="1024")
    ap.add_argument("--seconds", default="3")
    ap.add_argument("--command", default="bench/nbd-vs-peers.sh")
    ap.add_argument("--machine", default="")
    ap.add_argument("--default-mode", default="none", help="the daemon's default cache mode")
    args = ap.parse_args()

    runs = defaultdict(list)  # (workload, qd, base, server) -> [iops per round]
    order = defaultdict(list)  # workload -> servers in first-seen order
    rounds = set()
    with open(args.runs) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            runs[(r["workload"], r["qd"], r["base"], r["server"])].append(float(r["iops"]))
            if r["server"] not in order[r["workload"]]:
                order[r["workload"]].append(r["server"])
            rounds.add(r["round"])
    med = {k: statistics.median(v) for k, v in runs.items()}

    out = []
    say = out.append
    say(args.machine)
    say("")
    say(f"Command: `{args.command}` (fio --ioengine=nbd over each server's Unix socket; a "
        f"{args.size_mib} MiB base of random data; a fresh overlay for every run; each row runs every "
        f"server in turn, the order rotated per round; {len(rounds)} rounds, medians; timed runs stop after "
        f"{args.seconds} s or when the region is written once; `cache`: the base read into the page cache "
        f"before the run, `cold`: caches dropped). dmsnap: one daemon for the whole run, warmed first; a "
        f"snapshot `P` per run on a COW made sparse as `truncate` does (`--preallocation off`, the default) "
        f"or thick (`full`), chunks of 4 KiB (LVM's default) or 64 KiB, `--cache none`, "
        f"`writeback` or `directsync` (the daemon's default here: `{args.default_mode}`). qemu-nbd: `-t --cache=MODE -f qcow2` on a fresh qcow2 overlay "
        f"(64 KiB clusters, its default) over the base; writeback is its default. nbdkit: `--filter=cow "
        f"file BASE` (a temporary overlay, never flushed, gone at exit) and, for reads, `file BASE`. "
        f"Raw runs: bench/nbd-vs-peers.tsv; plot: bench/nbd-vs-peers.svg (IOPS, log scale).")
    say("")
    say("![dmsnap vs qemu-nbd and nbdkit](nbd-vs-peers.svg)")
    say("")
    say("Medians (IOPS; MiB/s for the 1 MiB rows) at queue depth 1 and 16, base in the page cache or cold:")
    for workload, title in WORKLOADS.items():
        conds = [c for c in CONDITIONS if any((workload, *c, s) in med for s in order[workload])]
        if not conds:
            continue
        say("")
        say(f"**{title}**")
        say("")
        say("| server | " + " | ".join(f"qd{qd} {base}" for qd, base in conds) + " |")
        say("|---|" + "---|" * len(conds))
        for s in order[workload]:
            cells = [amount(workload, med[(workload, *c, s)]) if (workload, *c, s) in med else "" for c in conds]
            say(f"| {label(s)} | " + " | ".join(cells) + " |")

    say("")
    say("**Targets** (ratios of medians in this run; every row where both ran):")
    say("")
    say("| target | rows met | worst (row) | misses |")
    say("|---|---|---|---|")
    checks = targets(args.default_mode)
    for name in dict.fromkeys([args.default_mode, "none"]):
        for chunk in ("4k", "64k"):
            checks.append((f"sparse vs thick COW, {name} {chunk.upper()} (allocate ahead)",
                           [f"dmsnap-{name}-{chunk}"], f"dmsnap-{name}-{chunk}-thick", 0.9))
    for what, ours, theirs, minimum in checks:
        ratios = []
        for (workload, qd, base, server), value in med.items():
            if server in ours and (workload, qd, base, theirs) in med:
                ratios.append((value / med[(workload, qd, base, theirs)], f"{workload} qd{qd} {base} {label(server)}"))
        if not ratios:
            continue
        met = sum(1 for r, _ in ratios if r >= minimum)
        worst = min(ratios)
        misses = sorted((r, row) for r, row in ratios if r < minimum)
        shown = "; ".join(f"{row} {r:.2f}" for r, row in misses[:6]) + (" ..." if len(misses) > 6 else "")
        say(f"| {what} (≥ {minimum}×) | {met} of {len(ratios)} | {worst[0]:.2f} ({worst[1]}) | {shown} |")
    flush = [(med[("write-flush-4k", "1", "cache", s)] / med[("write-flush-4k", "1", "cache", "qemu-nbd-none")], s)
             for s in mode(args.default_mode) if ("write-flush-4k", "1", "cache", s) in med
             and ("write-flush-4k", "1", "cache", "qemu-nbd-none") in med]
    if flush:
        say("| durable write + FLUSH at qd1 vs qemu-nbd --cache=none (≥ 1.0×) | "
            f"{sum(1 for r, _ in flush if r >= 1)} of {len(flush)} | "
            + ", ".join(f"{label(s)} {r:.2f}" for r, s in flush) + " | |")
    print("\n".join(out))
    plot(med, order, args.svg)


COLOURS = {
    "dmsnap-none-4k": "#08306b", "dmsnap-none-64k": "#2171b5", "dmsnap-writeback-4k": "#4292c6",
    "dmsnap-writeback-64k": "#6baed6", "dmsnap-directsync-4k": "#9ecae1", "dmsnap-directsync-64k": "#c6dbef",
    "dmsnap-none-4k-thick": "#54278f", "dmsnap-none-64k-thick": "#9e9ac8",
    "dmsnap-writeback-4k-thick": "#756bb1", "dmsnap-writeback-64k-thick": "#bcbddc",
    "qemu-nbd-writeback": "#a63603", "qemu-nbd-none": "#e6550d", "qemu-nbd-directsync": "#fdae6b",
    "nbdkit-cow": "#006d2c", "nbdkit-file": "#74c476",
}


def plot(med, order, path):
    workloads = [w for w in WORKLOADS if order[w]]
    fig, axes = plt.subplots(len(workloads), 1, figsize=(10, 4.2 * len(workloads)))
    for ax, workload in zip(axes if len(workloads) > 1 else [axes], workloads):
        conds = [c for c in CONDITIONS if any((workload, *c, s) in med for s in order[workload])]
        servers = order[workload]
        height = 0.8 / len(servers)
        for i, s in enumerate(servers):
            ys = [j + i * height for j, c in enumerate(conds) if (workload, *c, s) in med]
            xs = [med[(workload, *c, s)] for c in conds if (workload, *c, s) in med]
            ax.barh(ys, xs, height=height, color=COLOURS.get(s, "grey"), label=label(s))
        ax.set_yticks([j + 0.4 - height / 2 for j in range(len(conds))])
        ax.set_yticklabels([f"qd{qd} {base}" for qd, base in conds])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("MiB/s" if workload.endswith("1m") else "IOPS")
        ax.set_title(WORKLOADS[workload], loc="left", fontsize=11)
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle("dmsnap vs qemu-nbd and nbdkit over NBD (fio nbd engine, medians)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})


if __name__ == "__main__":
    main()
