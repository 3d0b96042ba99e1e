"""Talking to the fake core as an AF: registering at its NRF and getting tokens."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import aiohttp

TokenFactory = Callable[..., Awaitable[str]]
"""``await token(base, scope, target="AMF")``: a registered AF's access token."""


async def register_af(http: aiohttp.ClientSession, base: str) -> str:
    """Register a fresh AF instance at the fake NRF and return its id."""
    nf_id = str(uuid.uuid4())
    profile = {"nfInstanceId": nf_id, "nfType": "AF", "nfStatus": "REGISTERED"}
    async with http.put(f"{base}/nnrf-nfm/v1/nf-instances/{nf_id}", json=profile) as response:
        assert response.status == 201
    return nf_id
