"""The compose files are valid Compose, and agree with the CLI, the settings and the Dockerfile.

These checks are static and fast: against the Compose Specification's JSON schema (the copy
check-jsonschema vendors, read from site-packages so nothing is committed), then against
``subscriber.cli.build_parser()`` and ``Settings``. test_deployment.py runs the files for real.
"""

from __future__ import annotations

import copy
import importlib
import importlib.resources
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from subscriber.cli import build_parser
from subscriber.decide.bundle import load_bundle
from subscriber.decide.instances import parse_instances
from subscriber.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "compose" / "docker-compose.yml"
FREE5GC = ROOT / "compose" / "free5gc.override.yml"
LOCAL = ROOT / "compose" / "local-images.yml"
DOCKERFILE = ROOT / "Dockerfile"

# Sequences that Compose appends when merging files; every other sequence is replaced
# (compose-spec merge rules). Our overlay only merges mappings, and this keeps it honest.
APPENDED_SEQUENCES = {"ports", "expose", "cap_add", "cap_drop", "external_links", "secrets"}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema vendored by check-jsonschema (a dev dependency)."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text("utf-8"))
    return schema


def load(path: Path) -> dict[str, Any]:
    """A compose file as Compose reads it: YAML with merge keys resolved."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def merge(base: Any, override: Any, key: str = "") -> Any:
    """Merge two compose documents the way ``docker compose -f a -f b`` does, for what we use."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            merged[k] = merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return merged
    if isinstance(base, list) and isinstance(override, list) and key in APPENDED_SEQUENCES:
        return base + override
    return copy.deepcopy(override)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Resolve ``${NAME}``, ``${NAME:-default}`` and ``$$`` (a literal ``$``); any other ``$``
    form is an error here."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        found = env.get(match["name"]) or match["default"]
        assert found is not None, f"${{{match['name']}}} has no default"
        return found

    parts = [INTERPOLATION.sub(one, part) for part in value.split("$$")]
    assert not any("$" in part for part in parts), f"unsupported interpolation in {value!r}"
    return "$".join(parts)


def stack(*files: Path) -> dict[str, Any]:
    """The merged, interpolated project, with services whose profiles are off removed."""
    merged: dict[str, Any] = {}
    for path in files:
        merged = merge(merged, load(path))
    project: dict[str, Any] = interpolate(merged, {})
    project["services"] = {
        name: svc for name, svc in project["services"].items() if not svc.get("profiles")
    }
    return project


def subscriber_services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the project's own image."""
    return {
        name: svc
        for name, svc in project["services"].items()
        if svc.get("build", {}).get("dockerfile") == "Dockerfile"
    }


def settings_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's SUBSCRIBER_* variables as strings (Compose passes every value as text)."""
    env = service.get("environment", {})
    assert isinstance(env, dict), "write environment as a mapping"
    return {k: str(v) for k, v in env.items() if k.startswith(ENV_PREFIX)}


def setting_exists(variable: str, model: type[BaseModel] = Settings) -> bool:
    """Whether ``SUBSCRIBER_A__B`` names a field ``a.b`` of the settings, at any depth."""
    parts = variable.removeprefix(ENV_PREFIX).lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        last = i == len(parts) - 1
        annotation = field.annotation
        is_group = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if last:
            return not is_group
        if not is_group:
            return False
        model = annotation  # type: ignore[assignment]
    return False


PROJECTS = {"base": (BASE,), "free5gc": (BASE, FREE5GC), "local": (BASE, LOCAL)}


