"""Subscription registries for tests: fixed keys or every key (``serve --registry`` loads them)."""

from __future__ import annotations

from collections.abc import Iterable

from subscriber.settings import Settings

KNOWN = [("amf", "loc-1"), ("smf", "1"), ("nef", "sub-7")]


class StaticRegistry:
    """A registry of fixed ``(kind, key)`` pairs, or of every pair with ``accept_any``."""

    def __init__(self, keys: Iterable[tuple[str, str]] = (), *, accept_any: bool = False):
        """Know ``keys``; with ``accept_any``, know every key."""
        self._keys = set(keys)
        self._accept_any = accept_any

    def add(self, kind: str, key: str) -> None:
        """Make ``/callbacks/{kind}/{key}`` known."""
        self._keys.add((kind, key))

    def is_known(self, kind: str, key: str) -> bool:
        """True for a known pair (or always, with ``accept_any``)."""
        return self._accept_any or (kind, key) in self._keys


def known(_settings: Settings) -> StaticRegistry:
    """One known subscription per callback kind; every other key is unknown (404)."""
    return StaticRegistry(KNOWN)


def accept_any(_settings: Settings) -> StaticRegistry:
    """Every key is known: for tests about load, crashes and shutdown, not about keys."""
    return StaticRegistry(accept_any=True)
