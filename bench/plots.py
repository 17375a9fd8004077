"""Pictures of the benchmarks' results (PNG, matplotlib), the ones bench/README.md shows.

Figures are written to ``BENCH_FIGURES`` (default ``bench/figures``); in smoke
mode to a temporary folder, so the smoke test draws them without touching the
repository.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from bench import session, sizes
from tests.helpers import REPO

# (seconds since the step started, latency in ms) of each request
Timeline = Sequence[tuple[float, float]]


def figure_path(name: str) -> Path:
    """Where figure ``name`` goes in this run."""
    default = session.temp_dir("bench-figures-") if sizes.SMOKE else REPO / "bench" / "figures"
    folder = Path(os.environ.get("BENCH_FIGURES") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def stall_timelines(
    name: str, title: str, panels: Mapping[str, Mapping[str, Timeline]], note: str, bucket: float = 0.1
) -> Path:
    """One panel per group of steps, one line per step: the longest request in flight in each ``bucket`` seconds.

    A request counts in every bucket from its start to its end, so a stall shows as a plateau as long as it lasted.
    """
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.6), sharey=True, squeeze=False)
    for ax, (panel, steps) in zip(axes[0], panels.items(), strict=True):
        for step, points in steps.items():
            if not points:
                continue
            longest: dict[int, float] = {}
            for started, ms in points:
                first = math.floor(max(started, 0.0) / bucket)
                for slot in range(first, max(first, math.floor((started + ms / 1000) / bucket)) + 1):
                    longest[slot] = max(longest.get(slot, 0.0), ms)
            slots = sorted(longest)
            slots.append(slots[-1] + 1)  # the last bucket's right edge
            longest[slots[-1]] = longest[slots[-2]]
            baseline = step.startswith("baseline")
            ax.plot(
                [slot * bucket for slot in slots],
                [longest[slot] for slot in slots],
                label=step if len(step) <= 60 else step[:57] + "...",
                drawstyle="steps-post",
                linewidth=1.0 if baseline else 1.4,
                color="0.6" if baseline else None,
                zorder=1 if baseline else 2,
            )
        ax.set_yscale("log")
        ax.set_title(panel, fontsize=11)
        ax.set_xlabel("seconds since the step started")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
    axes[0][0].set_ylabel("longest writer request in flight, ms (log)")
    figure.suptitle(title, fontsize=12)
    figure.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=8, color="0.3")
    figure.tight_layout(rect=(0, 0.03, 1, 0.96))
    return _save(figure, name)


@dataclass(frozen=True)
class FleetBar:
    """One fleet size for one contender: seconds until all pods served, and its failures."""

    pods: int
    who: str
    median: float | None  # None: no round in which every pod served
    low: float | None
    high: float | None
    failed: int
    started: int


def fleet_start_times(name: str, title: str, panels: Mapping[str, Sequence[FleetBar]], note: str) -> Path:
    """Grouped bars per fleet size (median, min-max whiskers); failed pods written above in red."""
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (panel, bars) in zip(axes[0], panels.items(), strict=True):
        sizes_shown = sorted({bar.pods for bar in bars})
        contenders = list(dict.fromkeys(bar.who for bar in bars))
        width = 0.8 / len(contenders)
        top = max([bar.high or 0.0 for bar in bars] + [1.0])
        for index, who in enumerate(contenders):
            for position, bar in enumerate(b for b in bars if b.who == who):
                x = sizes_shown.index(bar.pods) + (index - (len(contenders) - 1) / 2) * width
                label = who if position == 0 else None
                ax.bar(x, bar.median or 0.0, width, color=f"C{index}", label=label)
                if bar.median is not None and bar.low is not None and bar.high is not None:
                    whiskers = [[bar.median - bar.low], [bar.high - bar.median]]
                    ax.errorbar(x, bar.median, whiskers, color="0.2", capsize=3)
                if bar.failed:
                    failed = f"{bar.failed}/{bar.started}\nfailed"
                    y = (bar.high or 0.0) + top * 0.03
                    ax.text(x, y, failed, ha="center", va="bottom", color="red", fontsize=8)
        ax.set_xticks(range(len(sizes_shown)), [f"{n} pods" for n in sizes_shown])
        ax.set_ylim(0, top * 1.3)
        ax.set_title(panel, fontsize=11)
        ax.set_ylabel("seconds until every pod serves /readyz 200")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    figure.suptitle(title, fontsize=12)
    figure.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=8, color="0.3")
    figure.tight_layout(rect=(0, 0.04, 1, 0.95))
    return _save(figure, name)


def _save(figure: plt.Figure, name: str) -> Path:
    path = figure_path(name)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"\nfigure: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)
    return path
