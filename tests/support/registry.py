"""The subscription registry the hostile-input server runs with (loaded by ``serve --registry``)."""

from __future__ import annotations

from subscriber.ingress.server import StaticRegistry
from subscriber.settings import Settings

KNOWN = [("amf", "loc-1"), ("smf", "1"), ("nef", "sub-7")]


def known(_settings: Settings) -> StaticRegistry:
    """One known subscription per callback kind; every other key is unknown (404)."""
    return StaticRegistry(KNOWN)
