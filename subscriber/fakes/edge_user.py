"""A user of the demo edge application: the proof that its state moved with it.

The user connects from an address of its own (a loopback address standing for its UE IP, which
the application keys its state by), finds the application where DNS says it is at every
request, and advances its counter with ``POST /count``. It records every answer: the counts
must run on without a gap or a repeat, and no request may fail, across any number of moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp

Resolve = Callable[[], Awaitable[tuple[str, int]]]
"""Where the application is now: (address, port)."""


@dataclass
class Answer:
    """One request's outcome."""

    count: int | None
    cluster: str | None
    error: str | None = None
    at_s: float = field(default_factory=time.monotonic)
    """When the request was sent (monotonic seconds)."""


@dataclass
class EdgeUser:
    """One user; an async context manager.

    Args:
        address: the local address it connects from (its identity to the application).
        resolve: where the application is.
    """

    address: str
    resolve: Resolve
    answers: list[Answer] = field(default_factory=list)
    _http: aiohttp.ClientSession | None = None
    _last: tuple[str, int] | None = None

    async def __aenter__(self) -> EdgeUser:
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(self.address, 0), force_close=True),
            timeout=aiohttp.ClientTimeout(total=3),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()

    async def step(self) -> Answer:
        """One request: resolve, POST /count, record the answer."""
        assert self._http is not None, "use EdgeUser as an async context manager"
        sent = time.monotonic()
        try:
            host, port = await self._where()
            async with self._http.post(f"http://{host}:{port}/count") as resp:
                if resp.status != 200:
                    answer = Answer(None, None, f"status {resp.status}")
                else:
                    body = await resp.json()
                    answer = Answer(int(body["count"]), str(body["cluster"]))
        except Exception as exc:  # any failure is the user's failed request, recorded
            answer = Answer(None, None, type(exc).__name__)
        answer.at_s = sent
        self.answers.append(answer)
        return answer

    async def _where(self) -> tuple[str, int]:
        # Like a client's resolver cache: a lookup that fails leaves the last answer in use.
        try:
            self._last = await self.resolve()
        except Exception:
            if self._last is None:
                raise
        return self._last

    async def run(self, stop: asyncio.Event, every_s: float = 0.05) -> None:
        """Step until ``stop`` is set."""
        while not stop.is_set():
            await self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    @property
    def failures(self) -> list[str]:
        """The errors of the requests that failed."""
        return [a.error for a in self.answers if a.error is not None]

    @property
    def counts(self) -> list[int]:
        """The counts the application answered, in order."""
        return [a.count for a in self.answers if a.count is not None]

    def continuous(self) -> bool:
        """Every answer advanced the count by exactly one: nothing lost, nothing repeated."""
        c = self.counts
        return bool(c) and c == list(range(c[0], c[0] + len(c)))

    def clusters(self) -> list[str]:
        """The clusters that answered, in order, each once per run of answers."""
        out: list[str] = []
        for a in self.answers:
            if a.cluster is not None and (not out or out[-1] != a.cluster):
                out.append(a.cluster)
        return out
