"""Coverage vs round as a PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from knhk_mesh.sim.spread import SimResult


def plot_coverage(results: list[SimResult], path: Path) -> None:
    """One line per run; linear and log scales side by side, so the early rounds show too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lin, log) = plt.subplots(1, 2, figsize=(11, 4.2))
    for result in results:
        p = result.params
        rounds = list(range(1, len(result.informed) + 1))
        percent = [100.0 * c for c in result.coverage]
        label = f"{p.agents:,} agents, {p.topology.value}, k={p.fanout}"
        if p.byzantine:
            label += f", {p.byzantine:,} Byzantine"
        if p.loss:
            label += f", loss {p.loss:g}"
        for ax in (lin, log):
            ax.plot(rounds, percent, marker="o", label=label)
    for ax, scale in ((lin, "linear"), (log, "log")):
        ax.set_yscale(scale)
        ax.set_xlabel("round (1 = the write's own round)")
        ax.set_ylabel("honest agents holding the write (%)")
        ax.axhline(100.0, color="grey", linewidth=0.8, linestyle="--")
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    lin.set_ylim(0, 105)
    lin.set_title("coverage vs round")
    log.set_title("coverage vs round (log scale)")
    lin.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
