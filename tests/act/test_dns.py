"""The PowerDNS adapter against the real server: REPLACE, DELETE, the authoritative answer."""

from __future__ import annotations

import pytest

from subscriber.act.dns import DnsError, PowerDns, record_name
from subscriber.settings import Settings

pytestmark = [pytest.mark.stack]


async def test_replace_then_delete_shows_in_the_answer(pdns: PowerDns, unique: str) -> None:
    """A REPLACE answers at once with the new address; an empty change deletes the record."""
    name = record_name("shop", "eu1", pdns.zone)
    assert name == f"eu1.shop.z{unique}.test."
    await pdns.ensure_zone()  # again: already there is fine
    await pdns.replace_a(name, ["192.0.2.10"])
    assert await pdns.query_a(name) == ["192.0.2.10"]
    await pdns.replace_a(name, ["192.0.2.11"])
    assert await pdns.query_a(name) == ["192.0.2.11"]
    await pdns.replace_a(name, [])
    assert await pdns.query_a(name) == []


async def test_wrong_api_key_is_permanent(act_settings: Settings) -> None:
    """PowerDNS answers 401 to a wrong key: retrying cannot help."""
    settings = act_settings.powerdns.model_copy(update={"api_key": "wrong"})
    async with PowerDns(settings) as dns:
        with pytest.raises(DnsError) as info:
            await dns.replace_a(record_name("shop", "eu1", dns.zone), ["192.0.2.1"])
    assert info.value.permanent