@pytest.fixture(params=sorted(PROJECTS))
def project(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The base stack, and the base stack with the free5GC overlay."""
    return stack(*PROJECTS[request.param])


def _healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list)
    assert test[0] == "CMD", "subscriber health checks exec the console script, no shell"
    return [str(t) for t in test[1:]]


@pytest.mark.parametrize("path", [BASE, FREE5GC, LOCAL], ids=["base", "free5gc", "local"])
def test_each_file_matches_the_compose_specification(path: Path) -> None:
    """Each file on its own validates against the Compose Specification schema."""
    jsonschema.validate(load(path), compose_schema())


@pytest.mark.parametrize("overlay", [FREE5GC, LOCAL], ids=["free5gc", "local"])
def test_merged_project_matches_the_compose_specification(overlay: Path) -> None:
    """Base plus each overlay, merged and interpolated, still validates."""
    merged = merge(load(BASE), load(overlay))
    jsonschema.validate(interpolate(merged, {}), compose_schema())


def test_every_service_has_a_health_check_and_a_restart_policy(project: dict[str, Any]) -> None:
    """Nothing runs without a health check and a restart policy."""
    for name, svc in project["services"].items():
        assert svc.get("healthcheck", {}).get("test"), name
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), name


def test_dependencies_are_awaited_healthy(project: dict[str, Any]) -> None:
    """Every depends_on waits for service_healthy of a service that has a health check."""
    for name, svc in project["services"].items():
        for dep, how in svc.get("depends_on", {}).items():
            assert how["condition"] == "service_healthy", (name, dep)
            if dep in project["services"]:
                assert project["services"][dep].get("healthcheck"), dep
            else:
                assert how.get("required") is False, f"{name} needs {dep}, which is not started"


def test_subscriber_variables_name_real_settings(project: dict[str, Any]) -> None:
    """Every SUBSCRIBER_* variable maps to a Settings field (pydantic-settings ignores typos)."""
    for name, svc in subscriber_services(project).items():
        unknown = [v for v in settings_env(svc) if not setting_exists(v)]
        assert not unknown, f"{name}: no such setting: {unknown}"


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    import os

    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_subscriber_variables_build_valid_settings(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each subscriber service's environment validates as Settings (types, choices)."""
    for svc in subscriber_services(project).values():
        _settings_from(settings_env(svc), monkeypatch)


def test_receiver_publishes_its_configured_port(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver listens on all interfaces at the port it publishes and its check dials."""
    receiver = project["services"]["receiver"]
    settings = _settings_from(settings_env(receiver), monkeypatch)
    assert settings.receiver.host == "0.0.0.0"
    targets = {int(str(p).split(":")[-1].split("/")[0]) for p in receiver["ports"]}
    assert targets == {settings.receiver.port}
    assert _healthcheck_argv(receiver)[:4] == ["subscriber", "check", "--what", "receiver"]


def test_subscriber_health_checks_parse(project: dict[str, Any]) -> None:
    """The health-check commands are valid ``subscriber check`` invocations."""
    for name, svc in subscriber_services(project).items():
        argv = _healthcheck_argv(svc)
        if argv[0] != "subscriber":
            continue
        args = build_parser().parse_args(argv[1:])
        assert args.target == "subscriber.health:check", name


def test_free5gc_overlay_joins_privnet_and_uses_its_nrf() -> None:
    """The overlay joins free5gc-compose's network and points the daemon at its NRF, OAuth on."""
    project = stack(BASE, FREE5GC)
    assert "fakecore" not in project["services"]
    network = project["networks"]["free5gc"]
    assert network["external"] is True
    assert network["name"] == "free5gc-compose_privnet"
    receiver = project["services"]["receiver"]
    assert "free5gc" in receiver["networks"]
    env = settings_env(receiver)
    assert env["SUBSCRIBER_CORE__NRF_URL"] == "http://nrf.free5gc.org:8000"
    assert env["SUBSCRIBER_CORE__OAUTH"] == "true"
    host = env["SUBSCRIBER_RECEIVER__PUBLIC_URL"].split("//")[1].split(":")[0]
    assert host in receiver["networks"]["free5gc"]["aliases"]


def _dockerfile_instructions() -> Iterator[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            yield word.upper(), rest.strip()


def test_dockerfile_installs_the_package_and_runs_it_unprivileged() -> None:
    """python:3.11-slim unless told otherwise, pip install, a non-root USER, the console script."""
    instructions = list(_dockerfile_instructions())
    assert instructions[:2] == [("ARG", "BASE_IMAGE=python:3.11-slim"), ("FROM", "${BASE_IMAGE}")]
    assert any(w == "RUN" and "pip install --no-deps ." in rest for w, rest in instructions)
    users = [rest for w, rest in instructions if w == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1] not in ("root", "0", "0:0")
    entrypoints = [json.loads(rest) for w, rest in instructions if w == "ENTRYPOINT"]
    assert entrypoints[-1] == ["subscriber"]


def test_policy_files_the_services_name_are_baked_into_the_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The topology and policy paths in the environment are where the Dockerfile puts them."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    for name, svc in subscriber_services(stack(BASE)).items():
        settings = _settings_from(settings_env(svc), monkeypatch)
        for path in (settings.policy.topology_file, settings.policy.policy_file):
            assert path is not None, name
            assert f" {path}" in text, f"{name}: the image has no {path}"


def test_clients_point_at_the_services_as_they_are_configured(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka, Temporal, PowerDNS and fake-core addresses in the settings match those services."""
    services = project["services"]
    kafka_env = services["kafka"]["environment"]
    temporal_cmd = [str(c) for c in services["temporal"]["command"]]
    for name, svc in subscriber_services(project).items():
        settings = _settings_from(settings_env(svc), monkeypatch)
        advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        assert f"PLAINTEXT://{settings.kafka.bootstrap_servers}" in advertised, name
        host, port = settings.temporal.address.rsplit(":", 1)
        assert host == "temporal", name
        assert temporal_cmd[temporal_cmd.index("--port") + 1] == port, name
        assert temporal_cmd[temporal_cmd.index("--namespace") + 1] == settings.temporal.namespace
        assert settings.powerdns.api_url == "http://powerdns:8081", name
        assert settings.powerdns.dns_host == "powerdns", name
        assert settings.powerdns.dns_port == 53, name
        if "fakecore" in services:
            fake = [str(c) for c in services["fakecore"]["command"]]
            where = f"{fake[fake.index('--host') + 1]}:{fake[fake.index('--port') + 1]}"
            assert settings.core.nrf_url == f"http://{where}", name


def test_bind_mounted_files_exist(project: dict[str, Any]) -> None:
    """Every ./relative bind mount names a file (or a folder of files) in the repository."""
    for name, svc in project["services"].items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                path = BASE.parent / source
                assert path.is_file() or any(path.rglob("*.*")), f"{name}: {source}"


def test_instances_file_fits_the_baked_in_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer's instances file names apps and clusters of the example topology."""
    consumer = stack(BASE)["services"]["consumer"]
    settings = _settings_from(settings_env(consumer), monkeypatch)
    assert settings.act.instances_file == Path("/etc/subscriber/instances.yaml")
    data = ROOT / "subscriber" / "data"
    bundle = load_bundle((data / "topology.example.yaml").read_bytes())
    instances = parse_instances(
        (BASE.parent / "instances.yaml").read_bytes(), source="instances", topology=bundle.topology
    )
    assert len(instances) == 3


SERVICE_COMMANDS = {
    "fakecore": "fakecore",
    "receiver": "serve",
    "consumer": "consume",
    "worker": "worker",
}


@pytest.mark.parametrize(("service", "command"), sorted(SERVICE_COMMANDS.items()))
def test_service_command_is_a_real_subcommand(service: str, command: str) -> None:
    """Each service of the project's image runs a subcommand that parses and has a handler."""
    argv = [str(c) for c in stack(BASE)["services"][service]["command"]]
    assert argv[0] == command
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`subscriber {' '.join(argv)}` is not valid CLI input")
    module, _, function = args.target.partition(":")
    assert callable(getattr(importlib.import_module(module), function))


def _secret_targets(service: dict[str, Any]) -> dict[str, str]:
    return {s["target"]: s["source"] for s in service.get("secrets", []) if isinstance(s, dict)}


def test_keys_reach_the_processes_as_secret_files_never_as_variables(
    project: dict[str, Any],
) -> None:
    """The pseudonym and PowerDNS keys are compose secrets, named like the settings they set
    (Settings reads /run/secrets), from the environment when compose starts; no key is a
    variable, which `docker inspect` would show."""
    wanted = {"subscriber_log__pseudonym_key", "subscriber_powerdns__api_key"}
    for name, svc in subscriber_services(project).items():
        targets = _secret_targets(svc)
        assert wanted <= set(targets), name
        for target in targets:
            assert setting_exists(target.upper()), f"{name}: {target} sets no setting"
        keys = [v for v in settings_env(svc) if "KEY" in v or "TOKEN" in v]
        assert not keys, f"{name}: keys in the environment: {keys}"
    for secret in project["secrets"].values():
        assert set(secret) == {"environment"}, "keys come from the environment (or a file)"
    pdns = project["services"]["powerdns"]
    source = _secret_targets(project["services"]["receiver"])["subscriber_powerdns__api_key"]
    assert source in pdns["secrets"]
    assert f'PDNS_AUTH_API_KEY="$(cat /run/secrets/{source})"' in pdns["entrypoint"][-1]
    assert "environment" not in pdns


def test_every_service_has_limits_and_state_in_named_volumes(project: dict[str, Any]) -> None:
    """Memory and CPU limits everywhere; Kafka, Temporal and the receiver's spool in volumes."""
    for name, svc in project["services"].items():
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= set(limits), name
    where = {"kafka": "/var/lib/kafka/data", "temporal": "/data", "receiver": "/var/lib/subscriber"}
    for name, path in where.items():
        mounts = [str(v).split(":") for v in project["services"][name]["volumes"]]
        assert any(m[1] == path and m[0] in project["volumes"] for m in mounts), name


def test_local_images_overlay_builds_every_image_from_one_base() -> None:
    """With compose/local-images.yml nothing is pulled: every service builds its image from
    the BASE_IMAGE argument, under a name no registry serves."""
    project = stack(BASE, LOCAL)
    public = ("python:", "apache/", "temporalio/", "powerdns/")
    for name, svc in project["services"].items():
        assert not svc["image"].startswith(public), name
        assert svc["build"]["args"]["BASE_IMAGE"] == "debian:bookworm-slim", name
        dockerfile = ROOT / svc["build"].get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), name
        text = dockerfile.read_text(encoding="utf-8")
        assert "ARG BASE_IMAGE=" in text
        assert "FROM ${BASE_IMAGE}" in text, name
