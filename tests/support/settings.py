"""Settings for one test: its own names on the shared stack, quick deadlines, an absent Kafka."""

from __future__ import annotations

from pathlib import Path

from subscriber.settings import Settings
from tests.support.ports import free_port

CLUSTER_NETWORKS = ("127.0.1.0/24", "127.0.2.0/24", "127.0.3.0/24")
"""The test clusters' loopback networks (tests/conftest.py): where AMS callbacks may go."""


def isolate(settings: Settings, unique: str, tmp_path: Path) -> Settings:
    """Per-test topics, group, task queue, zone and local directories."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={
                    "events_topic": f"events-{unique}",
                    "dead_letter_topic": f"dead-letter-{unique}",
                    "decisions_topic": f"decisions-{unique}",
                    "state_topic": f"ue-state-{unique}",
                    "outcomes_topic": f"outcomes-{unique}",
                    "consumer_group": f"group-{unique}",
                }
            ),
            "temporal": settings.temporal.model_copy(update={"task_queue": f"tq-{unique}"}),
            "powerdns": settings.powerdns.model_copy(update={"zone": f"z{unique}.test."}),
            "receiver": settings.receiver.model_copy(
                update={"spool_dir": tmp_path / "spool", "port": 0}
            ),
            "core": settings.core.model_copy(update={"state_dir": tmp_path / "state"}),
        }
    )


def tuned(settings: Settings, tmp_path: Path) -> Settings:
    """Quick deadlines, no drain, a 1 s TTL and this test's own cluster records."""
    return settings.model_copy(
        update={
            "relocation": settings.relocation.model_copy(
                update={
                    "readiness_timeout_s": 15.0,
                    "readiness_poll_s": 0.05,
                    "dns_confirm_timeout_s": 5.0,
                    "drain_s": 0.0,
                    "local_dir": tmp_path / "clusters",
                    "local_warmup_s": 0.2,
                }
            ),
            "powerdns": settings.powerdns.model_copy(update={"record_ttl_s": 1}),
            "ams": settings.ams.model_copy(
                update={
                    "port": 0,
                    "db": tmp_path / "ams.sqlite3",
                    "callback_networks": list(CLUSTER_NETWORKS),
                }
            ),
            "shutdown_grace_s": 2.0,
        }
    )


def closed_kafka(settings: Settings) -> Settings:
    """``settings`` with Kafka on a port where nothing listens: every event goes to the spool."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{free_port()}", "publish_timeout_ms": 500}
            )
        }
    )
