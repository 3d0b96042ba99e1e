"""The decision rules of a context-transfer procedure, as a table."""

from __future__ import annotations

import pytest

from subscriber.ams import procedure as proc
from subscriber.ams.models import RegistrationInfo
from subscriber.relocation import ContextPolicy, OnTransferFailure

ABORT = ContextPolicy(deadline_s=5)
MOVE = ContextPolicy(deadline_s=5, on_failure=OnTransferFailure.MOVE_WITHOUT_CONTEXT)


def reg(*devices: tuple[str, int | None, dict[str, object]]) -> RegistrationInfo:
    """A registration of devices (value, level, extra attributes)."""
    return RegistrationInfo.model_validate(
        {
            "serviceConsumerId": {"appInstanceId": "a.b.c"},
            "deviceInformation": [
                {"associateId": {"type": 1, "value": v}, "appMobilityServiceLevel": lvl, **extra}
                for v, lvl, extra in devices
            ],
        }
    )


def test_plan_sorts_devices_by_level() -> None:
    """Stateless devices are told only; NOT_ALLOWED stops the move; confirmation is noted."""
    p = proc.plan([reg(("u1", None, {}), ("u2", 2, {}), ("u3", 3, {}), ("u4", 1, {}))])
    assert sorted(p.waited) == ["1:u2", "1:u3"]
    assert list(p.stateless) == ["1:u1"]
    assert p.not_allowed == ("1:u4",)
    assert p.confirm


@pytest.mark.parametrize(
    ("extra", "level", "mark"),
    [
        ({"contextTransferState": 1}, 3, "done"),
        ({"contextTransferState": 0}, 3, None),
        ({}, 1, "declined"),
        ({"contextTransferFailure": "disk full"}, 3, "failed: disk full"),
    ],
)
def test_observe_marks_what_the_application_said(
    extra: dict[str, object], level: int, mark: str | None
) -> None:
    """A write of the source registration marks each waited device once."""
    marks = proc.observe({}, ["1:u1"], reg(("u1", level, extra)))
    assert marks.get("1:u1") == mark


def test_a_mark_once_made_stays() -> None:
    """A later write cannot take back a completion."""
    marks = proc.observe({"1:u1": "done"}, ["1:u1"], reg(("u1", 3, {"contextTransferState": 0})))
    assert marks == {"1:u1": "done"}


VERDICTS = [
    ({}, {"1:u1"}, set(), 0, proc.Verdict.WAIT),
    ({}, {"1:u1"}, set(), 10, proc.Verdict.TIMEOUT),
    ({"1:u1": "done"}, {"1:u1"}, set(), 10, proc.Verdict.TRANSFERRED),
    ({}, set(), {"1:u1"}, 0, proc.Verdict.TRANSFERRED),  # left the source, listed by the target
    ({}, set(), set(), 0, proc.Verdict.WAIT),  # left the source, nowhere else: not proof
    ({"1:u1": "declined"}, {"1:u1"}, set(), 0, proc.Verdict.DECLINED),
    ({"1:u1": "failed: x"}, {"1:u1"}, set(), 0, proc.Verdict.FAILED),
]


@pytest.mark.parametrize(("marks", "source", "target", "now", "want"), VERDICTS)
def test_verdict(
    marks: dict[str, str], source: set[str], target: set[str], now: float, want: proc.Verdict
) -> None:
    """Where a procedure stands, from marks, registrations and the clock."""
    got = proc.verdict(marks, ["1:u1"], at_source=source, at_target=target, now_s=now, deadline_s=5)
    assert got is want


CONSEQUENCES = [
    (proc.Verdict.TRANSFERRED, False, ABORT, True, "transferred", ""),
    (proc.Verdict.SOURCE_LOST, True, ABORT, True, "source_lost", ""),
    (proc.Verdict.DECLINED, False, MOVE, False, "", "ContextTransferDeclined"),
    (proc.Verdict.FAILED, False, ABORT, False, "", "ContextTransferFailed"),
    (proc.Verdict.FAILED, False, MOVE, True, "without_context: failed", ""),
    (proc.Verdict.FAILED, True, MOVE, False, "", "ContextTransferFailed"),
    (proc.Verdict.TIMEOUT, False, ABORT, False, "", "ContextTransferTimeout"),
    (proc.Verdict.TIMEOUT, False, MOVE, True, "without_context: timeout", ""),
    (proc.Verdict.TIMEOUT, True, MOVE, False, "", "ContextTransferTimeout"),
]


@pytest.mark.parametrize(("v", "confirm", "policy", "proceed", "context", "error"), CONSEQUENCES)
def test_consequence(
    v: proc.Verdict, confirm: bool, policy: ContextPolicy, proceed: bool, context: str, error: str
) -> None:
    """Confirmation is never bypassed; otherwise the app's policy decides a failure or a timeout."""
    c = proc.consequence(v, confirm=confirm, policy=policy)
    assert (c.proceed, c.context, c.error_type) == (proceed, context, error)
