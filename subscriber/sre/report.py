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


_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}"
    "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}"
    "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"
    "td.l,th.l{text-align:left}td.n{white-space:nowrap}"
    "h2{margin-top:2em}.note{color:#666;font-size:90%}"
    ".warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em 1em}"
    ".ok{color:#2a7d2a}.no{color:#b22}"
)
ROWS_SHOWN = 200
"""Rows of a long table shown in the HTML; the JSON report has them all."""


def _rows(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1) -> str:
    """A table whose first ``left`` columns (and any HTML-safe cell) read left-aligned."""
    head = "".join(
        f"<th{' class=l' if i < left else ''}>{_esc(h)}</th>" for i, h in enumerate(headers)
    )
    body = []
    for row in rows[:ROWS_SHOWN]:
        cells = "".join(
            f"<td class='l'>{c.html}</td>" if isinstance(c, _Html) else
            f"<td{' class=l' if i < left else ''}>{_esc(c)}</td>"
            for i, c in enumerate(row)
        )  # fmt: skip
        body.append(f"<tr>{cells}</tr>")
    more = (
        f"<p class='note'>First {ROWS_SHOWN} of {len(rows)}; the JSON report has all.</p>"
        if len(rows) > ROWS_SHOWN
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


class _Html(str):
    """Text already escaped, to put in a cell as it is."""

    @property
    def html(self) -> str:
        return str(self)


def _candidates(candidates: Sequence[Mapping[str, Any]], shown: int = 3) -> _Html:
    parts = []
    for c in candidates[:shown]:
        if c["rejected"] is None:
            parts.append(
                f"<span class='ok'>{_esc(c['cluster'])} {c['score']:.3f}</span> "
                f"({_esc(c['latency_ms'])} ms, load {c['utilisation']:.0%})"
            )
        else:
            parts.append(f"<span class='no'>{_esc(c['cluster'])} {_esc(c['rejected'])}</span>")
    return _Html("; ".join(parts))


def _inputs(doc: Mapping[str, Any]) -> str:
    inputs = doc["inputs"]
    rec, topo = inputs["recording"], inputs["topology"]
    rows: list[list[Any]] = [
        ["recording", f"{rec['path']} ({rec['kind']}, {rec['start']} to {rec['end']})"],
        ["topology", f"{topo['path']} (PLMN {topo['plmn']}, sha256 {topo['sha256']})"],
    ]
    for p in inputs["policies"]:
        where = f"{p['path']} (sha256 {p['sha256']})" if p["path"] else "the defaults (no file)"
        rows.append([f"policy {p['label']}", f"{where}, version {p['version']}"])
    rows.append(["instances", inputs["instances"]])
    return _rows(["input", "used"], rows, left=2)


def _cannot_act(doc: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    parts = ["<h2 id='cannot-act'>Decisions that could not be carried out</h2>"]
    if not any(doc["cannot_act"][n]["total"] for n in names):
        return [*parts, "<p>None: every decision could be acted on.</p>"]
    parts.append(
        "<p class='note'>NO_CANDIDATE leaves an app where the policy found it wanting, as no "
        "cluster qualifies; a relocation to a cluster the act layer cannot address produces "
        "no move.</p>"
    )
    for n in names:
        found = doc["cannot_act"][n]
        parts.append(f"<h3>{_esc(n)}: {found['total']}</h3>")
        parts.append(_rows(["what", "decisions"], list(found["by_kind"].items())))
        parts.append(
            _rows(
                ["time", "UE", "instance", "on", "zone", "why", "candidates (examples)"],
                [
                    [
                        e["time"][11:23],
                        e["ue"],
                        e["instance"],
                        e["source"],
                        e["zone"],
                        e["why"],
                        _candidates(e["candidates"]),
                    ]
                    for e in found["examples"]
                ],
                left=7,
            )
        )
    return parts


def _moves(doc: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    parts = ["<h2 id='moves'>Moves</h2>"]
    for n in names:
        moves = doc["moves"][n]
        parts.append(f"<h3>{_esc(n)}: {len(moves)}</h3>")
        parts.append(
            _rows(
                ["time", "UE", "instance", "from → to", "reason", "trigger", "zone", "candidates"],
                [
                    [
                        m["time"][11:23],
                        m["ue"],
                        m["instance"],
                        f"{m['source']} → {m['target']}",
                        m["reason"],
                        m["trigger"],
                        m["zone"],
                        _candidates(m["candidates"]),
                    ]
                    for m in moves
                ],
                left=8,
            )
        )
    return parts


def _timelines(doc: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    parts = []
    for i, timeline in enumerate(doc["timelines"]):
        parts += [
            f"<h2 id='timeline-{i}'>Timeline of UE {_esc(timeline['ue'])}</h2>",
            "<p class='note'>Its cell (zone), and the cluster serving its busiest instance under "
            "each policy; then every change of cell and every decision that was not a plain "
            "stay.</p>",
            plots.get(f"ue_timeline_{i}", ""),
        ]
        for label, trail in timeline["trail"].items():
            rows = [
                [e["time"][11:23], f"in {e['where']} ({e['zone']})", "", "", ""]
                if "where" in e
                else [e["time"][11:23], f"{e['instance']}: {e['action']} {e['reason']}",
                      f"{e['from']} → {e['to'] or '·'}", e["trigger"], e.get("cannot_act", "")]
                for e in trail
            ]  # fmt: skip
            parts.append(f"<h3>{_esc(label)}</h3>")
            parts.append(_rows(["time", "what", "cluster", "trigger", "cannot act"], rows, left=5))
    return parts


def _comparison(doc: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    if "comparison" not in doc:
        return []
    comp = doc["comparison"]
    return [
        f"<h2>UEs whose outcome differs ({comp['differing_ues']})</h2>",
        _rows(
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
                for r in comp["ues"]
            ],
        ),
    ]


def render_html(doc: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The whole report, from the JSON document (:func:`subscriber.sre.findings.summarize`).

    Args:
        doc: the JSON document.
        plots: SVG text by key: ``ue_timeline_<n>``, ``relocations``, ``budget``.
    """
    policies: list[Mapping[str, Any]] = list(doc["policies"])
    names = [p["label"] for p in policies]
    totals = [
        ("events", "events"),
        ("events in a zone of the topology", "events_in_a_zone"),
        ("relocations", "relocations"),
        ("decisions that could not be carried out", "unactionable"),
        ("ping-pong refusals (PING_PONG_SUPPRESSED)", "ping_pong_suppressed"),
        ("ping-pong episodes refused", "ping_pong_episodes"),
        ("A→B→A flips that happened", "flips"),
        ("rechecks of deferred moves", "rechecks"),
        ("instances", "instances"),
        ("instances ever out of budget", "instances_out_of_budget"),
        ("time out of budget, total (s)", "out_of_budget_s_total"),
    ]
    reasons = sorted({r for p in policies for r in p["decisions_by_reason"]})
    title = f"Shadow report: {_esc(' vs '.join(names))}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        _inputs(doc),
        *(f"<p class='warn'>Warning: {_esc(w)}</p>" for w in doc["warnings"]),
        "<p class='note'>Relocations are assumed to take effect at once (no workflow ran); each "
        "uses capacity on its target and frees it on its source.</p>",
        "<h2>Totals</h2>",
        _rows(["", *names], [[label, *(p[key] for p in policies)] for label, key in totals]),
        "<h2>Decisions by reason</h2>",
        _rows(
            ["reason", *names],
            [[r, *(p["decisions_by_reason"].get(r, 0) for p in policies)] for r in reasons],
        ),
        *_comparison(doc, names),
        *_moves(doc, names),
        *_timelines(doc, plots),
        *_cannot_act(doc, names),
        "<h2>Relocations over time (cumulative)</h2>",
        plots.get("relocations", ""),
        "<h2>Time spent out of the latency budget, per instance</h2>",
        plots.get("budget", ""),
        "</body></html>",
    ]
    return "".join(parts)
