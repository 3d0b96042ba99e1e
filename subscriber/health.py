"""``subscriber check``: does each dependency answer a real call?

Meant for container health checks and for operators: exit 0 when every named check passes, 1
otherwise with one line per failing check on stderr. Each check makes the call the daemon itself
depends on: a Kafka metadata round trip, Temporal's gRPC health check, a PowerDNS API call plus a
DNS query, and the receiver's ``GET /readyz``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import Client

from subscriber.act.dns import server_address
from subscriber.options import CheckOptions
from subscriber.settings import (
    KafkaSettings,
    PowerDnsSettings,
    ReceiverSettings,
    Settings,
    TemporalSettings,
)

CHECKS = ("kafka", "temporal", "powerdns", "receiver")

# What a client should dial when a server is told to bind every interface.
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


class CheckFailed(Exception):
    """Raised by one check with the reason, in words an operator can act on."""


def _why(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc).strip()
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


async def check_kafka(settings: KafkaSettings, timeout_s: float) -> None:
    """Fetch cluster metadata from the bootstrap servers; at least one broker must be listed."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster = await admin.describe_cluster()
    except TimeoutError as exc:
        raise CheckFailed(f"no metadata from {settings.bootstrap_servers} in {timeout_s}s") from exc
    except Exception as exc:  # aiokafka raises several unrelated types for one outage
        raise CheckFailed(f"no metadata from {settings.bootstrap_servers}: {_why(exc)}") from exc
    finally:
        await admin.close()
    if not cluster.get("brokers"):
        raise CheckFailed(f"{settings.bootstrap_servers} answered without any broker")


async def check_temporal(settings: TemporalSettings, timeout_s: float) -> None:
    """Connect to the frontend and run its gRPC health check."""
    try:
        async with asyncio.timeout(timeout_s):
            client = await Client.connect(settings.address, namespace=settings.namespace)
            serving = await client.service_client.check_health()
    except TimeoutError as exc:
        raise CheckFailed(f"no answer from {settings.address} in {timeout_s}s") from exc
    except Exception as exc:  # connection errors surface as RuntimeError from the native core
        raise CheckFailed(f"cannot reach {settings.address}: {exc}") from exc
    if not serving:
        raise CheckFailed(f"{settings.address} is not serving")


async def check_powerdns(settings: PowerDnsSettings, timeout_s: float) -> None:
    """Read the server through the HTTP API, then ask the DNS listener any question."""
    url = f"{settings.api_url.rstrip('/')}/api/v1/servers/{settings.server_id}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            http.get(url, headers={"X-API-Key": settings.api_key}) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CheckFailed(f"API at {settings.api_url} unreachable: {_why(exc)}") from exc
    if status == 401:
        raise CheckFailed(f"API at {settings.api_url} refused the API key (401)")
    if status != 200:
        raise CheckFailed(f"API at {url} answered {status}")
    where = f"{settings.dns_host}:{settings.dns_port}"
    query = dns.message.make_query("health.invalid.", "SOA")
    try:
        host = await server_address(settings.dns_host, settings.dns_port)
        answer = await dns.asyncquery.udp(query, host, port=settings.dns_port, timeout=timeout_s)
    except (dns.exception.DNSException, OSError) as exc:
        raise CheckFailed(f"DNS at {where} did not answer: {_why(exc)}") from exc
    # Any authoritative verdict proves the listener works; we host no zone named .invalid.
    if answer.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED):
        raise CheckFailed(f"DNS at {where} answered {dns.rcode.to_text(answer.rcode())}")


def base_url(settings: ReceiverSettings) -> str:
    """Where a client on the same host reaches the receiver (loopback for a wildcard bind)."""
    host = _WILDCARD_TO_LOOPBACK.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{host}:{settings.port}"


def receiver_url(settings: ReceiverSettings) -> str:
    """Where a client on the same host reaches the receiver's readiness endpoint."""
    return f"{base_url(settings)}/readyz"


async def check_receiver(settings: ReceiverSettings, timeout_s: float) -> None:
    """``GET /readyz`` on the receiver must answer 200 (Kafka reachable or spool has room)."""
    url = receiver_url(settings)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            # The receiver's own certificate is often self-signed; liveness is the question here.
            http.get(url, ssl=False) as response,
        ):
            status = response.status
            body = (await response.text())[:200]
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CheckFailed(f"{url} unreachable: {_why(exc)}") from exc
    if status != 200:
        raise CheckFailed(f"{url} answered {status}: {body.strip()}")


def _checks(settings: Settings) -> dict[str, Callable[[float], Awaitable[None]]]:
    return {
        "kafka": lambda t: check_kafka(settings.kafka, t),
        "temporal": lambda t: check_temporal(settings.temporal, t),
        "powerdns": lambda t: check_powerdns(settings.powerdns, t),
        "receiver": lambda t: check_receiver(settings.receiver, t),
    }


async def run_checks(
    settings: Settings, names: Sequence[str], *, timeout_s: float
) -> dict[str, str | None]:
    """Run the named checks concurrently.

    Args:
        settings: where each dependency is.
        names: a subset of :data:`CHECKS`, in the order to report them.
        timeout_s: the most each check may take.

    Returns:
        For each name, ``None`` when it passed, else why it failed.
    """
    checks = _checks(settings)

    async def one(name: str) -> str | None:
        try:
            await checks[name](timeout_s)
        except CheckFailed as exc:
            return str(exc)
        return None

    results = await asyncio.gather(*(one(name) for name in names))
    return dict(zip(names, results, strict=True))


async def check(settings: Settings, options: CheckOptions) -> int:
    """CLI handler: print one line per check, failures on stderr; exit 1 if any failed."""
    names = list(dict.fromkeys(options.what or CHECKS))
    # aiokafka logs every refused connection itself; the failure line below already says it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    started = time.monotonic()
    results = await run_checks(settings, names, timeout_s=options.timeout_s)
    elapsed_ms = (time.monotonic() - started) * 1000
    for name, problem in results.items():
        if problem is None:
            print(f"{name}: ok")
        else:
            print(f"{name}: FAILED: {problem}", file=sys.stderr)
    failed = sum(problem is not None for problem in results.values())
    print(f"checks: {len(results) - failed} ok, {failed} failed ({elapsed_ms:.0f} ms)")
    return 1 if failed else 0
