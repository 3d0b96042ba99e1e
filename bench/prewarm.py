"""Pre-warming study: roam -> served-from-the-new-edge time with and without prediction.

Run with ``.venv/bin/python -m bench.prewarm`` (``--help`` for sizes; ``--docs`` also writes
docs/prewarm-served.svg). Commuters along routes and random walkers move over an 8 x 8 grid of
zones, each with its own edge cluster (:func:`subscriber.sre.prewarm.grid_topology`); every UE
has one instance of a stateful app whose latency budget only its zone's edge meets. Each seed's
timeline runs through :func:`subscriber.sre.prewarm.study` twice, without and with pre-warming.

The figures do not depend on the machine: the study runs in virtual time, and a move costs the
demo's measured steps (deploy 40 ms, readiness 1 s, DNS switch 40 ms; docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from subscriber.sre.prewarm import STUDY_MOBILITY, Result, study, study_inputs

ROOT = Path(__file__).resolve().parent.parent


def _run(model: str, ues: int, duration_s: float, seed: int) -> tuple[Result, Result]:
    bundle, moves = study_inputs(model, ues, duration_s, seed)
    return study(bundle, moves, prewarm=False), study(bundle, moves, prewarm=True)


def _cdf_svg(curves: dict[str, list[tuple[str, list[float], str]]]) -> str:
    """One panel per model: the share of roams served within x seconds, x on a log scale."""
    w, h = 420, 260
    lo, hi = -2.0, 2.0  # 10 ms .. 100 s
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(curves)}" height="{h}" '
        'font-family="sans-serif" font-size="11">'
    ]
    for i, (title, lines) in enumerate(curves.items()):
        x0, y0, pw, ph = i * w + 50, 30, w - 80, h - 80

        def px(v: float, x0: float = x0, pw: float = pw) -> float:
            return x0 + (min(hi, max(lo, math.log10(max(v, 1e-9)))) - lo) / (hi - lo) * pw

        out += [
            f'<text x="{x0}" y="{y0 - 12}" font-weight="bold">{title}</text>',
            f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#444"/>',
            f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + ph}" stroke="#444"/>',
            f'<text x="{x0 - 4}" y="{y0 + 4}" text-anchor="end">100 %</text>',
            f'<text x="{x0 - 4}" y="{y0 + ph}" text-anchor="end">0</text>',
            f'<text x="{x0 + pw / 2}" y="{y0 + ph + 30}" text-anchor="middle">'
            "roam → served from the new edge (s, log scale)</text>",
        ]
        for tick in (0.01, 0.1, 1, 10, 100):
            out.append(
                f'<text x="{px(tick):.1f}" y="{y0 + ph + 14}" text-anchor="middle">{tick:g}</text>'
            )
        for j, (name, values, colour) in enumerate(lines):
            vs = sorted(values)
            n = len(vs) or 1
            pts = [f"{px(vs[0] if vs else 0.01):.1f},{y0 + ph:.1f}"]
            for k, v in enumerate(vs):
                pts.append(f"{px(v):.1f},{y0 + ph - (k + 1) / n * ph:.1f}")
            kept = [*pts[:: max(1, len(pts) // 400)], pts[-1]]
            out.append(
                f'<polyline points="{" ".join(kept)}" fill="none" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
            out.append(f'<text x="{x0 + 8}" y="{y0 + 14 + 14 * j}" fill="{colour}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _row(model: str, seed: int, base: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
    ratio = base["median_s"] / warm["median_s"] if warm["median_s"] else None
    return {"model": model, "seed": seed, "without": base, "with": warm, "median_ratio": ratio}


def main() -> None:
    """Print the table (and with ``--docs`` write the plot)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ues", type=int, default=200)
    parser.add_argument("--duration", type=float, default=4 * 3600.0, help="Virtual seconds.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--docs", action="store_true", help="Write docs/prewarm-served.svg.")
    parser.add_argument("--json", type=Path, help="Also write every figure to this file.")
    args = parser.parse_args()

    rows, curves = [], {}
    for model in STUDY_MOBILITY:
        for seed in args.seeds:
            base, warm = _run(model, args.ues, args.duration, seed)
            rows.append(_row(model, seed, base.summary(), warm.summary()))
            if seed == args.seeds[0] and model != "commute-exp":
                curves[f"{model} (seed {seed})"] = [
                    ("without pre-warming", base.served_s, "#d62728"),
                    ("with pre-warming", warm.served_s, "#1f77b4"),
                ]
    print(
        "| model | seed | roams | median without | median with | ratio | p90 with "
        "| pre-warmed | prewarms | hits | misses | expired | waste / useful |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, w = r["without"], r["with"]
        ratio = f"{r['median_ratio']:.0f}×" if r["median_ratio"] else "—"
        waste = f"{w['waste_ratio']:.0%}" if w["waste_ratio"] is not None else "—"
        print(
            f"| {r['model']} | {r['seed']} | {b['roams']} | {b['median_s']:.2f} s "
            f"| {w['median_s']:.2f} s | {ratio} | {w['p90_s']:.2f} s "
            f"| {w['prewarmed_share']:.0%} | {w['prewarms']} | {w['hits']} | {w['misses']} "
            f"| {w['expired']} | {waste} ({w['warm_wasted_s']:.0f} / {w['warm_used_s']:.0f} s) |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.docs:
        (ROOT / "docs" / "prewarm-served.svg").write_text(_cdf_svg(curves))
        print("wrote docs/prewarm-served.svg")


if __name__ == "__main__":
    main()
