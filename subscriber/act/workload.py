"""An application instance's workload on a Kubernetes cluster: the user's template made into the
Deployment and Service we apply, and what their status says about readiness.

A template is YAML holding exactly one ``apps/v1`` Deployment and one ``v1`` Service. The
placeholders ``${app}``, ``${instance}``, ``${name}``, ``${namespace}`` and ``${cluster}`` are
replaced inside string values *after* parsing, so no value can change the document's structure;
anything else (``$(VAR)``, which Kubernetes expands in container arguments) is left alone.

Whatever the template says, the rendered objects get: the name :func:`workload_name`, the
cluster's namespace, the ownership labels (:func:`ownership`) on both objects and on the pod
template, the Deployment selector and the Service selector that pick exactly this instance's pods,
and the Service type the cluster's endpoint mode needs. Those labels are how the orchestrator
recognises what it created: it never changes or deletes an object without them.

Pure: no I/O. Errors are permanent :class:`OrchestratorError`: retrying a bad template cannot help.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import yaml

from subscriber.act.orchestrator import OrchestratorError
from subscriber.relocation import Readiness

LABEL_APP = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "subscriber"
"""Value of ``app.kubernetes.io/managed-by``, and the server-side apply field manager."""

PLACEHOLDERS = frozenset({"app", "instance", "name", "namespace", "cluster"})
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")

ServiceType = Literal["NodePort", "LoadBalancer"]


class Workload(NamedTuple):
    """The rendered objects, as Kubernetes JSON."""

    deployment: dict[str, Any]
    service: dict[str, Any]


def workload_name(app: str, instance: str) -> str:
    """The Deployment's and the Service's name: ``<app>-<instance>`` when that is a valid Service
    name (a DNS-1035 label), else a 63-character form with a digest of both, so that two
    instances never share a name and the result is always valid.
    """
    plain = f"{app}-{instance}"
    if _SERVICE_NAME.match(plain):
        return plain
    digest = hashlib.sha256(f"{app}\0{instance}".encode()).hexdigest()[:10]
    return f"w-{plain[:50].rstrip('-')}-{digest}"


def selector(app: str, instance: str) -> dict[str, str]:
    """The labels that pick this instance's pods."""
    return {LABEL_APP: app, LABEL_INSTANCE: instance}


def ownership(app: str, instance: str) -> dict[str, str]:
    """The labels that mark an object as ours, for this app instance."""
    return {**selector(app, instance), LABEL_MANAGED_BY: MANAGER}


def owned(labels: Mapping[str, str] | None, app: str, instance: str) -> bool:
    """Whether an object with ``labels`` is this instance's and was created by us."""
    return all((labels or {}).get(k) == v for k, v in ownership(app, instance).items())


def _fail(source: str, problem: str) -> OrchestratorError:
    return OrchestratorError(f"workload template {source}: {problem}", permanent=True)


def parse_template(text: str | bytes, *, source: str) -> list[dict[str, Any]]:
    """Parse a template and check its shape: one Deployment, one Service, known placeholders.

    Raises:
        OrchestratorError: (permanent) the template is not valid; the message says why.
    """
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise _fail(source, f"not valid YAML: {exc}") from exc
    kinds = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise _fail(source, "every document must be a Kubernetes object (a mapping)")
        kinds.append((doc.get("apiVersion"), doc.get("kind")))
    if sorted(kinds, key=str) != sorted([("apps/v1", "Deployment"), ("v1", "Service")], key=str):
        found = ", ".join(f"{v}/{k}" for v, k in kinds) or "nothing"
        raise _fail(source, f"must hold one apps/v1 Deployment and one v1 Service, not {found}")
    unknown = sorted(_placeholders(docs) - PLACEHOLDERS)
    if unknown:
        allowed = ", ".join(f"${{{p}}}" for p in sorted(PLACEHOLDERS))
        raise _fail(source, f"unknown placeholder ${{{unknown[0]}}} (known: {allowed})")
    deployment = next(d for d in docs if d.get("kind") == "Deployment")
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    )
    if not containers:
        raise _fail(source, "the Deployment's pod template has no containers")
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise _fail(source, "the Deployment's replicas must be at least 1: none would serve")
    service = next(d for d in docs if d.get("kind") == "Service")
    if not (service.get("spec") or {}).get("ports"):
        raise _fail(source, "the Service has no ports")
    return docs


def _placeholders(value: object) -> set[str]:
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_placeholders(k) | _placeholders(v) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value))
    return set()


def _substitute(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, dict):
        return {_substitute(k, values): _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value


def _metadata(obj: dict[str, Any], name: str, namespace: str, labels: Mapping[str, str]) -> None:
    meta = obj.setdefault("metadata", {}) or {}
    obj["metadata"] = meta
    meta["name"] = name
    meta["namespace"] = namespace
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    obj.pop("status", None)


def render(
    docs: Sequence[dict[str, Any]],
    *,
    app: str,
    instance: str,
    namespace: str,
    cluster: str,
    service_type: ServiceType,
) -> Workload:
    """The objects to apply for ``app``/``instance`` on ``cluster``, from a parsed template."""
    name = workload_name(app, instance)
    values = {
        "app": app,
        "instance": instance,
        "name": name,
        "namespace": namespace,
        "cluster": cluster,
    }
    rendered = [_substitute(copy.deepcopy(d), values) for d in docs]
    deployment = next(d for d in rendered if d.get("kind") == "Deployment")
    service = next(d for d in rendered if d.get("kind") == "Service")
    labels = ownership(app, instance)
    pods = selector(app, instance)
    _metadata(deployment, name, namespace, labels)
    _metadata(service, name, namespace, labels)
    spec = deployment.setdefault("spec", {})
    spec["selector"] = {"matchLabels": pods}
    template_meta = spec["template"].setdefault("metadata", {}) or {}
    spec["template"]["metadata"] = template_meta
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
    svc = service.setdefault("spec", {})
    svc["selector"] = pods
    svc["type"] = service_type
    return Workload(deployment, service)


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status") or {}
    return {c.get("type", ""): c for c in status.get("conditions") or ()}


def readiness_of(
    deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]
) -> Readiness:
    """What the API says about an instance: READY when the Deployment has rolled out its current
    generation, is Available, and every one of its live pods is Ready; FAILED when it is gone or
    its rollout passed its progress deadline; NOT_READY otherwise.
    """
    if deployment is None:
        return Readiness.FAILED
    conditions = _conditions(deployment)
    progressing = conditions.get("Progressing", {})
    if progressing.get("status") == "False" and progressing.get("reason") == (
        "ProgressDeadlineExceeded"
    ):
        return Readiness.FAILED
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    rolled_out = (
        status.get("observedGeneration", 0) >= meta.get("generation", 1)
        and status.get("updatedReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
        and status.get("availableReplicas", 0) >= wanted
    )
    if not rolled_out or conditions.get("Available", {}).get("status") != "True":
        return Readiness.NOT_READY
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if len(live) < wanted or not all(
        _conditions(p).get("Ready", {}).get("status") == "True" for p in live
    ):
        return Readiness.NOT_READY
    return Readiness.READY
