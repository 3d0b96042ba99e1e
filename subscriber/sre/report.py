"""The shadow report as one self-contained HTML file: tables and inline SVG plots.

No script, stylesheet or font is fetched: the plots are SVG drawn here, the style is inline,
so the file opens offline and can be attached to a ticket. Pure: takes numbers, returns text.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 860, 240, 210, 30, 20, 36

Point = tuple[float, float]


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _frame(
    t0: float, t1: float, y_labels: Sequence[tuple[float, str]], height: int = _H
) -> list[str]:
    parts = [
        f'<svg width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" font-family="sans-serif" font-size="11">',
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{_W - _PAD_L - _PAD_R}" '
        f'height="{height - _PAD_T - _PAD_B}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for y, text in y_labels:
        parts.append(
            f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_esc(text)}</text>'
            f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
    for i in range(5):
        t = t0 + (t1 - t0) * i / 4
        x = _PAD_L + (_W - _PAD_L - _PAD_R) * i / 4
        parts.append(
            f'<text x="{x:.1f}" y="{height - _PAD_B + 16}" text-anchor="middle">'
            f"{_esc(_clock(t))}</text>"
        )
    return parts


def _x(t: float, t0: float, t1: float) -> float:
    span = (t1 - t0) or 1.0
    return _PAD_L + (_W - _PAD_L - _PAD_R) * (t - t0) / span


def _legend(names: Sequence[str], height: int, colors: Sequence[str] = COLORS) -> str:
    items = []
    x = _PAD_L + 10
    for i, name in enumerate(names):
        items.append(
            f'<rect x="{x}" y="{height - 12}" width="10" height="10" '
            f'fill="{colors[i % len(colors)]}"/>'
            f'<text x="{x + 14}" y="{height - 3}">{_esc(name)}</text>'
        )
        x += 30 + 7 * len(name)
    return "".join(items)


def step_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, str]]]],
    t0: float,
    t1: float,
    *,
    title: str = "",
    colors: Sequence[str] = COLORS,
) -> str:
    """Categorical values held until the next change, one line per series (e.g. cell, cluster).

    Args:
        series: ``(name, [(t, category), ...])`` sorted by time.
        t0: left edge (seconds since the epoch).
        t1: right edge.
        title: accessible title.
        colors: one per series, cycled.
    """
    categories: list[str] = []
    for _, points in series:
        for _, c in points:
            if c not in categories:
                categories.append(c)
    height = max(_H, 30 * len(categories) + _PAD_T + _PAD_B + 20)
    inner = height - _PAD_T - _PAD_B - 20
    step = inner / max(1, len(categories))
    y_of = {c: _PAD_T + 10 + step * (i + 0.5) for i, c in enumerate(categories)}
    parts = _frame(t0, t1, [(y, c) for c, y in y_of.items()], height)
    parts.insert(1, f"<title>{_esc(title)}</title>")
    for n, (_, points) in enumerate(series):
        if not points:
            continue
        offset = (n - (len(series) - 1) / 2) * 3
        coords: list[str] = []
        for i, (t, c) in enumerate(points):
            x = _x(t, t0, t1)
            y = y_of[c] + offset
            if i:
                coords.append(f"{x:.1f},{coords[-1].split(',')[1]}")
            coords.append(f"{x:.1f},{y:.1f}")
        last_y = coords[-1].split(",")[1]
        coords.append(f"{_x(t1, t0, t1):.1f},{last_y}")
        color = colors[n % len(colors)]
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(coords)}"/>'
        )
    parts.append(_legend([name for name, _ in series], height, colors))
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: Sequence[tuple[str, Sequence[Point]]], t0: float, t1: float, *, title: str = ""
) -> str:
    """Numeric series over time (e.g. cumulative relocations), one line per series."""
    y_max = max([y for _, pts in series for _, y in pts] + [1.0])
    inner = _H - _PAD_T - _PAD_B - 20

    def y_of(v: float) -> float:
        return _PAD_T + 10 + inner * (1 - v / y_max)

    labels = [(y_of(y_max * i / 4), f"{y_max * i / 4:.3g}") for i in range(5)]
    parts = _frame(t0, t1, labels)
    parts.insert(1, f"<title>{_esc(title)}</title>")
    for n, (_, points) in enumerate(series):
        coords = [f"{_x(t, t0, t1):.1f},{y_of(v):.1f}" for t, v in points]
        if not coords:
            continue
        color = COLORS[n % len(COLORS)]
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(coords)}"/>'
        )
    parts.append(_legend([name for name, _ in series], _H))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    bins: Sequence[str], series: Sequence[tuple[str, Sequence[int]]], *, title: str = ""
) -> str:
    """Counts per bin, bars of each series side by side (e.g. a histogram per policy)."""
    y_max = max([v for _, counts in series for v in counts] + [1])
    inner = _H - _PAD_T - _PAD_B - 20
    width = _W - _PAD_L - _PAD_R
    slot = width / max(1, len(bins))
    bar = slot * 0.8 / max(1, len(series))
    parts = [
        f'<svg width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="11">',
        f"<title>{_esc(title)}</title>",
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{width}" height="{_H - _PAD_T - _PAD_B}" '
        'fill="#fafafa" stroke="#ccc"/>',
    ]
    for i in range(5):
        v = y_max * i / 4
        y = _PAD_T + 10 + inner * (1 - v / y_max)
        parts.append(f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    for b, label in enumerate(bins):
        x0 = _PAD_L + slot * b + slot * 0.1
        parts.append(
            f'<text x="{_PAD_L + slot * (b + 0.5):.1f}" y="{_H - _PAD_B + 16}" '
            f'text-anchor="middle">{_esc(label)}</text>'
        )
        for n, (_, counts) in enumerate(series):
            h = inner * counts[b] / y_max
            parts.append(
                f'<rect x="{x0 + n * bar:.1f}" y="{_PAD_T + 10 + inner - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{COLORS[n % len(COLORS)]}">'
                f"<title>{counts[b]}</title></rect>"
            )
    parts.append(_legend([name for name, _ in series], _H))
    parts.append("</svg>")
    return "".join(parts)


BUDGET_BINS: tuple[tuple[str, float, float], ...] = (
    ("0 s", 0.0, 0.0),
    ("<10 s", 0.0, 10.0),
    ("10-60 s", 10.0, 60.0),
    ("1-5 min", 60.0, 300.0),
    ("5-30 min", 300.0, 1800.0),
    (">30 min", 1800.0, float("inf")),
)


def histogram(values: Sequence[float]) -> list[int]:
    """Counts of ``values`` in :data:`BUDGET_BINS` (exactly 0 in the first bin)."""
    counts = [0] * len(BUDGET_BINS)
    for v in values:
        if v <= 0:
            counts[0] += 1
            continue
        for i, (_, lo, hi) in enumerate(BUDGET_BINS[1:], start=1):
            if lo <= v < hi:
                counts[i] += 1
                break
    return counts


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:900px}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"
    "h2{margin-top:2em}.note{color:#666;font-size:90%}"
)


def render_html(summary: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The whole report.

    Args:
        summary: the JSON summary (recording, policies, comparison).
        plots: SVG text by key: ``ue_timeline``, ``relocations``, ``budget``.
    """
    policies: list[Mapping[str, Any]] = list(summary["policies"])
    names = [p["label"] for p in policies]
    rec = summary["recording"]
    totals = [
        ("events", "events"),
        ("relocations", "relocations"),
        ("ping-pong refusals (PING_PONG_SUPPRESSED)", "ping_pong_suppressed"),
        ("ping-pong episodes refused", "ping_pong_episodes"),
        ("A→B→A flips that happened", "flips"),
        ("rechecks of deferred moves", "rechecks"),
        ("instances", "instances"),
        ("instances ever out of budget", "instances_out_of_budget"),
        ("time out of budget, total (s)", "out_of_budget_s_total"),
    ]
    total_rows = [[label, *(p[key] for p in policies)] for label, key in totals]
    reasons = sorted({r for p in policies for r in p["decisions_by_reason"]})
    reason_rows = [[r, *(p["decisions_by_reason"].get(r, 0) for p in policies)] for r in reasons]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Shadow report: {_esc(' vs '.join(names))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Shadow report: {_esc(' vs '.join(names))}</h1>",
        "<p class='note'>",
        f"Recording {_esc(rec['path'])} ({_esc(rec['kind'])}, {rec['events']} events, "
        f"{_esc(rec['start'])} to {_esc(rec['end'])}). Instances: {_esc(summary['instances'])}. "
        "Relocations are assumed to take effect at once; no workflow ran.</p>",
        "<h2>Totals</h2>",
        _table(["", *names], total_rows),
        "<h2>Decisions by reason</h2>",
        _table(["reason", *names], reason_rows),
    ]
    if "comparison" in summary:
        comp = summary["comparison"]
        parts += [
            f"<h2>UEs whose outcome differs ({comp['differing_ues']})</h2>",
            _table(
                [
                    "UE",
                    f"relocations {names[0]}",
                    f"relocations {names[1]}",
                    f"out of budget {names[0]} (s)",
                    f"out of budget {names[1]} (s)",
                ],
                [
                    [
                        r["ue"],
                        r["relocations_a"],
                        r["relocations_b"],
                        r["out_of_budget_s_a"],
                        r["out_of_budget_s_b"],
                    ]
                    for r in comp["ues"][:200]
                ],
            ),
        ]
        if comp["differing_ues"] > 200:
            parts.append(f"<p class='note'>First 200 of {comp['differing_ues']}.</p>")
    if "ue_timeline" in plots:
        parts += [
            f"<h2>One UE over time: {_esc(summary.get('watched_ue', ''))}</h2>",
            "<p class='note'>Its cell (zone), and the cluster serving its first instance under "
            "each policy.</p>",
            plots["ue_timeline"],
        ]
    parts += [
        "<h2>Relocations over time (cumulative)</h2>",
        plots.get("relocations", ""),
        "<h2>Time spent out of the latency budget, per instance</h2>",
        plots.get("budget", ""),
        "</body></html>",
    ]
    return "".join(parts)
