"""Subscription registries for tests: fixed keys or every key (``serve --registry`` loads them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from subscriber.ingress.normalize import Binding
from subscriber.settings import Settings

KNOWN = [("amf", "loc-1"), ("smf", "1"), ("nef", "sub-7")]


class StaticRegistry:
    """A registry of fixed keys, or of every key with ``accept_any``.

    A key given as a ``(kind, key)`` pair is bound to a subscription of that name whose
    correlation id (AMF, SMF) or subscription id (NEF) is the key itself; give a mapping to bind
    keys otherwise.
    """

    def __init__(
        self,
        keys: Iterable[tuple[str, str]] | Mapping[tuple[str, str], Binding] = (),
        *,
        accept_any: bool = False,
    ):
        """Know ``keys``; with ``accept_any``, know every key and check no body against it."""
        self._bindings: dict[tuple[str, str], Binding] = (
            dict(keys) if isinstance(keys, Mapping) else {k: _self_bound(*k) for k in keys}
        )
        self._accept_any = accept_any

    def add(self, kind: str, key: str, binding: Binding | None = None) -> None:
        """Make ``/callbacks/{kind}/{key}`` known."""
        self._bindings[(kind, key)] = binding or _self_bound(kind, key)

    def binding(self, kind: str, key: str) -> Binding | None:
        """The binding of a known pair (with ``accept_any``, an unchecked one for any pair)."""
        found = self._bindings.get((kind, key))
        if found is None and self._accept_any:
            return Binding(name=key)
        return found

    def is_ready(self) -> bool:
        """Always: the keys are in memory."""
        return True


def _self_bound(kind: str, key: str) -> Binding:
    if kind == "nef":
        return Binding(name=key, subscription_id=key)
    return Binding(name=key, correlation_id=key)


def known(_settings: Settings) -> StaticRegistry:
    """One known subscription per callback kind; every other key is unknown (404)."""
    return StaticRegistry(KNOWN)


def accept_any(_settings: Settings) -> StaticRegistry:
    """Every key is known: for tests about load, crashes and shutdown, not about keys."""
    return StaticRegistry(accept_any=True)
