"""One context-transfer procedure, as pure functions: which devices must move their context, what
the application has said so far, and what the move does about it.

ETSI GS MEC 021 (clause 7.2.2, AppMobilityServiceLevel) gives each device of a registration a
service level. A device without one is stateless: nothing to wait for. APP_MOBILITY_NOT_ALLOWED
refuses the move outright. APP_MOBILITY_WITH_CONFIRMATION and APP_MOBILITY_WITHOUT_CONFIRMATION
devices are waited for: the application confirms by completing the transfer
(``contextTransferState`` 1, or by the device leaving the source registration while the target's
lists it, as MEC 021's application self-controlled transfer ends), declines by setting the level
to NOT_ALLOWED, or reports a failure (``contextTransferFailure``). A device with confirmation is
never moved without that confirmation; for the others the application's policy decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from subscriber.ams.models import AppMobilityServiceLevel, ContextTransferState, RegistrationInfo
from subscriber.relocation import ContextPolicy, OnTransferFailure


class Verdict(StrEnum):
    """Where a procedure stands."""

    WAIT = "wait"
    TRANSFERRED = "transferred"
    DECLINED = "declined"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SOURCE_LOST = "source_lost"


DONE, DECLINED, FAILED = "done", "declined", "failed"


@dataclass(frozen=True)
class Plan:
    """What a source instance's registrations say about a move, before anyone is told."""

    waited: dict[str, dict[str, Any]]
    """Devices whose context must move: key -> AssociateId document."""
    stateless: dict[str, dict[str, Any]]
    """Registered devices without a service level: told, not waited for."""
    not_allowed: tuple[str, ...]
    """Devices registered APP_MOBILITY_NOT_ALLOWED: the move must not happen."""
    confirm: bool
    """Some waited device is registered APP_MOBILITY_WITH_CONFIRMATION."""


def plan(registrations: Iterable[RegistrationInfo]) -> Plan:
    """The devices a move of the registered instance concerns, by what their level asks."""
    waited: dict[str, dict[str, Any]] = {}
    stateless: dict[str, dict[str, Any]] = {}
    not_allowed: list[str] = []
    confirm = False
    for reg in registrations:
        for dev in reg.deviceInformation:
            key = dev.associateId.key()
            doc = dev.associateId.model_dump()
            level = dev.appMobilityServiceLevel
            if level is AppMobilityServiceLevel.APP_MOBILITY_NOT_ALLOWED:
                not_allowed.append(key)
            elif level is None:
                stateless[key] = doc
            else:
                waited[key] = doc
                confirm |= level is AppMobilityServiceLevel.APP_MOBILITY_WITH_CONFIRMATION
    return Plan(waited, stateless, tuple(not_allowed), confirm)


def reset(reg: RegistrationInfo, keys: Iterable[str]) -> RegistrationInfo:
    """``reg`` with the transfer state of ``keys`` back to NOT_TRANSFERRED (a new procedure must
    not read an old procedure's completion)."""
    wanted = set(keys)
    devices = [
        d.model_copy(
            update={
                "contextTransferState": ContextTransferState.NOT_TRANSFERRED,
                "contextTransferFailure": None,
            }
        )
        if d.associateId.key() in wanted
        else d
        for d in reg.deviceInformation
    ]
    return reg.model_copy(update={"deviceInformation": devices})


def observe(
    marks: Mapping[str, str], waited: Iterable[str], reg: RegistrationInfo
) -> dict[str, str]:
    """The marks after the source instance wrote ``reg``: a mark, once made, stays."""
    out = dict(marks)
    wanted = set(waited)
    for dev in reg.deviceInformation:
        key = dev.associateId.key()
        if key not in wanted or key in out:
            continue
        if dev.appMobilityServiceLevel is AppMobilityServiceLevel.APP_MOBILITY_NOT_ALLOWED:
            out[key] = DECLINED
        elif dev.contextTransferFailure is not None:
            out[key] = f"{FAILED}: {dev.contextTransferFailure}"
        elif dev.contextTransferState is ContextTransferState.USER_CONTEXT_TRANSFER_COMPLETED:
            out[key] = DONE
    return out


def verdict(
    marks: Mapping[str, str],
    waited: Iterable[str],
    *,
    at_source: set[str],
    at_target: set[str],
    now_s: float,
    deadline_s: float,
) -> Verdict:
    """Where the procedure stands, from its marks and the registrations as they are now."""
    values = list(marks.values())
    if DECLINED in values:
        return Verdict.DECLINED
    if any(v.startswith(FAILED) for v in values):
        return Verdict.FAILED
    if all(marks.get(k) == DONE or (k not in at_source and k in at_target) for k in waited):
        return Verdict.TRANSFERRED
    if now_s >= deadline_s:
        return Verdict.TIMEOUT
    return Verdict.WAIT


@dataclass(frozen=True)
class Consequence:
    """What the move does after a final verdict."""

    proceed: bool
    context: str
    """What became of the context (MoveOutcome.context) when the move goes on."""
    error_type: str = ""
    """Why the move stops (the ApplicationError type) when it does not."""
    detail: str = ""


def consequence(v: Verdict, *, confirm: bool, policy: ContextPolicy, why: str = "") -> Consequence:
    """Apply the application's level and policy to a final verdict."""
    if v is Verdict.TRANSFERRED:
        return Consequence(True, "transferred")
    if v is Verdict.SOURCE_LOST:
        # Nothing is left to transfer from, and aborting would leave the user with no instance.
        return Consequence(True, "source_lost")
    if v is Verdict.DECLINED:
        return Consequence(
            False, "", "ContextTransferDeclined", "the application declined the move"
        )
    kind = "timeout" if v is Verdict.TIMEOUT else "failed"
    detail = (
        f"no transfer within {policy.deadline_s:g} s"
        if v is Verdict.TIMEOUT
        else f"the application reported a failed transfer{': ' + why if why else ''}"
    )
    error_type = "ContextTransferTimeout" if v is Verdict.TIMEOUT else "ContextTransferFailed"
    if confirm:
        return Consequence(
            False, "", error_type, f"{detail}; registered with confirmation: not moved without it"
        )
    if policy.on_failure is OnTransferFailure.ABORT:
        return Consequence(False, "", error_type, detail)
    return Consequence(True, f"without_context: {kind}")


def failure_reason(marks: Mapping[str, str]) -> str:
    """The first reason an application gave for a failed transfer."""
    for v in marks.values():
        if v.startswith(FAILED):
            return v.removeprefix(FAILED).removeprefix(": ")
    return ""
