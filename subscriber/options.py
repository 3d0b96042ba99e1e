"""The options of each subcommand, typed: built once by :mod:`subscriber.cli` from its arguments.

Each handler takes ``(settings, options)``, or only ``settings`` when its command has no options.
Field names are the argparse destinations, so :func:`from_namespace` builds any of them; the
defaults and the help live with the arguments, in :func:`subscriber.cli.build_parser`. This module
imports nothing heavy: the CLI loads it for every command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, TypeVar

T = TypeVar("T")


def from_namespace(cls: type[T], namespace: argparse.Namespace) -> T:
    """An options object of type ``cls`` from the parsed arguments of its command."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: getattr(namespace, name) for name in names})


@dataclass(frozen=True)
class StackEnvOptions:
    """``subscriber stack env``."""

    export: bool


@dataclass(frozen=True)
class FakeCoreOptions:
    """``subscriber fakecore``."""

    host: str
    port: int
    ues: int
    mode: Literal["free5gc", "notify"]
    no_oauth: bool


@dataclass(frozen=True)
class EmcoFakeOptions:
    """``subscriber emco-fake``."""

    host: str
    port: int
    app: str
    instance: str
    cluster: str


@dataclass(frozen=True)
class DemoOptions:
    """``subscriber demo``: ``deployed`` runs against the deployment the settings name;
    ``steering`` is how traffic follows the move (``dns`` or ``traffic_influence``);
    ``prewarm`` shows a pre-warmed move."""

    timeout_s: float
    deployed: bool
    steering: str = "dns"
    prewarm: bool = False


@dataclass(frozen=True)
class ServeOptions:
    """``subscriber serve``: ``registry`` is ``module:function`` returning the registry, or None."""

    registry: str | None


@dataclass(frozen=True)
class CheckOptions:
    """``subscriber check``: ``what`` None means every check."""

    what: Sequence[str] | None
    timeout_s: float


@dataclass(frozen=True)
class DocsOptions:
    """``subscriber docs``."""

    dir: Path
    check: bool


@dataclass(frozen=True)
class PolicyCheckOptions:
    """``subscriber policy check``: None means the file the settings name."""

    file: Path | None
    policy: Path | None
    instances: Path | None


@dataclass(frozen=True)
class RecordOptions:
    """``subscriber record``."""

    output: Path
    topic: str | None
    since: str | None
    until: str | None
    offsets: str | None
    ue: Sequence[str] | None
    cell: Sequence[str] | None
    from_capture: Sequence[Path] | None


@dataclass(frozen=True)
class ReplayOptions:
    """``subscriber replay``."""

    file: Path
    to: Literal["receiver", "kafka"]
    url: str | None
    http: Literal["2", "1.1"]
    topic: str | None
    speed: str
    start: str | None
    end: str | None
    ue: Sequence[str] | None
    loop: int
    concurrency: int
    connections: int
    json: Path | None
    no_progress: bool


@dataclass(frozen=True)
class SimulateOptions:
    """``subscriber simulate``: seeded mobility (durations in virtual seconds)."""

    topology: Path | None
    seed: int
    ues: int
    duration: float
    pedestrian_dwell: float
    vehicle_dwell: float
    vehicle_share: float
    oscillation: float
    first_imsi: int
    report_interval: float
    model: Literal["wander", "commute", "walk"]
    routes: int
    to: Literal["fake-amf", "receiver", "recording"]
    url: str | None
    correlation_id: str
    output: Path | None
    callbacks: bool
    start: str | None
    speed: str


@dataclass(frozen=True)
class ShadowOptions:
    """``subscriber shadow``."""

    recording: Path
    policy: Path
    policy_b: Path | None
    topology: Path | None
    instances: Path | None
    app: Sequence[str] | None
    html: Path | None
    json: Path | None
    ue: Sequence[str] | None
    flip_window: float
    clear_ids: bool
    workers: int | None
