"""`knhk-mesh simulate`: arguments in, one run of the simulator, a table or one JSON object out."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from knhk_mesh.sim.params import SimParams, Topology

_BAR = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, required=True, help="number of agents, 2 .. 10,000,000")
    parser.add_argument(
        "--topology",
        choices=[t.value for t in Topology],
        default=Topology.SINGLE.value,
        help="single mesh, multi-region (leaders gossip across regions), or hierarchical "
        "(edge clusters, aggregators, coordinators); default single",
    )
    parser.add_argument(
        "--fanout", type=int, help="peers per round, k (default 10, or every other agent when fewer)"
    )
    parser.add_argument("--byzantine", type=int, default=0, help="withholding Byzantine agents (< n/3)")
    parser.add_argument("--loss", type=float, default=0.0, help="probability a message is lost, [0, 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument("--regions", type=int, default=3, help="multi: number of regions (default 3)")
    parser.add_argument(
        "--cluster-size",
        type=int,
        default=10_000,
        help="hierarchical: agents per edge cluster (default 10,000)",
    )
    parser.add_argument(
        "--coordinators", type=int, default=2, help="hierarchical: global coordinators (default 2)"
    )
    parser.add_argument("--max-rounds", type=int, default=100, help="give up after this many rounds")
    parser.add_argument("--plot", metavar="FILE.png", help="write coverage vs round to this PNG")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")


def params_from(args: argparse.Namespace) -> SimParams:
    """Raises ValueError with a one-line message naming the bad option."""
    return SimParams(
        agents=args.agents,
        topology=Topology(args.topology),
        fanout=args.fanout if args.fanout is not None else max(1, min(10, args.agents - 1)),
        byzantine=args.byzantine,
        loss=args.loss,
        seed=args.seed,
        regions=args.regions,
        cluster_size=args.cluster_size,
        coordinators=args.coordinators,
        max_rounds=args.max_rounds,
    )


def plot_path(text: str | None) -> Path | None:
    """Checked before the run, so a long simulation never ends in an unwritable file."""
    if text is None:
        return None
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise ValueError(f"--plot {text}: the plot is a PNG file, name it *.png")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"--plot {text}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"--plot {text}: not writable")
    return path


def _bar(out: TextIO) -> Callable[[int, int, int], None]:
    def show(round_no: int, informed: int, honest: int) -> None:
        share = informed / honest
        filled = int(share * _BAR)
        bar = "#" * filled + "." * (_BAR - filled)
        out.write(f"\rsimulate: round {round_no:>3} [{bar}] {100 * share:7.3f}%")
        if informed == honest:
            out.write("\n")
        out.flush()

    return show


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Exit 0 when every honest agent got the write within --max-rounds, 1 when not.

    Bad options raise ValueError (one line, naming the option) before anything runs.
    """
    params = params_from(args)
    path = plot_path(args.plot)
    from knhk_mesh.sim.spread import simulate

    progress = err.isatty() if args.progress is None else args.progress
    result = simulate(params, _bar(err) if progress else None)
    if progress and result.rounds is None:
        err.write("\n")
    if path is not None:
        from knhk_mesh.sim.plot import plot_coverage

        plot_coverage([result], path)
    if args.json:
        print(json.dumps(result.as_dict()), file=out)
    else:
        p = params
        print(
            f"knhk-mesh simulate: {p.agents:,} agents, {p.topology.value}, fanout {p.fanout}, "
            f"{p.byzantine:,} Byzantine, loss {p.loss:g}, seed {p.seed}",
            file=out,
        )
        print(f"{'round':>5}  {'coverage':>9}  {'holding the write':>17}", file=out)
        for r, (share, informed) in enumerate(zip(result.coverage, result.informed, strict=True), start=1):
            print(f"{r:>5}  {100 * share:>8.3f}%  {informed:>17,}", file=out)
        if result.rounds is None:
            print(
                f"the write did NOT reach all {result.honest:,} honest agents in "
                f"{len(result.informed)} rounds "
                f"({result.seconds:.1f} s)",
                file=out,
            )
        else:
            print(
                f"full coverage of {result.honest:,} honest agents after {result.rounds} "
                f"round{'' if result.rounds == 1 else 's'} "
                f"({result.seconds:.1f} s)",
                file=out,
            )
        if path is not None:
            print(f"plot: {path}", file=out)
    return 0 if result.rounds is not None else 1
