"""The importer benchmark's short report: a markdown table and a PNG chart of records/s over time.

Written by ``importer_benchmark.py --report DIR`` into ``DIR/<name>.md`` and ``DIR/<name>.png``,
the name telling the history's size and the time the run started. The chart needs matplotlib (the
project's dev group); without it, the report says so and has no chart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol


class ReportFigures(Protocol):
    objects: int
    objects_by_resource: dict[str, int]
    counts_exact: bool
    import_s: float
    records_per_s: float
    limit_bound_s: float
    limit_bound_records_per_s: float
    ratio_to_bound: float
    requests: int
    rate_limited_429: int
    importer_cpu_s: float
    importer_cpu_ms_per_1k_records: float
    cpu_s_by_role: dict[str, float]
    cores: int
    cpu_floor_s: float
    machine_busy_share: float
    baseline_records_per_s: float
    ratio_to_baseline: float
    timeline: list[tuple[float, int]]
    peers: list[dict[str, Any]]
    taken_at: str
    load_average: list[float]
    load_average_end: list[float]
    reference_loop_s: float
    importer_peak_rss_mb: list[float]
    importer_rss_mb_by_progress: dict[str, float]
    fake_ready_s: float
    fake_peak_rss_mb: float
    command: str
    cold_import_s: float | None


def _rate_series(points: list[tuple[float, int]], step: float) -> tuple[list[float], list[float]]:
    """Records a second in windows of ``step`` seconds, from cumulative (seconds, records) points."""
    if not points:
        return [], []
    end = max(at for at, _ in points)
    times: list[float] = []
    rates: list[float] = []
    previous = 0
    edge = step
    index = 0
    while edge - step < end:
        total = previous
        while index < len(points) and points[index][0] <= edge:
            total = points[index][1]
            index += 1
        times.append(edge - step / 2)
        rates.append((total - previous) / step)
        previous = total
        edge += step
    return times, rates


def _chart(figures: ReportFigures, path: Path) -> bool:
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    longest = max([figures.import_s] + [peer["wall_s"] for peer in figures.peers])
    step = max(0.25, round(longest / 60, 2))
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    times, rates = _rate_series(figures.timeline, min(step, max(0.25, figures.import_s / 8)))
    ax.step(times, rates, where="mid", label=f"ours ({figures.records_per_s:.0f}/s end to end)", linewidth=2)
    ax.axhline(
        figures.limit_bound_records_per_s,
        color="grey",
        linestyle="--",
        label=f"limit bound ({figures.limit_bound_records_per_s:.0f}/s)",
    )
    for peer in figures.peers:
        peer_times, peer_rates = _rate_series([tuple(point) for point in peer["timeline"]], step)
        ax.step(peer_times, peer_rates, where="mid", label=f"{peer['name']} ({peer['records_per_s']:.0f}/s)")
    ax.set_xscale("symlog", linthresh=max(1.0, figures.import_s))
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("seconds since the start (symlog)")
    ax.set_ylabel("records/s (symlog)")
    ax.set_title(f"{figures.objects} objects, fake Stripe, live limits, 250 ms a page ({figures.taken_at})")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(figures: ReportFigures, folder: Path) -> Path:
    """Write ``<name>.md`` (and ``<name>.png``) into ``folder``; returns the markdown file."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"importer-{figures.objects}-objects-{re.sub(r'[^0-9]', '', figures.taken_at)[:12]}"
    chart = folder / f"{name}.png"
    has_chart = _chart(figures, chart)
    f = figures
    cpu = ", ".join(f"{role} {seconds:.1f} s" for role, seconds in sorted(f.cpu_s_by_role.items()))
    rows = [
        ("ours: connect → ImportCompleted", f"{f.import_s:.2f} s", f"{f.records_per_s:.0f} records/s"),
        *(
            (("first import (cold, untimed warm-up)", f"{f.cold_import_s:.2f} s", "just-started processes"),)
            if f.cold_import_s is not None
            else ()
        ),
        ("limit bound", f"{f.limit_bound_s:.2f} s", f"{f.limit_bound_records_per_s:.0f} records/s"),
        ("ours / bound", f"{f.ratio_to_bound:.3f}", ""),
        ("requests, 429s", f"{f.requests}", f"{f.rate_limited_429}"),
        (
            "importer CPU",
            f"{f.importer_cpu_s:.2f} s",
            f"{f.importer_cpu_ms_per_1k_records / 1000:.3f} ms per record",
        ),
        ("CPU by process", cpu, f"machine busy {f.machine_busy_share:.0%}"),
        (
            "CPU floor",
            f"{f.cpu_floor_s:.2f} s",
            f"that CPU over the machine's {f.cores} cores, or the busiest one-core process's:"
            " the shortest the import could take here",
        ),
        (
            "importer peak memory (RSS)",
            " + ".join(f"{mb:.1f}" for mb in f.importer_peak_rss_mb) + " MB",
            "by progress: "
            + ", ".join(f"{mark} {mb:.1f} MB" for mark, mb in f.importer_rss_mb_by_progress.items()),
        ),
        (
            "fake Stripe (whole history in memory)",
            f"{f.fake_peak_rss_mb:.0f} MB peak RSS",
            f"answered {f.fake_ready_s:.1f} s after its start",
        ),
    ]
    if f.baseline_records_per_s:
        rows.append(
            (
                "baseline (stripe SDK, sequential)",
                f"{f.baseline_records_per_s:.0f} records/s",
                f"ours {f.ratio_to_baseline:.1f}×",
            )
        )
    for peer in f.peers:
        rows.append(
            (
                f"{peer['name']} {peer['version']}",
                f"{peer['wall_s']:.1f} s, {peer['records']} records",
                f"{peer['records_per_s']:.1f} records/s; ours {peer['ratio_ours_to_peer']:.1f}×"
                f" ({peer['ratio_ours_to_peer_after_start']:.1f}× its rate after its first record);"
                f" {peer['requests']} requests; machine busy {peer['machine_busy_share']:.0%}"
                + (f"; {peer['error']}" if peer["error"] else ""),
            )
        )
    lines = [
        f"# Importer benchmark, {f.objects} objects ({f.taken_at})",
        "",
        f"`{f.command}`; counts exact: {f.counts_exact}; {f.objects_by_resource}.",
        f"Load average at the start: {f.load_average}, at the end of the import: {f.load_average_end}, on"
        " 2 cores shared with other work, so the times are those of a busy machine, not of an idle one."
        f" Machine speed: {f.reference_loop_s:.2f} s for `sum(i * i for i in range(10**7))` on one core.",
        "",
        "| figure | value | note |",
        "| --- | --- | --- |",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
    ]
    if has_chart:
        lines += [f"![records/s over time: ours, the limit bound, the peers]({chart.name})", ""]
    else:
        lines += ["(no chart: matplotlib is not installed)", ""]
    path = folder / f"{name}.md"
    path.write_text("\n".join(lines))
    return path
