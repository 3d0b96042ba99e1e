"""Rendering an app's workload template, and reading readiness from Kubernetes status (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from subscriber.act.orchestrator import OrchestratorError
from subscriber.act.workload import (
    LABEL_APP,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    owned,
    parse_template,
    readiness_of,
    render,
    workload_name,
)
from subscriber.relocation import Readiness
from tests.support.kube import TEMPLATE


def rendered(text: str = TEMPLATE, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment and Service of instance i1 of app shop on cluster edge-a."""
    args: dict[str, Any] = {
        "app": "shop",
        "instance": "i1",
        "namespace": "edge-apps",
        "cluster": "edge-a",
        "service_type": "NodePort",
    } | kw
    return render(parse_template(text, source="t.yaml"), **args)


def test_render_forces_names_namespace_labels_selectors_and_service_type() -> None:
    """Whatever the template says, the identity and selection of the objects are ours."""
    text = TEMPLATE.replace("name: ${name}", "name: chosen-by-user", 1)
    text += "  type: ClusterIP\n  selector: {app: everything}\n"
    deployment, service = rendered(text)
    for obj in (deployment, service):
        assert obj["metadata"]["name"] == "shop-i1"
        assert obj["metadata"]["namespace"] == "edge-apps"
        assert obj["metadata"]["labels"][LABEL_MANAGED_BY] == "subscriber"
    pods = {LABEL_APP: "shop", LABEL_INSTANCE: "i1"}
    assert deployment["spec"]["selector"] == {"matchLabels": pods}
    assert pods.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == pods
    assert service["spec"]["type"] == "NodePort"


def test_placeholders_are_replaced_in_values_and_kubernetes_expansions_left_alone() -> None:
    """${...} placeholders become values; $(VAR), which Kubernetes expands itself, stays."""
    text = TEMPLATE.replace('"--instance=${instance}"', '"--instance=${instance}", "$(HOME)"')
    deployment, _ = rendered(text)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["--site=edge-a", "--instance=i1", "$(HOME)"]


def test_a_value_cannot_inject_yaml() -> None:
    """Substitution happens after parsing: a value with YAML syntax stays one string."""
    deployment, _ = rendered(cluster="x\nkind: Secret\n")
    assert deployment["kind"] == "Deployment"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "--site=x\nkind: Secret\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [", "not valid YAML"),
        ("- 1\n- 2\n", "must be a Kubernetes object"),
        (TEMPLATE.split("---")[0], "one apps/v1 Deployment and one v1 Service"),
        (TEMPLATE + "---\napiVersion: v1\nkind: Secret\n", "not apps/v1/Deployment, v1/Service"),
        (TEMPLATE + "---\n" + TEMPLATE.split("---")[1], "one apps/v1 Deployment"),
        (TEMPLATE.replace("${cluster}", "${site}"), "unknown placeholder ${site}"),
        (TEMPLATE.replace("apps/v1", "apps/v1beta1"), "one apps/v1 Deployment"),
        (TEMPLATE.replace("replicas: 2", "replicas: 0"), "replicas must be at least 1"),
        (TEMPLATE.replace("- {name: http, port: 8080, targetPort: 8080}", "[]"), "has no ports"),
    ],
)
def test_bad_templates_are_refused_for_good(text: str, problem: str) -> None:
    """Every malformed template is a permanent error that says what is wrong."""
    with pytest.raises(
        OrchestratorError, match=problem.replace("$", r"\$").replace("[", r"\[")
    ) as err:
        parse_template(text, source="t.yaml")
    assert err.value.permanent
    assert "t.yaml" in str(err.value)


def test_names_are_valid_and_distinct_at_the_longest_ids() -> None:
    """Two 63-character labels still give a valid name of at most 63, unique per instance."""
    app, inst = "a" * 63, "b" * 63
    names = {
        workload_name(app, inst),
        workload_name(app, inst[:-1] + "c"),
        workload_name("5g", "x"),
    }
    assert len(names) == 3
    for name in names:
        assert len(name) <= 63
        assert name[0].isalpha()
        assert name[-1].isalnum()
    assert workload_name("shop", "i1") == "shop-i1"


def test_a_digit_first_app_gets_a_name_that_cannot_collide_with_a_plain_one() -> None:
    """'5g'+'x' and 'a'+'5g-x' would both be 'a-5g-x' with a naive prefix; they are not."""
    assert workload_name("5g", "x") != workload_name("a", "5g-x")


def test_ownership_needs_every_label() -> None:
    """Objects missing any of the three labels, or naming another instance, are not ours."""
    labels = {LABEL_APP: "shop", LABEL_INSTANCE: "i1", LABEL_MANAGED_BY: "subscriber"}
    assert owned(labels, "shop", "i1")
    assert not owned(labels, "shop", "i2")
    assert not owned({**labels, LABEL_MANAGED_BY: "helm"}, "shop", "i1")
    assert not owned(None, "shop", "i1")


def _deployment(**status: Any) -> dict[str, Any]:
    conditions = status.pop("conditions", [{"type": "Available", "status": "True"}])
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "conditions": conditions,
            **status,
        },
    }


def _pod(ready: str = "True", deleting: bool = False) -> dict[str, Any]:
    meta = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": ready}]}}


@pytest.mark.parametrize(
    ("deployment", "pods", "want"),
    [
        (_deployment(), [_pod(), _pod()], Readiness.READY),
        (_deployment(), [_pod(), _pod(), _pod(deleting=True, ready="False")], Readiness.READY),
        (_deployment(), [_pod(), _pod("False")], Readiness.NOT_READY),
        (_deployment(), [_pod()], Readiness.NOT_READY),
        (_deployment(observedGeneration=1), [_pod(), _pod()], Readiness.NOT_READY),
        (_deployment(updatedReplicas=1), [_pod(), _pod()], Readiness.NOT_READY),
        (_deployment(availableReplicas=1), [_pod(), _pod()], Readiness.NOT_READY),
        (
            _deployment(conditions=[{"type": "Available", "status": "False"}]),
            [_pod(), _pod()],
            Readiness.NOT_READY,
        ),
        (
            _deployment(
                conditions=[
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ]
            ),
            [],
            Readiness.FAILED,
        ),
        (None, [_pod(), _pod()], Readiness.FAILED),
    ],
)
def test_readiness_from_status(
    deployment: dict[str, Any] | None, pods: list[dict[str, Any]], want: Readiness
) -> None:
    """READY only for a complete rollout with every live pod Ready; FAILED when gone or stuck."""
    assert readiness_of(deployment, pods) is want
