"""The compose deployment, run for real: images built here, every service up and healthy, the
relocation scenario inside the containers, a consumer and a broker killed with nothing lost, and
nothing left behind.

Images are built from a Debian base made on this machine (compose/local-images.yml; no registry
is reachable here), the published compose file otherwise unchanged but for the fake AMF's mode
(tests/compose/deployment.override.yml). See docs/deployment.md, "How it is tested".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.compose import engine
from tests.support.dashboard import dashboard, expressions, metric_names

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
FILES = (
    ROOT / "compose" / "docker-compose.yml",
    ROOT / "compose" / "local-images.yml",
    Path(__file__).parent / "deployment.override.yml",
)
PROBE = (Path(__file__).parent / "probe.py").read_text()
SERVICES = (
    *("kafka", "temporal", "powerdns", "fakecore", "receiver", "consumer", "worker"),
    "prometheus",
)
UES = ["imsi-208930000000002", "imsi-208930000000003"]
PROJECT_PREFIX = "subscriber-test-"
ROUNDS = 40


@dataclass
class Deployment:
    """One compose project of this session: run compose, exec the probe, inspect containers."""

    compose: Path
    project: str
    env: dict[str, str]
    figures: dict[str, object] = field(default_factory=dict)

    def argv(self, *args: str) -> list[str]:
        """``docker compose ARGS`` for this project."""
        files = [arg for path in FILES for arg in ("-f", str(path))]
        return [str(self.compose), "-p", self.project, *files, *args]

    def run(self, *args: str, timeout_s: float = 600, stdin: str | None = None) -> str:
        """Run ``docker compose ARGS``; its stdout (EngineError when it fails)."""
        return engine.run(self.argv(*args), timeout_s=timeout_s, env=self.env, input=stdin)

    def probe(self, service: str, *args: str, timeout_s: float = 300) -> list[dict[str, object]]:
        """Run tests/compose/probe.py in ``service``; its JSON lines."""
        out = self.run(
            "exec", "-T", service, "python", "-", *args, stdin=PROBE, timeout_s=timeout_s
        )
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def container(self, service: str) -> str:
        """The id of the service's container."""
        return self.run("ps", "-q", service).strip()

    def state(self, service: str) -> dict[str, object]:
        """``docker inspect`` of the service's container: State plus RestartCount."""
        doc = json.loads(engine.run([engine.DOCKER, "inspect", self.container(service)]))[0]
        return {**doc["State"], "RestartCount": doc["RestartCount"]}

    def crash(self, service: str) -> int:
        """SIGKILL the container's first process from the host, as the OOM killer would (a
        ``docker kill`` would count as a deliberate stop, which restart policies respect)."""
        before = self.state(service)
        os.kill(int(str(before["Pid"])), signal.SIGKILL)
        return int(str(before["RestartCount"]))

    def wait_healthy_again(self, service: str, restarts_before: int, timeout_s: float) -> float:
        """Seconds until the service was restarted by its policy and reports healthy."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            state = self.state(service)
            health = state.get("Health") or {}
            restarted = int(str(state["RestartCount"])) > restarts_before
            if restarted and isinstance(health, dict) and health.get("Status") == "healthy":
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"{service} not restarted and healthy in {timeout_s} s: {state}")


def _leftovers(project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    found = []
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        listed = engine.run([engine.DOCKER, *kind, "-q", "--filter", label]).split()
        found += [f"{kind[0]} {item}" for item in listed]
    return found


def _image_sizes() -> dict[str, str]:
    listed = engine.run([engine.DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"])
    wanted = ("subscriber:local", "subscriber-local/", engine.BASE_REPO)
    sizes = dict(line.split(" ", 1) for line in listed.splitlines())
    return {name: size for name, size in sizes.items() if name.startswith(wanted)}


def _remove_stale_projects(compose: Path, env: dict[str, str]) -> None:
    """Projects an interrupted session left (under the lock, no other session runs one)."""
    listed = engine.run(
        [engine.DOCKER, "ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}']
    )
    for project in sorted(set(listed.split())):
        if project.startswith(PROJECT_PREFIX):
            Deployment(compose, project, env).run("down", "-v", "--remove-orphans", "-t", "5")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The whole system up and healthy; torn down after the module, leaving nothing behind."""
    with engine.machine_lock(), engine.dockerd():
        prepared = time.monotonic()
        compose, base = engine.prepare()
        env = {
            **os.environ,
            "SUBSCRIBER_BASE_IMAGE": base,
            "SUBSCRIBER_PSEUDONYM_KEY": uuid.uuid4().hex,
            "PDNS_API_KEY": uuid.uuid4().hex,
            # No buildx plugin here: compose uses the daemon's own BuildKit (docs/deployment.md).
            "COMPOSE_BAKE": "false",
        }
        _remove_stale_projects(compose, env)
        d = Deployment(compose, f"{PROJECT_PREFIX}{os.getpid()}", env)
        d.figures["prepare_s"] = round(time.monotonic() - prepared, 1)
        built = time.monotonic()
        # One subscriber service builds the image the other three share (compose would build and
        # tag it four times); images a rebuild replaced are dropped, the build cache stays.
        d.run("build", "kafka", "temporal", "powerdns", "prometheus", "receiver", timeout_s=1500)
        d.figures["build_s"] = round(time.monotonic() - built, 1)
        engine.run(
            [engine.DOCKER, "image", "prune", "-f", "--filter", f"label={engine.IMAGE_LABEL}"]
        )
        try:
            up = time.monotonic()
            d.run("up", "-d", "--wait", "--wait-timeout", "300", timeout_s=400)
            d.figures["up_to_healthy_s"] = round(time.monotonic() - up, 1)
            d.figures["image_sizes"] = _image_sizes()
            yield d
        finally:
            print(f"\ndeployment figures: {d.figures}")
            logs = tmp_path_factory.mktemp("compose") / "logs.txt"
            with contextlib.suppress(engine.EngineError):  # the logs are best effort
                logs.write_text(d.run("logs", "--no-color", timeout_s=60))
            d.run("down", "-v", "--remove-orphans", "--timeout", "30", timeout_s=300)
            left = _leftovers(d.project)
            assert not left, f"left behind: {left}"


