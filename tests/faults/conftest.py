"""The fault suite reuses the act tests' loopback clusters."""

from __future__ import annotations

from tests.act.conftest import clusters

__all__ = ["clusters"]
