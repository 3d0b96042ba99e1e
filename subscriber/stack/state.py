"""The stack's state file: which services run, on which ports, under which PIDs."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

STATE_FILE = "state.json"


class ServiceState(BaseModel):
    """One service the project started."""

    pid: int
    start_ticks: int
    ports: dict[str, int]
    data_dir: Path
    log_file: Path
    ready_s: float


class StackState(BaseModel):
    """Every service of the stack, as recorded by ``up``."""

    services: dict[str, ServiceState] = {}
    pdns_api_key: str = ""

    def info(self) -> StackInfo:
        """Client addresses; raises KeyError when a service was never started."""
        return StackInfo.from_state(self, self.pdns_api_key)


class StackInfo(BaseModel):
    """The addresses a client needs, derived from the state."""

    kafka_bootstrap: str
    temporal_address: str
    pdns_api_url: str
    pdns_api_key: str
    pdns_dns_port: int

    @classmethod
    def from_state(cls, state: StackState, api_key: str) -> StackInfo:
        """Addresses of a running stack."""
        kafka = state.services["kafka"].ports
        temporal = state.services["temporal"].ports
        pdns = state.services["powerdns"].ports
        return cls(
            kafka_bootstrap=f"127.0.0.1:{kafka['broker']}",
            temporal_address=f"127.0.0.1:{temporal['grpc']}",
            pdns_api_url=f"http://127.0.0.1:{pdns['api']}",
            pdns_api_key=api_key,
            pdns_dns_port=pdns["dns"],
        )


def read_state(stack_dir: Path) -> StackState:
    """The recorded state, or an empty one when nothing was started."""
    path = stack_dir / STATE_FILE
    if not path.exists():
        return StackState()
    return StackState.model_validate_json(path.read_bytes())


def write_state(stack_dir: Path, state: StackState) -> None:
    """Replace the state file atomically, so a reader never sees half of it."""
    stack_dir.mkdir(parents=True, exist_ok=True)
    tmp = stack_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(state.model_dump_json(indent=2))
    os.replace(tmp, stack_dir / STATE_FILE)