def test_every_service_is_healthy_and_runs_unprivileged(deployment: Deployment) -> None:
    """Each service reports healthy; every process but Temporal's runs as a non-root user."""
    for service in SERVICES:
        state = deployment.state(service)
        assert state["Status"] == "running", service
        assert (state.get("Health") or {}).get("Status") == "healthy", service  # type: ignore[union-attr]
    for service in (
        "kafka",
        "powerdns",
        "fakecore",
        "receiver",
        "consumer",
        "worker",
        "prometheus",
    ):
        uid = deployment.run("exec", "-T", service, "id", "-u").strip()
        assert uid != "0", f"{service} runs as root"


def test_keys_are_in_no_container_environment(deployment: Deployment) -> None:
    """The pseudonym and PowerDNS keys reach the containers only as secret files: `docker
    inspect` of any container shows neither."""
    ids = deployment.run("ps", "-q").split()
    inspected = engine.run([engine.DOCKER, "inspect", *ids])
    for key in ("SUBSCRIBER_PSEUDONYM_KEY", "PDNS_API_KEY"):
        assert deployment.env[key] not in inspected, key
    read = deployment.run(
        "exec", "-T", "receiver", "python", "-c",
        "from subscriber.settings import Settings; print(len(Settings().log.pseudonym_key))",
    )  # fmt: skip
    assert read.strip() == str(len(deployment.env["SUBSCRIBER_PSEUDONYM_KEY"]))


def test_a_missing_key_stops_the_service_from_starting(deployment: Deployment) -> None:
    """Without SUBSCRIBER_PSEUDONYM_KEY compose refuses to start a subscriber service (it
    would otherwise log with an empty pseudonym key), naming the variable."""
    env = {k: v for k, v in deployment.env.items() if k != "SUBSCRIBER_PSEUDONYM_KEY"}
    keyless = Deployment(deployment.compose, f"{deployment.project}-keyless", env)
    try:
        with pytest.raises(engine.EngineError, match="SUBSCRIBER_PSEUDONYM_KEY"):
            keyless.run("up", "-d", "--no-deps", "fakecore", timeout_s=120)
    finally:
        keyless.run("down", "-v", "--remove-orphans", "-t", "5")
    assert not _leftovers(keyless.project)


def test_each_process_serves_metrics_and_readiness(deployment: Deployment) -> None:
    """The receiver's /readyz and /metrics on the published port; the consumer's and the
    worker's Prometheus endpoints from inside their containers."""
    with httpx.Client(timeout=5) as http:
        ready = http.get("http://127.0.0.1:8800/readyz")
        assert ready.status_code == 200, ready.text
        metrics = http.get("http://127.0.0.1:8800/metrics")
        assert "subscriber_callbacks_received_total" in metrics.text
    (consumer,) = deployment.probe("consumer", "metrics", "http://127.0.0.1:9101/metrics")
    assert consumer["status"] == 200
    assert "subscriber_consumed_total" in consumer["names"]  # type: ignore[operator]
    (worker,) = deployment.probe("worker", "metrics", "http://127.0.0.1:9102/metrics")
    assert worker["status"] == 200
    assert any(str(n).startswith("temporal_") for n in worker["names"])  # type: ignore[union-attr]


