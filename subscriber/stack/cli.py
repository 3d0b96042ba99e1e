"""``subscriber stack up | down | status | env | build``."""

from __future__ import annotations

from subscriber.options import StackEnvOptions
from subscriber.settings import Settings
from subscriber.stack.free5gc import FERRETDB_VERSION, NRF_VERSION, ensure_built
from subscriber.stack.state import read_state
from subscriber.stack.supervisor import down as stop_all
from subscriber.stack.supervisor import status as health
from subscriber.stack.supervisor import up as start_all


async def up(settings: Settings) -> int:
    """Start or reuse each service and print how long each took to become ready."""
    state, how = await start_all(settings)
    info = state.info()
    for name, what in how.items():
        print(f"{name:<9} {what}")
    print(f"kafka     {info.kafka_bootstrap}")
    print(f"temporal  {info.temporal_address}")
    print(f"powerdns  api {info.pdns_api_url}  dns 127.0.0.1:{info.pdns_dns_port}")
    print(f"state     {settings.stack.dir / 'state.json'}")
    return 0


def down(settings: Settings) -> int:
    """Stop what the project started."""
    stopped = stop_all(settings)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


async def status(settings: Settings) -> int:
    """Exit 0 only when every service answers a real call."""
    report = await health(settings)
    state = read_state(settings.stack.dir)
    for name, state_word in report.items():
        svc = state.services.get(name)
        where = f"pid {svc.pid} ports {svc.ports}" if svc and state_word != "stopped" else ""
        print(f"{name:<9} {state_word:<10} {where}")
    return 0 if all(v == "healthy" for v in report.values()) else 1


def env(settings: Settings, options: StackEnvOptions) -> int:
    """Print the SUBSCRIBER_* variables that point the daemon at the running stack."""
    info = read_state(settings.stack.dir).info()
    prefix = "export " if options.export else ""
    for key, value in (
        ("KAFKA__BOOTSTRAP_SERVERS", info.kafka_bootstrap),
        ("TEMPORAL__ADDRESS", info.temporal_address),
        ("POWERDNS__API_URL", info.pdns_api_url),
        ("POWERDNS__API_KEY", info.pdns_api_key),
        ("POWERDNS__DNS_PORT", str(info.pdns_dns_port)),
    ):
        print(f"{prefix}SUBSCRIBER_{key}={value}")
    return 0


def build(settings: Settings) -> int:
    """Build (or find cached) the free5GC NRF and FerretDB the tests run, and print where."""
    binaries = ensure_built(settings.stack.cache_dir)
    print(f"nrf       {NRF_VERSION}  {binaries.nrf}")
    print(f"ferretdb  {FERRETDB_VERSION}  {binaries.ferretdb}")
    return 0
