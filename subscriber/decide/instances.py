"""Which application instances serve which UEs, and where each starts.

The registry is a small YAML file (``settings.act.instances_file``)::

    instances:
      - {ue: imsi-208930000000001, app: video-analytics, instance: ue1, cluster: edge-1}

One workflow exists per application instance (``relocation.{app}.{instance}``): an instance is
the unit that moves, serves one UE, and owns one DNS name (``{instance}.{app}.{zone}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from subscriber.decide.topology import Topology
from subscriber.errors import PolicyUnavailable
from subscriber.relocation import IPv4, Label


class InstanceDoc(BaseModel):
    """One application instance bound to one UE."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ue: str
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
        PolicyUnavailable: malformed YAML.
    """
    try:
        doc = _InstancesDoc.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise PolicyUnavailable(f"instances: {exc}") from exc
    return next((i for i in doc.instances if (i.app, i.instance) == (app, instance)), None)


def parse_instances(text: str | bytes, *, source: str, topology: Topology) -> Instances:
    """Parse and check a registry against the topology.

    Raises:
        PolicyUnavailable: malformed YAML, unknown app or cluster, or an instance listed twice.
    """
    try:
        doc = _InstancesDoc.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise PolicyUnavailable(f"{source}: {exc}") from exc
    problems = []
    seen: set[tuple[str, str]] = set()
    by_ue: dict[str, list[InstanceDoc]] = {}
    for i, inst in enumerate(doc.instances):
        where = f"{source}: instances[{i}]"
        if inst.app not in topology.apps:
            problems.append(f"{where}.app: unknown application {inst.app!r}")
        if inst.cluster not in topology.clusters:
            problems.append(f"{where}.cluster: unknown cluster {inst.cluster!r}")
        if (inst.app, inst.instance) in seen:
            problems.append(f"{where}: {inst.app}/{inst.instance} is listed twice")
        seen.add((inst.app, inst.instance))
        by_ue.setdefault(inst.ue, []).append(inst)
    if problems:
        raise PolicyUnavailable("; ".join(problems))
    owners = {f"{i.app}/{i.instance}": ue for ue, v in by_ue.items() for i in v}
    return Instances({ue: tuple(v) for ue, v in by_ue.items()}, owners)