def test_relocation_scenario_runs_inside_the_containers(deployment: Deployment) -> None:
    """`subscriber demo --deployed` in the worker: the UE roams, the app moves with the user's
    context, DNS answers the new instance and the client follows without a failed request."""
    started = time.monotonic()
    out = deployment.run(
        "exec", "-T", "worker", "subscriber", "demo", "--deployed", "--timeout", "90"
    )
    deployment.figures["relocation_demo_s"] = round(time.monotonic() - started, 1)
    assert "RELOCATE RELOCATE_BEST_CANDIDATE" in out, out
    assert "client: ue1.video-analytics.edge.test. -> edge-2, count" in out, out
    assert "old instance on edge-1 gone" in out, out
    assert "the user's context: transferred" in out, out
    assert "proof: no request failed: yes" in out, out
    assert "imsi-" not in out, "the demo shows pseudonyms, never a SUPI"


def test_prometheus_scrapes_every_process_and_answers_every_dashboard_query(
    deployment: Deployment,
) -> None:
    """After a relocation, every scrape target is up, every dashboard expression is valid
    PromQL on the real Prometheus, and every metric it names has series."""
    exprs = expressions(dashboard())
    wanted = set().union(*(metric_names(e) for e in exprs))
    deadline = time.monotonic() + 120
    with httpx.Client(base_url="http://127.0.0.1:9090/api/v1", timeout=10) as prom:
        while True:
            targets = prom.get("/targets").json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            names = set(prom.get("/label/__name__/values").json()["data"])
            if (set(health.values()) == {"up"} and wanted <= names) or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert health == dict.fromkeys(
            ("receiver", "consumer", "worker", "temporal", "prometheus"), "up"
        ), health
        assert wanted <= names, sorted(wanted - names)
        for expr in exprs:
            query = expr.replace("$__rate_interval", "1m")
            answer = prom.get("/query", params={"query": query})
            assert answer.status_code == 200, (expr, answer.text)
            assert answer.json()["status"] == "success", expr


def _moves_with(deployment: Deployment, service: str, first: int, during: object) -> None:
    """Move the UEs ROUNDS times; call ``during`` once half the moves are acknowledged."""
    argv = deployment.argv("exec", "-T", service, "python", "-", "move", str(first), str(ROUNDS))
    with subprocess.Popen(
        [*argv, *UES],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=deployment.env,
    ) as mover:
        assert mover.stdin is not None
        assert mover.stdout is not None
        mover.stdin.write(PROBE)
        mover.stdin.close()
        for line in mover.stdout:
            if json.loads(line).get("round") == ROUNDS // 2:
                during()  # type: ignore[operator]
        assert mover.wait(timeout=300) == 0, "the fake core refused a move"


def _crash_under_load(deployment: Deployment, service: str, first: int) -> None:
    """Move the UEs; halfway, crash ``service``; then nothing may be missing."""
    restarts: list[int] = []
    _moves_with(deployment, "worker", first, lambda: restarts.append(deployment.crash(service)))
    back_s = deployment.wait_healthy_again(service, restarts[0], timeout_s=240)
    (found,) = deployment.probe(
        "worker", "verify", str(first), str(ROUNDS), "180", *UES, timeout_s=300
    )
    deployment.figures[f"{service}_crash"] = {**found, "healthy_again_s": round(back_s, 1)}
    assert found["notification_failures"] == 0, found
    assert found["missing_events"] == 0, found
    assert found["missing_decisions"] == 0, found


def test_consumer_crash_loses_no_event_and_no_decision(deployment: Deployment) -> None:
    """The consumer's process is SIGKILLed mid-stream: its restart policy brings it back, and
    every acknowledged callback is an event with a decision."""
    _crash_under_load(deployment, "consumer", 0x100)


def test_kafka_crash_loses_no_acknowledged_event_and_no_decision(deployment: Deployment) -> None:
    """The broker's process is SIGKILLed mid-stream: the receiver spools and keeps answering 204,
    the broker comes back with its volume, the spool drains, and every acknowledged callback is
    an event with a decision."""
    _crash_under_load(deployment, "kafka", 0x200)
    for service in ("receiver", "consumer", "worker"):
        assert deployment.state(service)["Status"] == "running", service
