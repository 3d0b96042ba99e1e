"""Keeps the running topology and policy, and the instances registry, and reloads them when their
files change.

The I/O half of loading: :func:`read_bundle` reads the files and hands the bytes to the pure
:func:`~subscriber.decide.bundle.load_bundle`. :class:`PolicyHolder` checks the files every
``settings.policy.reload_interval_s``; a change that parses replaces the running bundle in one
assignment, so every decision sees one whole version; a change that does not parse is logged with
every problem and the running version stays. :class:`InstancesHolder` does the same for the
instances file (``act.instances_file``), checked against the running topology.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import structlog

from subscriber.decide.bundle import Bundle, load_bundle, make_bundle
from subscriber.decide.instances import Instances, parse_instances
from subscriber.decide.topology import ClusterReading, with_readings
from subscriber.errors import PolicyUnavailable
from subscriber.settings import PolicySettings

log = structlog.get_logger()

ChangeListener = Callable[[Bundle | None, Bundle], None]


def read_file(path: Path) -> bytes:
    """The bytes of a topology, policy or instances file.

    Raises:
        PolicyUnavailable: it cannot be read (missing, a directory, no permission).
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyUnavailable(f"{path}: cannot read: {exc.strerror or exc}") from exc


def read_files(topology_file: Path, policy_file: Path | None) -> tuple[bytes, bytes | None]:
    """Read the topology and (optional) policy files.

    Raises:
        PolicyUnavailable: a file cannot be read.
    """
    return read_file(topology_file), read_file(policy_file) if policy_file is not None else None


def read_bundle(topology_file: Path, policy_file: Path | None = None) -> Bundle:
    """Read and parse both files; without a policy file the policy takes its defaults.

    Raises:
        PolicyUnavailable: a file cannot be read or is invalid; the message names each problem.
    """
    topology, policy = read_files(topology_file, policy_file)
    return load_bundle(
        topology,
        policy,
        topology_source=str(topology_file),
        policy_source=str(policy_file) if policy_file is not None else "policy",
    )


def _stat(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class _Reloading:
    """Reloads what a holder keeps every ``interval_s`` while entered; a failed reload keeps the
    running version (a bug in a reload must not end the reloads)."""

    _what = "policy"
    _task: asyncio.Task[None] | None = None

    def _interval_s(self) -> float:
        raise NotImplementedError

    async def reload(self) -> bool:
        """Load what changed; True when the running version was replaced."""
        raise NotImplementedError

    def _start_watching(self) -> None:
        self._task = asyncio.create_task(self._watch(), name=f"{self._what}-reload")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s())
            try:
                await self.reload()
            except Exception:
                log.exception("reload failed, keeping the running version", what=self._what)


