"""Names of a benchmark run's own: topics, consumer group and task queue, so runs never mix."""

from __future__ import annotations

import secrets

from subscriber.settings import LogSettings, Settings


def isolated(base: Settings, prefix: str) -> Settings:
    """``base`` with every topic, the consumer group and the task queue named after ``prefix``."""
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={
                    "events_topic": f"{prefix}.events",
                    "decisions_topic": f"{prefix}.decisions",
                    "state_topic": f"{prefix}.state",
                    "outcomes_topic": f"{prefix}.outcomes",
                    "dead_letter_topic": f"{prefix}.dead",
                    "consumer_group": prefix,
                }
            ),
            "temporal": base.temporal.model_copy(update={"task_queue": prefix}),
        }
    )


def child_log() -> LogSettings:
    """Log settings for a process a benchmark starts: warnings only, JSON lines, and a fresh
    pseudonym key (``serve``, ``track`` and ``consume`` refuse to start without a real one)."""
    return LogSettings(level="warning", format="json", pseudonym_key=secrets.token_hex(16))
