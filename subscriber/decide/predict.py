"""Where a UE goes next: transition counts learned online per location, with decay.

The model is deliberately simple and explainable. Every time a UE enters a location (a zone, or a
cell where the caller tracks cells) coming from another, the transition is counted twice: under
the location it left (first order) and under the pair of the last two it was in (second order, so
a commuter's direction is told apart from the opposite commute through the same place). To
predict, the second-order context is used when it has enough weight, otherwise the first-order
one; the prediction is its heaviest successor, and the confidence is that successor's share of
all the weight the context has seen.

Counts decay exponentially with a half-life, so a road that closes or a timetable that changes
is forgotten. Decay is lazy (applied when a context is next learned from) and never amplifies: a
time earlier than the context's last update decays by nothing, so a clock from the future costs
at most that one context's history and cannot make a confidence exceed 1.

Memory is bounded whatever the input: at most ``max_contexts`` contexts (the least recently
learned one is evicted first) and at most ``max_successors`` successors per context (the lightest
is dropped; its weight stays in the total, so a context that overflows only grows less
confident). Pure: no clock, no I/O; time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Prediction:
    """The most likely next location of a UE, and why.

    Attributes:
        location: the predicted next location.
        confidence: its share of the context's decayed weight, in [0, 1].
        evidence: the context's decayed weight (about how many transitions it has seen lately).
        context: the locations the prediction was made from, oldest first (one or two).
        alternatives: the next heaviest successors and their shares, heaviest first.
        stay_s: how long UEs stayed in the current location before leaving it from this context
            (a decayed mean; None when no stay was reported).
    """

    location: str
    confidence: float
    evidence: float
    context: tuple[str, ...]
    alternatives: tuple[tuple[str, float], ...] = ()
    stay_s: float | None = None

    def explain(self) -> str:
        """One line a person reads: what was seen from where."""
        path = " -> ".join(self.context)
        return (
            f"after {path}: {self.confidence:.0%} of {self.evidence:.1f} recent transitions "
            f"went to {self.location}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for audit records."""
        return {
            "location": self.location,
            "confidence": round(self.confidence, 4),
            "evidence": round(self.evidence, 3),
            "context": list(self.context),
            "alternatives": [[loc, round(share, 4)] for loc, share in self.alternatives],
            "stay_s": None if self.stay_s is None else round(self.stay_s, 3),
        }


class _Context:
    __slots__ = ("last_s", "next", "stay_n", "stay_sum", "total")

    def __init__(self, now_s: float) -> None:
        self.total = 0.0
        self.last_s = now_s
        self.next: dict[str, float] = {}
        self.stay_sum = 0.0
        self.stay_n = 0.0


