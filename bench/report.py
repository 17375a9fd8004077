"""Repeated measurements and how a benchmark prints them: Markdown tables, ratios, goal lines."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Series:
    """Repeated measurements of one thing (seconds unless the table says otherwise)."""

    name: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")


def alternate(runs: int, measures: dict[str, Callable[[], float]]) -> dict[str, Series]:
    """Run each measure ``runs`` times, alternating them (ABAB..., first one flipped each round)."""
    series = {name: Series(name) for name in measures}
    names = list(measures)
    for index in range(runs):
        order = names if index % 2 == 0 else list(reversed(names))
        for name in order:
            series[name].values.append(measures[name]())
    return series


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A GitHub-flavoured Markdown table (pastes straight into bench/README.md)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    texts = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in texts)) if texts else len(str(h)) for i, h in enumerate(headers)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in texts:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def series_table(title: str, series: Sequence[Series], peer: Series, unit: str = "s", scale: float = 1.0) -> None:
    """Median/min/max per series and each one's median ratio against ``peer``."""
    rows = [
        [s.name, len(s.values), s.median * scale, s.min * scale, s.max * scale, s.median / peer.median] for s in series
    ]
    print_table(title, ["what", "runs", f"median {unit}", f"min {unit}", f"max {unit}", "ratio vs peer"], rows)


def goal(label: str, value: float, limit: float, *, lower_is_better: bool = True) -> bool:
    """Print one ``goal:`` line, MET or NOT MET."""
    met = value <= limit if lower_is_better else value >= limit
    sign = "<=" if lower_is_better else ">="
    print(f"goal: {label} = {value:.3f} (goal {sign} {limit:g}): {'MET' if met else 'NOT MET'}")
    sys.stdout.flush()
    return met
