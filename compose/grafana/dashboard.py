"""The Grafana dashboard of compose/, as code: ``python compose/grafana/dashboard.py`` writes
``dashboards/subscriber.json`` beside it, which Grafana loads at start (provisioning/).

Built with Grafana Labs' grafana-foundation-sdk (typed builders for the dashboard schema of the
Grafana version compose runs) rather than written by hand, so a panel cannot carry a field that
Grafana does not know. tests/compose/test_dashboard.py checks the committed JSON is what this
file builds, that it reads back as a dashboard, and that every expression names a metric the
code exports; the deployment test evaluates each expression on the real Prometheus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUTPUT = Path(__file__).parent / "dashboards" / "subscriber.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
"""The datasource provisioning/datasources/prometheus.yaml defines."""
RATE = "$__rate_interval"

Query = tuple[str, str]
"""(PromQL, legend)."""


def _targets(panel: Any, queries: list[Query]) -> Any:
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(
            prometheus.Dataquery()
            .expr(expr)
            .legend_format(legend)
            .ref_id("ABCDEFGH"[i])
            .datasource(DATASOURCE)
        )
    return panel


def graph(title: str, unit: str, queries: list[Query], description: str) -> timeseries.Panel:
    """A time series panel."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .fill_opacity(10)
        .height(8)
        .span(8)
    )
    return _targets(panel, queries)


def figure(title: str, unit: str, queries: list[Query], description: str) -> stat.Panel:
    """A single-number panel."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(4)
        .span(6)
    )
    return _targets(panel, queries)


def _rate_by(label: str, metric: str) -> Query:
    return f"sum by ({label}) (rate({metric}[{RATE}]))", f"{{{{{label}}}}}"


def _quantiles(metric: str, by: str) -> list[Query]:
    group = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"{legend}p{int(q * 100)}",
        )
        for q in (0.5, 0.99)
    ]


def build() -> dict[str, Any]:
    """The dashboard, as Grafana's JSON model."""
    board = (
        dashboard.Dashboard("subscriber")
        .uid("subscriber")
        .description("Ingest, decisions and relocations of the subscriber daemon (compose/).")
        .tags(["subscriber"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("utc")
        .editable()
        .with_row(dashboard.Row("Processes"))
        .with_panel(
            figure(
                "Scrape targets up",
                "none",
                [('sum(up{job=~"receiver|consumer|worker"})', "up")],
                "Subscriber processes Prometheus reaches (3 when all are up).",
            )
        )
        .with_panel(
            figure(
                "Spool bytes",
                "bytes",
                [("sum(subscriber_spool_bytes)", "bytes")],
                "Events the receiver could not hand to Kafka yet, on its local disk.",
            )
        )
        .with_panel(
            figure(
                "Consumer lag",
                "short",
                [("sum(subscriber_consumer_lag)", "records")],
                "Event records the consumer has yet to read, all partitions.",
            )
        )
        .with_panel(
            figure(
                "Moves completed (1 h)",
                "short",
                [('sum(increase(subscriber_relocations_total{status="completed"}[1h]))', "moves")],
                "Relocations the workflows finished in the last hour.",
            )
        )
        .with_row(dashboard.Row("Ingest (receiver)"))
        .with_panel(
            graph(
                "Callbacks received",
                "reqps",
                [
                    _rate_by("kind", "subscriber_callbacks_received_total"),
                    (f"sum(rate(subscriber_events_published_total[{RATE}]))", "events published"),
                ],
                "Callbacks per second by kind (amf, smf, nef), and the events they became.",
            )
        )
        .with_panel(
            graph(
                "Publish latency",
                "s",
                _quantiles("subscriber_publish_latency_seconds", ""),
                "From publish start until every event of a callback is acked by Kafka or spooled.",
            )
        )
        .with_panel(
            graph(
                "Rejected callbacks by reason",
                "reqps",
                [_rate_by("reason", "subscriber_callbacks_rejected_total")],
                "Callbacks answered with an error (docs/receiver.md lists the reasons).",
            )
        )
        .with_panel(
            graph(
                "Spool",
                "bytes",
                [
                    ("sum(subscriber_spool_bytes)", "bytes"),
                    ("sum(subscriber_spool_depth)", "records"),
                ],
                "What waits on the receiver's disk for Kafka; it drains when Kafka is back.",
            ).override_by_name("records", [{"id": "unit", "value": "short"}])
        )
        .with_row(dashboard.Row("Decide (consumer)"))
        .with_panel(
            graph(
                "Consumer lag by partition",
                "short",
                [("sum by (partition) (subscriber_consumer_lag)", "partition {{partition}}")],
                "Records behind the end of each events partition.",
            )
        )
        .with_panel(
            graph(
                "Decisions by action",
                "ops",
                [_rate_by("action", "subscriber_decisions_total")],
                "stay, relocate, defer per second.",
            )
        )
        .with_panel(
            graph(
                "Decisions by reason",
                "ops",
                [_rate_by("reason", "subscriber_decisions_total")],
                "Reason codes (docs/policy.md).",
            )
        )
        .with_panel(
            graph(
                "Records consumed by outcome",
                "ops",
                [_rate_by("outcome", "subscriber_consumed_total")],
                "Event records handled, by outcome.",
            )
        )
        .with_row(dashboard.Row("Act (worker)"))
        .with_panel(
            graph(
                "Moves by outcome",
                "short",
                [
                    (
                        f"sum by (status) (increase(subscriber_relocations_total[{RATE}]))",
                        "{{status}}",
                    )
                ],
                "Relocation requests by how they ended (docs/relocation.md).",
            )
        )
        .with_panel(
            graph(
                "Failed moves by step and compensation",
                "short",
                [
                    (
                        "sum by (failed_step, compensation) (increase("
                        f'subscriber_relocations_total{{status=~"failed|cancelled"}}[{RATE}]))',
                        "{{failed_step}} ({{compensation}})",
                    )
                ],
                "Where failed moves stopped, and whether undoing them worked.",
            )
        )
        .with_panel(
            graph(
                "Step durations",
                "s",
                _quantiles("subscriber_relocation_step_seconds", "step"),
                "Each step of a move in workflow time: deploy, readiness, dns, dns_confirm, "
                "remove_source.",
            )
        )
    )
    built: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(built["panels"], 1):
        panel["id"] = number  # Grafana keys panel state (links, edits) by a unique id
    return built


def render() -> str:
    """The JSON file's text."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}\n")
