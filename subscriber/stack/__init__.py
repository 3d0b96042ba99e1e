"""The local stack: real Apache Kafka, Temporal and PowerDNS on loopback.

Used alike by developers (``subscriber stack up|down|status``), the tests and the demo. Every
service binds 127.0.0.1 on free ports chosen at start; the ports and PIDs go to a state file in
the stack directory that the other commands and the tests read.
"""

from subscriber.stack.state import ServiceState, StackInfo, StackState
from subscriber.stack.supervisor import down, restart_service, settings_for, status, up

__all__ = [
    "ServiceState",
    "StackInfo",
    "StackState",
    "down",
    "restart_service",
    "settings_for",
    "status",
    "up",
]
