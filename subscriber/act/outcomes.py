"""The outcomes topic's writer: where the relocation workflow reports what became of each request.

Each :class:`~subscriber.relocation.OutcomeReport` goes to ``kafka.outcomes_topic``, keyed by the
UE's pseudonym, on the partition its request names (the UE's partition of the events topic, so
the consumer member that holds the UE's record reads it). The producer is idempotent and waits for
every acknowledgement, so the report activity returns only once its reports are durable; it
starts on first use, so a worker starts while Kafka is away and the activity retries meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType

import structlog
from aiokafka import AIOKafkaProducer

from subscriber.relocation import OutcomeReport, encode_report
from subscriber.settings import KafkaSettings

log = structlog.get_logger()


class OutcomeWriter:
    """Writes outcome reports; an async context manager.

    Args:
        settings: the brokers and the outcomes topic.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._s = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def __aenter__(self) -> OutcomeWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._s.bootstrap_servers,
                    enable_idempotence=True,
                    acks="all",
                    request_timeout_ms=self._s.request_timeout_ms,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, reports: Sequence[OutcomeReport]) -> None:
        """Write ``reports`` in order; return once the broker acknowledged every one.

        Raises:
            KafkaError: the broker is away; the activity is retried.
        """
        producer = await self._started()
        topic = self._s.outcomes_topic
        partitions = await producer.partitions_for(topic)
        sent = []
        for report in reports:
            partition = report.partition
            if partition is not None and partition not in partitions:
                # The topic has fewer partitions than the events topic had: the UE's key decides.
                log.warning("outcomes.unknown_partition", partition=partition)
                partition = None
            sent.append(
                await producer.send(
                    topic,
                    encode_report(report),
                    key=report.ue_key.encode() or None,
                    partition=partition,
                )
            )
        await asyncio.gather(*sent)
