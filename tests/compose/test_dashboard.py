"""The Grafana dashboard cannot drift: it is what its code builds, Grafana's own schema reads it
back whole, its layout is sound, and every expression names a metric the code exports.

The deployment test (test_deployment.py) also evaluates each expression on the real Prometheus
of the compose project, after a relocation, and checks every target is up.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from subscriber.act import consumer
from subscriber.act.workflows import OUTCOMES_METRIC, STEPS_METRIC
from subscriber.ingress.metrics import ReceiverMetrics
from tests.support.dashboard import JSON, dashboard, expressions, metric_names

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "compose" / "grafana"
PROMETHEUS = ROOT / "compose" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "compose" / "docker-compose.yml"
# Series Prometheus makes itself for every target, not exported by any code of ours.
SYNTHETIC = {"up"}


def builder() -> ModuleType:
    """compose/grafana/dashboard.py, imported from its path (it is not a package)."""
    spec = importlib.util.spec_from_file_location("dashboard_builder", GRAFANA / "dashboard.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _family_samples(name: str, kind: str) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }[kind]
    return {name + s for s in suffixes}


def exported() -> set[str]:
    """Every series name our processes export: receiver, consumer, worker."""
    names: set[str] = set()
    for family in ReceiverMetrics().registry.collect():
        names |= _family_samples(family.name, family.type)
    for metric in (consumer.DECISIONS, consumer.CONSUMED, consumer.LAG):
        for family in metric.describe():
            names |= _family_samples(family.name, family.type)
    # The worker's Temporal runtime: counters get _total (counters_total_suffix), histograms
    # the usual series (subscriber/act/worker.py).
    names.add(OUTCOMES_METRIC + "_total")
    names |= _family_samples(STEPS_METRIC, "histogram") - {STEPS_METRIC + "_created"}
    return names


def test_the_committed_json_is_what_the_code_builds() -> None:
    """Run ``python compose/grafana/dashboard.py`` after changing it; nobody edits the JSON."""
    assert JSON.read_text(encoding="utf-8") == builder().render()


def test_grafanas_schema_reads_the_dashboard_back_whole() -> None:
    """The dashboard model of grafana-foundation-sdk decodes the JSON and encodes it back
    unchanged: no field it does not know, none of the wrong type."""
    doc = dashboard()
    again = json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))
    assert again == doc


def test_panels_have_unique_ids_fit_the_grid_and_use_the_provisioned_datasource() -> None:
    """Unique panel ids, positions inside the 24-column grid without overlap, one refId per
    query, and the datasource uid that provisioning defines."""
    doc = dashboard()
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"][0]["uid"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["title"]
        assert panel["description"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == provisioned
        assert panel["datasource"]["uid"] == provisioned


def test_every_expression_names_only_metrics_the_code_exports() -> None:
    """Each expression selects at least one series, and each is one our code exports."""
    known = exported() | SYNTHETIC
    for expr in expressions(dashboard()):
        names = metric_names(expr)
        assert names, expr
        assert names <= known, f"{expr}: unknown {sorted(names - known)}"
        assert expr.count("(") == expr.count(")"), expr


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (kind) (rate(a_total{job="x", le=~"y"}[$__rate_interval]))', {"a_total"}),
        ("histogram_quantile(0.99, sum by (le, step) (rate(b_bucket[5m])))", {"b_bucket"}),
        ("c / ignoring(x) d offset 5m", {"c", "d"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    """The reader keeps metric names and drops functions, labels, groupings and ranges."""
    assert metric_names(expr) == names


def test_a_misspelt_metric_would_be_caught() -> None:
    """The check is not vacuous: a name the code does not export is refused."""
    assert not metric_names("rate(subscriber_callbacks_recieved_total[5m])") <= exported()


def test_prometheus_scrapes_every_subscriber_process_where_compose_serves_metrics() -> None:
    """One job per process, at the port compose configures, named as the dashboard's up query."""
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"][0]
        for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    }
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    env = {name: svc.get("environment", {}) for name, svc in services.items()}
    assert jobs["receiver"] == "receiver:8800"
    assert jobs["consumer"] == f"consumer:{env['consumer']['SUBSCRIBER_ACT__METRICS_PORT']}"
    assert jobs["worker"] == f"worker:{env['worker']['SUBSCRIBER_RELOCATION__METRICS_PORT']}"
    temporal = services["temporal"]["command"]
    assert jobs["temporal"] == f"temporal:{temporal[temporal.index('--metrics-port') + 1]}"
    up = next(e for e in expressions(dashboard()) if e.startswith("sum(up"))
    assert all(job in up for job in ("receiver", "consumer", "worker"))
