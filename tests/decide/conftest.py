"""Fixtures for the decision engine tests."""

from __future__ import annotations

import pytest

from subscriber.decide.bundle import Bundle, load_bundle
from tests.support.policy import EXAMPLE_POLICY, EXAMPLE_TOPOLOGY


@pytest.fixture
def example() -> Bundle:
    """The example topology with the example policy."""
    return load_bundle(EXAMPLE_TOPOLOGY.read_bytes(), EXAMPLE_POLICY.read_bytes())