class PolicyHolder(_Reloading):
    """The running bundle, reloaded from its files while the daemon runs.

    Use as an async context manager: entering loads the files (and fails if they are invalid),
    then checks them on an interval until exit.
    """

    def __init__(self, settings: PolicySettings, *, on_change: ChangeListener | None = None):
        """Prepare, without reading anything yet.

        Args:
            settings: the files and the reload interval.
            on_change: called with (old, new) after each swap, e.g. to run evacuations.
        """
        self._settings = settings
        self._on_change = on_change
        self._bundle: Bundle | None = None
        self._base: Bundle | None = None
        self._readings: Mapping[str, ClusterReading] = {}
        self._stats: tuple[object, object] | None = None
        self._digest: str | None = None

    @property
    def bundle(self) -> Bundle:
        """The running bundle.

        Raises:
            PolicyUnavailable: nothing valid was loaded yet.
        """
        if self._bundle is None:
            raise PolicyUnavailable("no valid topology and policy loaded")
        return self._bundle

    async def __aenter__(self) -> PolicyHolder:
        if self._settings.topology_file is None:
            raise PolicyUnavailable("settings.policy.topology_file is not set")
        await self.reload()
        self._start_watching()
        return self

    def _interval_s(self) -> float:
        return self._settings.reload_interval_s

    async def reload(self) -> bool:
        """Load the files if they changed; returns whether the running bundle was replaced.

        Raises:
            PolicyUnavailable: only while nothing is loaded yet, when the files are invalid.
        """
        topology_file = self._settings.topology_file
        if topology_file is None:
            raise PolicyUnavailable("settings.policy.topology_file is not set")
        policy_file = self._settings.policy_file
        stats = (_stat(topology_file), _stat(policy_file))
        if self._bundle is not None and stats == self._stats:
            return False
        try:
            texts = await asyncio.to_thread(read_files, topology_file, policy_file)
            digest = hashlib.sha256(repr(texts).encode()).hexdigest()
            if self._bundle is not None and digest == self._digest:
                self._stats = stats
                return False
            bundle = load_bundle(
                texts[0],
                texts[1],
                topology_source=str(topology_file),
                policy_source=str(policy_file) if policy_file is not None else "policy",
            )
        except PolicyUnavailable as exc:
            if self._bundle is None:
                raise
            # Remember the bad files so the same problem is logged once, not every interval.
            self._stats = stats
            log.warning(
                "policy reload rejected, keeping the running version",
                version=self._bundle.version,
                problems=str(exc).splitlines(),
            )
            return False
        return self._swap(bundle, stats, digest)

    def update_capacity(self, readings: Mapping[str, ClusterReading]) -> None:
        """Capacity and load read from the clusters themselves; the running bundle uses them
        while its policy asks for it (``capacity.from_clusters``). The version then covers the
        readings too, so each decision names exactly what it was made with."""
        self._readings = dict(readings)
        if self._base is None:
            return
        live = self._live(self._base)
        if self._bundle is None or live.version != self._bundle.version:
            self._bundle = live
            log.info("policy capacity refreshed", version=live.version, clusters=sorted(readings))

    def _live(self, base: Bundle) -> Bundle:
        if not base.rules.doc.capacity.from_clusters or not self._readings:
            return base
        return make_bundle(with_readings(base.topology, self._readings), base.rules)

    def _swap(self, bundle: Bundle, stats: tuple[object, object], digest: str) -> bool:
        old = self._bundle
        self._stats, self._digest = stats, digest
        self._base = bundle
        bundle = self._live(bundle)
        if old is not None and old.version == bundle.version:
            return False
        self._bundle = bundle
        log.info(
            "policy loaded",
            version=bundle.version,
            previous=old.version if old is not None else None,
            label=bundle.rules.doc.label,
            warnings=list(bundle.topology.warnings),
        )
        if self._on_change is not None:
            self._on_change(old, bundle)
        return True


class InstancesHolder(_Reloading):
    """The running instances registry, reloaded from its file while the daemon runs.

    Entering loads the file (and fails if it is invalid); it is then checked every
    ``interval_s``. A change that parses (against the running topology) replaces
    :attr:`current` in one assignment; one that does not is logged once and the running registry
    stays. Without a file the registry is empty.

    Args:
        path: the instances file (``act.instances_file``), or None.
        policy: the running topology, which every instance must name.
        interval_s: how often the file is checked.
    """

    def __init__(self, path: Path | None, *, policy: PolicyHolder, interval_s: float) -> None:
        self._path = path
        self._policy = policy
        self._interval = interval_s
        self._stat: tuple[int, int] | None = None
        self.current = Instances({})

    _what = "instances"

    async def __aenter__(self) -> InstancesHolder:
        if self._path is not None:
            await self.reload()
            self._start_watching()
        return self

    def _interval_s(self) -> float:
        return self._interval

    async def reload(self) -> bool:
        """Load the file if it changed; returns whether the registry was replaced.

        Raises:
            PolicyUnavailable: only on the first load, when the file is unreadable or invalid.
        """
        assert self._path is not None
        stat = _stat(self._path)
        if self._task is not None and stat == self._stat:
            return False
        first = self._task is None
        try:
            registry = parse_instances(
                read_file(self._path), source=str(self._path), topology=self._policy.bundle.topology
            )
        except PolicyUnavailable as exc:
            if first:
                raise
            self._stat = stat
            log.warning(
                "instances reload rejected, keeping the running registry",
                problems=str(exc).splitlines(),
            )
            return False
        self._stat = stat
        self.current = registry
        log.info("instances loaded", instances=len(registry), first=first)
        return True
