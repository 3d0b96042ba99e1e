"""Tests for the fake core's wire helpers."""

from __future__ import annotations

from datetime import datetime

import pytest

from subscriber.fakes.core.wire import TokenSigner, go_time


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (1_782_893_730_123_456_789, "2026-07-01T08:15:30.123456789Z"),
        (1_782_893_730_120_000_000, "2026-07-01T08:15:30.12Z"),
        (1_782_893_730_000_000_000, "2026-07-01T08:15:30Z"),
    ],
)
def test_go_time_trims_trailing_zeros_like_go(ns: int, text: str) -> None:
    """Times have up to 9 fractional digits with trailing zeros trimmed, and Z."""
    assert go_time(ns) == text
    assert datetime.fromisoformat(text).year == 2026


def test_token_round_trips_and_rejects_tampering() -> None:
    """A signed token verifies; a changed payload or another key does not."""
    signer = TokenSigner(b"k" * 32)
    token = signer.sign({"scope": "namf-evts"})
    assert signer.verify(token)["scope"] == "namf-evts"
    header, _, mac = token.split(".")
    forged = f"{header}.{TokenSigner(b'x').sign({'scope': 'x'}).split('.')[1]}.{mac}"
    with pytest.raises(ValueError, match="invalid"):
        signer.verify(forged)
    with pytest.raises(ValueError, match="invalid"):
        TokenSigner(b"other").verify(token)