class Transitions:
    """Online next-location model shared by every UE (see the module docstring)."""

    def __init__(
        self,
        *,
        half_life_s: float = 3600.0,
        min_evidence: float = 3.0,
        max_contexts: int = 50_000,
        max_successors: int = 8,
    ) -> None:
        """Create an empty model.

        Args:
            half_life_s: after this long without being learned from, a context's weights halve.
            min_evidence: the decayed weight a second-order context needs before it is used.
            max_contexts: contexts kept at most; the least recently learned go first.
            max_successors: successors kept per context at most; the lightest go first.

        Raises:
            ValueError: a parameter out of range.
        """
        if not half_life_s > 0:
            raise ValueError("half_life_s must be > 0")
        if max_contexts < 1 or max_successors < 1:
            raise ValueError("max_contexts and max_successors must be >= 1")
        if not min_evidence >= 0:
            raise ValueError("min_evidence must be >= 0")
        self.half_life_s = half_life_s
        self.min_evidence = min_evidence
        self.max_contexts = max_contexts
        self.max_successors = max_successors
        self._contexts: OrderedDict[_Key, _Context] = OrderedDict()

    def __len__(self) -> int:
        return len(self._contexts)

    def _decay(self, ctx: _Context, now_s: float) -> float:
        # Never above 1: a time before the last update (a late event, or one after a clock that
        # ran ahead) decays by nothing rather than multiplying the counts.
        return float(0.5 ** (max(0.0, now_s - ctx.last_s) / self.half_life_s))

    def _count(self, key: _Key, nxt: str, now_s: float, stayed_s: float | None) -> None:
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = _Context(now_s)
            if len(self._contexts) > self.max_contexts:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(key)
            factor = self._decay(ctx, now_s)
            if factor < 1.0:
                ctx.total *= factor
                ctx.stay_sum *= factor
                ctx.stay_n *= factor
                for loc in ctx.next:
                    ctx.next[loc] *= factor
        # The newest time wins even when earlier: one far-future event must not freeze decay.
        ctx.last_s = now_s
        ctx.total += 1.0
        if stayed_s is not None and stayed_s >= 0 and stayed_s != float("inf"):
            ctx.stay_sum += stayed_s
            ctx.stay_n += 1.0
        weights = ctx.next
        if nxt in weights:
            weights[nxt] += 1.0
            return
        if len(weights) >= self.max_successors:
            del weights[min(weights, key=weights.__getitem__)]
        weights[nxt] = 1.0

    def learn(self, path: Sequence[str], now_s: float, stayed_s: float | None = None) -> None:
        """Count the UE's latest move: ``path`` ends with the location it just entered.

        Args:
            path: the UE's recent distinct locations, oldest first (at least two to learn).
            now_s: when it entered the last one.
            stayed_s: how long it stayed in the one before (None: unknown; a negative or
                infinite value is ignored).
        """
        if len(path) < 2 or path[-1] == path[-2]:
            return
        self._count((path[-2],), path[-1], now_s, stayed_s)
        if len(path) >= 3:
            self._count((path[-3], path[-2]), path[-1], now_s, stayed_s)

    def predict(self, path: Sequence[str], now_s: float) -> Prediction | None:
        """The most likely next location after ``path`` (its last entry is where the UE is).

        Args:
            path: the UE's recent distinct locations, oldest first.
            now_s: the time of the question (only decays the reported evidence).

        Returns:
            the prediction, or None when nothing was learned from this location.
        """
        if not path:
            return None
        if len(path) >= 2:
            ctx = self._contexts.get((path[-2], path[-1]))
            if ctx is not None and ctx.total * self._decay(ctx, now_s) >= self.min_evidence:
                return self._best(ctx, (path[-2], path[-1]), now_s)
        ctx = self._contexts.get((path[-1],))
        if ctx is None:
            return None
        return self._best(ctx, (path[-1],), now_s)

    def _best(self, ctx: _Context, key: _Key, now_s: float) -> Prediction | None:
        if ctx.total <= 0 or not ctx.next:
            return None
        ranked = sorted(ctx.next.items(), key=lambda kv: (-kv[1], kv[0]))
        total = ctx.total
        top, weight = ranked[0]
        return Prediction(
            location=top,
            confidence=min(1.0, weight / total),
            evidence=total * self._decay(ctx, now_s),
            context=key,
            alternatives=tuple((loc, w / total) for loc, w in ranked[1:3]),
            stay_s=ctx.stay_sum / ctx.stay_n if ctx.stay_n > 0 else None,
        )


def zone_path(recent: Sequence[tuple[str, float]]) -> tuple[tuple[str, ...], float | None]:
    """The distinct zones of a UE state's ``recent`` ring, oldest first (repeats collapsed), and
    how long the UE stayed in the one before the last.

    The stay is None unless the ring shows the UE entering that zone from another: a UE's first
    zone has only its first report's time, not an arrival (counted, it would make the start of
    every journey look like a short stop).
    """
    out: list[str] = []
    entered: list[float] = []
    for zone, at_s in recent:
        if not out or out[-1] != zone:
            out.append(zone)
            entered.append(at_s)
    stayed = entered[-1] - entered[-2] if len(entered) >= 3 else None
    return tuple(out), stayed
