"""The fake user plane: each UE's traffic to an application goes to the DNAI its path is on.

A real UPF (an uplink classifier or branching point, TS 23.501 §5.6.4) sends the packets of a
UE's PDU session that match an application's traffic filter out of the N6 interface of the DNAI
the SMF chose, and the SMF moves that choice when AF traffic influence changes the PCC rules
(between its EARLY and LATE UP_PATH_CH notifications). The fake does it for TCP: it listens on
the application's data-network address, and each connection from a UE address goes, from that
same address (nothing is translated, as nothing is in a UPF), to the DNAI's local data network,
``dnais[dnai]``, on the same port. A UE with no route there (no PDU session, or the default
route when ``default`` is unset) is refused: the connection is closed at once.

Like free5GC's ULCL, the DNAI-to-network map is static configuration (uerouting.yaml).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import structlog

log = structlog.get_logger()

_CHUNK = 65536


class FakeUserPlane:
    """One application's user plane; an async context manager that serves while entered.

    Args:
        af_app_id: the application whose traffic it steers.
        host, port: the application's data-network address clients connect to.
        dnais: DNAI -> the address of its local data network (where the app's instance is).
        default: where traffic goes on the default route (DNAI ``""``); None refuses it.
    """

    def __init__(
        self,
        *,
        af_app_id: str,
        host: str,
        port: int,
        dnais: Mapping[str, str],
        default: str | None = None,
    ) -> None:
        self.af_app_id = af_app_id
        self.host, self.port = host, port
        self._dnais = dict(dnais)
        self._default = default
        self.routes: dict[str, str] = {}
        """UE IPv4 -> the DNAI its traffic to the app goes to (``""``: the default route)."""
        self.connections: dict[str, int] = {}
        """Where connections went: DNAI (or "refused") -> count."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def route(self, ue_ipv4: str, af_app_id: str, dnai: str) -> None:
        """The SMF moved ``ue_ipv4``'s path for ``af_app_id`` to ``dnai``."""
        if af_app_id == self.af_app_id:
            self.routes[ue_ipv4] = dnai

    def where(self, ue_ipv4: str) -> str | None:
        """The address ``ue_ipv4``'s traffic reaches now, None when it is refused."""
        dnai = self.routes.get(ue_ipv4)
        if dnai is None:
            return None
        if not dnai:
            return self._default
        return self._dnais.get(dnai)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            ue = str(writer.get_extra_info("peername")[0])
            dnai = self.routes.get(ue)
            address = self.where(ue)
            if address is None:
                self.connections["refused"] = self.connections.get("refused", 0) + 1
                return
            self.connections[dnai or ""] = self.connections.get(dnai or "", 0) + 1
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    address, self.port, local_addr=(ue, 0)
                )
            except OSError:
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
