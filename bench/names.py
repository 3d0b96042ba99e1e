"""Names of a benchmark run's own: topics, consumer group and task queue, so runs never mix."""

from __future__ import annotations

from subscriber.settings import Settings


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
