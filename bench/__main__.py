"""``python -m bench``: every benchmark, one table, one JSON file, one growth plot.

Runs each benchmark as its own process against the local stack (started if needed), collects the
figures they record (:mod:`bench.figures`), and writes to ``--out`` (default ``bench-results/``):

* ``results.json``: the machine, the date, each command with its wall time, every figure;
* ``results.md``: the table, each figure against its goal;
* ``growth.svg``: how each cost grows with load (figures measured at several sizes);
* ``logs/``: each benchmark's own printed output.

``--docs`` also copies the table and the plot into docs/ (performance-figures.md, perf-growth.svg).
``--quick`` runs small sizes only (a smoke run, minutes instead of tens of minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def plan(quick: bool) -> list[tuple[str, list[str]]]:
    """The runs: (name, argv after ``python -m``)."""
    if quick:
        return [
            ("decide", ["bench.decide", "--ues", "5000", "--events", "30000", "--repeat", "1"]),
            ("poll-10k", ["bench.poll", "--ues", "10000", "--moved", "100", "--rounds", "2"]),
            ("shadow", ["bench.shadow", "--ues", "500", "--repeat", "1"]),
            ("e2e", ["bench.e2e", "--rates", "100", "--seconds", "5", "--warmup", "1"]),
        ]
    return [
        ("decide-10k", ["bench.decide", "--ues", "10000", "--events", "60000"]),
        ("decide-50k", ["bench.decide", "--ues", "50000", "--events", "300000"]),
        ("poll-10k", ["bench.poll", "--ues", "10000", "--moved", "1000"]),
        ("poll-50k", ["bench.poll", "--ues", "50000", "--moved", "1000"]),
        ("poll-100k", ["bench.poll", "--ues", "100000", "--moved", "1000"]),
        ("shadow-1k", ["bench.shadow", "--ues", "1000"]),
        ("shadow-5k", ["bench.shadow", "--ues", "5000"]),
        ("replay", ["bench.replay"]),
        ("h2client", ["bench.h2client", "--null"]),
        ("e2e", ["bench.e2e", "--rates", "100", "300", "1000", "--seconds", "10"]),
        ("ingest", ["bench.ingest"]),
    ]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    load = os.getloadavg()[0]
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "load_at_start": round(load, 2),
        "note": "shared 2-core machine: expect +-20-30 % between runs",
    }


def met(figure: dict[str, Any]) -> str:
    """'yes', 'no' or '' (no goal) for one figure."""
    goal = figure.get("goal")
    if goal is None:
        return ""
    ok = figure["value"] >= goal if figure["better"] == "higher" else figure["value"] <= goal
    return "yes" if ok else "no"


def table(figures: list[dict[str, Any]]) -> str:
    """The markdown table of every figure."""
    rows = [
        "| bench | figure | size | value | unit | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        goal = (
            ""
            if f.get("goal") is None
            else f"{'≥' if f['better'] == 'higher' else '≤'} {f['goal']:,g}"
        )
        size = "" if f.get("size") is None else f"{f['size']:,g}"
        value = f"{f['value']:,.0f}" if abs(f["value"]) >= 100 else f"{f['value']:,.3g}"
        rows.append(
            f"| {f['bench']} | {f['figure']} | {size} | {value} | {f['unit']} | {goal} | {met(f)} |"
        )
    return "\n".join(rows) + "\n"


def growth_svg(figures: list[dict[str, Any]]) -> str:
    """Small multiples: one panel per figure measured at two or more sizes."""
    curves: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for f in figures:
        if f.get("size") is not None:
            curves[(f["bench"], f["figure"], f["unit"])].append((float(f["size"]), f["value"]))
    panels = [(k, sorted(v)) for k, v in curves.items() if len({s for s, _ in v}) >= 2]
    w, h, cols = 360, 220, 2
    rows = max(1, (len(panels) + cols - 1) // cols)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * cols}" height="{h * rows}" '
        'font-family="sans-serif" font-size="11">'
    ]
    for i, ((bench, figure, unit), points) in enumerate(panels):
        x0, y0 = (i % cols) * w + 50, (i // cols) * h + 30
        pw, ph = w - 70, h - 70
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        xmax, ymax = max(xs) or 1, (max(ys) or 1) * 1.1
        pts = " ".join(f"{x0 + x / xmax * pw:.1f},{y0 + ph - y / ymax * ph:.1f}" for x, y in points)
        out += [
            f'<text x="{x0}" y="{y0 - 12}" font-weight="bold">{bench}: {figure}</text>',
            f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#444"/>',
            f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + ph}" stroke="#444"/>',
            f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="2"/>',
            f'<text x="{x0 - 4}" y="{y0 + 4}" text-anchor="end">{ymax:,.3g}</text>',
            f'<text x="{x0 - 4}" y="{y0 + ph}" text-anchor="end">0</text>',
            f'<text x="{x0 + pw}" y="{y0 + ph + 14}" text-anchor="end">size {xmax:,g}</text>',
            f'<text x="{x0 + pw / 2}" y="{y0 + ph + 28}" text-anchor="middle">{unit}</text>',
        ]
        for x, y in points:
            cx, cy = x0 + x / xmax * pw, y0 + ph - y / ymax * ph
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="#1f77b4"/>')
            out.append(f'<text x="{cx:.1f}" y="{cy - 6:.1f}" text-anchor="middle">{y:,.3g}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the plan and write the results."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--quick", action="store_true", help="Small sizes: a smoke run.")
    parser.add_argument("--only", nargs="+", help="Run only these names from the plan.")
    parser.add_argument("--docs", action="store_true", help="Also update docs/ figures.")
    args = parser.parse_args(argv)
    out: Path = args.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    runs = [r for r in plan(args.quick) if not args.only or r[0] in args.only]
    figures_file = Path(tempfile.mkstemp(prefix="bench-figures-")[1])
    commands, failed = [], []
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_at_start']}")
    for name, bench_argv in runs:
        started = time.monotonic()
        log = out / "logs" / f"{name}.txt"
        with open(log, "w") as sink:
            proc = subprocess.run(
                [sys.executable, "-m", *bench_argv],
                cwd=ROOT,
                env={**os.environ, "BENCH_FIGURES": str(figures_file)},
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=1800,
                check=False,
            )
        wall = time.monotonic() - started
        commands.append(
            {
                "name": name,
                "argv": ["python", "-m", *bench_argv],
                "wall_s": round(wall, 1),
                "exit": proc.returncode,
            }
        )
        status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
        print(f"{name:<12} {status:<12} {wall:7.1f} s  -> {log}", flush=True)
        if proc.returncode != 0:
            failed.append(name)
    figures = [json.loads(line) for line in figures_file.read_text().splitlines() if line]
    figures_file.unlink()
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "commands": commands,
        "figures": figures,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (
        f"Measured {result['date']} on {info['cpu']}, {info['cores']} cores, "
        f"{info['memory_gib']} GiB, Python {info['python']} (load {info['load_at_start']} at "
        f"start; {info['note']}).\n\n" + table(figures)
    )
    (out / "results.md").write_text(md)
    (out / "growth.svg").write_text(growth_svg(figures))
    print("\n" + table(figures))
    if args.docs:
        shutil.copy(out / "results.md", ROOT / "docs" / "performance-figures.md")
        shutil.copy(out / "growth.svg", ROOT / "docs" / "perf-growth.svg")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
