"""Which application instances serve which UEs, and where each starts.

The registry is a small YAML file (``settings.act.instances_file``)::

    instances:
      - {ue: imsi-208930000000001, app: video-analytics, instance: ue1, cluster: edge-1}

One workflow exists per application instance (``relocation.{app}.{instance}``): an instance is
the unit that moves, serves one UE, and owns one DNS name (``{instance}.{app}.{zone}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from subscriber.decide.topology import Topology
from subscriber.decide.yamldoc import Path, invalid, read_yaml, validation_problems
from subscriber.relocation import IPv4, Label

_UE_KEY = re.compile(r"^(imsi-[0-9]{5,15}|nai-.+|gci-.+|gli-.+|msisdn-[0-9]{5,15}|extid-.+@.+)$")


def _check_ue(value: str) -> str:
    # The key events carry (LocationEvent.ue.key()): a SUPI or GPSI with its type prefix
    # (TS 29.571 §5.3.2, §5.3.3). Any other form would match no event, silently.
    if not _UE_KEY.match(value):
        raise ValueError(
            # The form, not an example: logs mask anything shaped like a SUPI, examples included.
            f"{value[:40]!r} is not a SUPI or GPSI as events name UEs: write imsi-<5 to 15 "
            "digits>, msisdn-<5 to 15 digits>, nai-<...>, gci-<...>, gli-<...> or extid-<...@...>"
        )
    return value


class InstanceDoc(BaseModel):
    """One application instance bound to one UE."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ue: Annotated[str, AfterValidator(_check_ue)]
    app: Label
    instance: Label
    cluster: str
    ue_ipv4: IPv4 | None = None
    """The address of the UE's PDU session: traffic influence names the UE by it (free5GC's NEF
    finds the session by address), or else by ``ue`` when that is a GPSI."""


class _InstancesDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[InstanceDoc] = []


@dataclass(frozen=True, slots=True)
class Instances:
    """The registry, indexed by UE key, and by instance (``app/instance``) to find its UE."""

    by_ue: Mapping[str, tuple[InstanceDoc, ...]]
    owners: Mapping[str, str] = field(default_factory=dict)

    def of(self, ue: str) -> tuple[InstanceDoc, ...]:
        """The instances serving ``ue`` (none for most UEs)."""
        return self.by_ue.get(ue, ())

    def owner(self, app: str, instance: str) -> str | None:
        """The UE an instance serves, None when the registry does not list it."""
        return self.owners.get(f"{app}/{instance}")

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_ue.values())


def find_instance(text: str | bytes, app: str, instance: str) -> InstanceDoc | None:
    """One instance of a registry, read without a topology (the worker has none).

    Raises:
        PolicyUnavailable: malformed YAML or a field of the wrong form.
    """
    data, where = read_yaml(text, source="instances")
    try:
        doc = _InstancesDoc.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise invalid(where, validation_problems(exc, _InstancesDoc)) from exc
    return next((i for i in doc.instances if (i.app, i.instance) == (app, instance)), None)


def parse_instances(text: str | bytes, *, source: str, topology: Topology | None) -> Instances:
    """Parse and check a registry against the topology; every problem at once, each with its
    file, line and YAML path.

    Raises:
        PolicyUnavailable: malformed YAML, a field of the wrong form, unknown app or cluster, or
            an instance listed twice.
    """
    data, where = read_yaml(text, source=source)
    try:
        doc = _InstancesDoc.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise invalid(where, validation_problems(exc, _InstancesDoc)) from exc
    problems: list[tuple[Path, str]] = []
    seen: dict[tuple[str, str], int] = {}
    by_ue: dict[str, list[InstanceDoc]] = {}
    for i, inst in enumerate(doc.instances):
        if topology is None:  # an invalid topology: check the file's own form only
            by_ue.setdefault(inst.ue, []).append(inst)
            continue
        if inst.app not in topology.apps:
            known = ", ".join(topology.apps) or "none"
            problems.append((("instances", i, "app"), f"unknown application {inst.app!r} "
                             f"(the topology has: {known})"))  # fmt: skip
        if inst.cluster not in topology.clusters:
            known = ", ".join(topology.clusters)
            problems.append((("instances", i, "cluster"), f"unknown cluster {inst.cluster!r} "
                             f"(the topology has: {known})"))  # fmt: skip
        first = seen.setdefault((inst.app, inst.instance), i)
        if first != i:
            problems.append(
                (("instances", i), f"{inst.app}/{inst.instance} is already instances[{first}]")
            )
        by_ue.setdefault(inst.ue, []).append(inst)
    if problems:
        raise invalid(where, problems)
    owners = {f"{i.app}/{i.instance}": ue for ue, v in by_ue.items() for i in v}
    return Instances({ue: tuple(v) for ue, v in by_ue.items()}, owners)
