"""The capacity our own moves take and give back, before the topology's load snapshot says so.

A topology's ``load`` is a snapshot. Every move the policy orders adds the app's needs (CPU,
memory, one app slot) to its target and, once the old instance is gone, takes them off its
source. Until a new snapshot arrives, :class:`Ledger` holds those differences, and
:meth:`Ledger.applied` gives the bundle the next decision must use: the same files, each
cluster's load corrected, so a burst of moves cannot overfill a cluster that the snapshot shows
as free.

One ledger serves every caller that decides: the consumer (reserve on the decision, release when
the workflow confirms the source is gone), ``shadow`` (moves take effect at once: both together),
and :func:`subscriber.decide.policy.evacuate` (a drain counts each move before the next).

Pure: no clock, no I/O; the corrected bundle keeps the version of the files it came from
(decisions name the files they used; the ledger is running state, like the UE states).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from subscriber.decide.bundle import Bundle
from subscriber.decide.scoring import Extra

_NONE = Extra()


class Ledger:
    """Per-cluster load added (or, negative, given back) by moves not yet in the snapshot."""

    def __init__(self) -> None:
        self._extra: dict[str, Extra] = {}
        self._applied: tuple[Bundle, Bundle] | None = None

    @property
    def extra(self) -> Mapping[str, Extra]:
        """Load per cluster on top of the snapshot (what :func:`~.scoring.rank` accepts)."""
        return self._extra

    def _add(self, bundle: Bundle, cluster: str, app_name: str, sign: int) -> None:
        app = bundle.topology.apps.get(app_name)
        if app is None or cluster not in bundle.topology.clusters:
            return  # nothing known to count: an unknown app or cluster takes no capacity
        was = self._extra.get(cluster, _NONE)
        self._extra[cluster] = Extra(
            was.cpu + sign * app.cpu, was.memory_mib + sign * app.memory_mib, was.apps + sign
        )
        self._applied = None

    def reserve(self, bundle: Bundle, cluster: str, app: str) -> None:
        """An instance of ``app`` is (about to be) deployed on ``cluster``: count its needs."""
        self._add(bundle, cluster, app, 1)

    def release(self, bundle: Bundle, cluster: str, app: str) -> None:
        """An instance of ``app`` left ``cluster``: give its needs back."""
        self._add(bundle, cluster, app, -1)

    def moved(self, bundle: Bundle, app: str, source: str | None, target: str) -> None:
        """A move that takes effect at once: reserve on ``target``, release ``source``."""
        self.reserve(bundle, target, app)
        if source is not None and source != target:
            self.release(bundle, source, app)

    def reset(self) -> None:
        """Forget every difference: a new snapshot of the clusters' load arrived."""
        self._extra.clear()
        self._applied = None

    def applied(self, base: Bundle) -> Bundle:
        """``base`` with each cluster's load corrected by the ledger (``base`` itself if none).

        The result is kept until the ledger or the base changes, so its memoized rankings
        serve every decision in between.
        """
        applied = self._applied
        if applied is not None and applied[0] is base:
            return applied[1]
        if not any(e != _NONE for e in self._extra.values()):
            self._applied = (base, base)
            return base
        topology = base.topology
        clusters = dict(topology.clusters)
        for cid, extra in self._extra.items():
            c = clusters.get(cid)
            if c is not None and extra != _NONE:
                # Never below zero: a snapshot that left out what moved away (made-up instances
                # in shadow, a stale reading) must not turn into negative load.
                clusters[cid] = replace(
                    c,
                    cpu_used=max(0.0, c.cpu_used + extra.cpu),
                    memory_used_mib=max(0, c.memory_used_mib + extra.memory_mib),
                    apps_used=max(0, c.apps_used + extra.apps),
                )
        corrected = Bundle(
            replace(topology, clusters=MappingProxyType(clusters)), base.rules, base.version
        )
        self._applied = (base, corrected)
        return corrected
