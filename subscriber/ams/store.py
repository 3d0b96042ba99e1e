"""Where the AMS keeps registrations, subscriptions, procedures and known instances: SQLite.

SQLite because every change is one transaction: a crash (or a full disk) mid-write leaves the
last committed state, never half a registration, and a registration written together with the
mark it puts on a running procedure is written whole or not at all. ``synchronous=FULL`` makes a
commit durable before the API answers. Calls run in one worker thread, one at a time, so the
event loop never waits on the disk.

A file SQLite cannot read (a flipped byte, another program's file) stops the AMS at start with
one line naming it: starting empty would forget every registration and move stateful
applications without their context.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import orjson

from subscriber.errors import SubscriberError

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registrations (
  id TEXT PRIMARY KEY,
  app_instance_id TEXT NOT NULL,
  body BLOB NOT NULL,
  expires_at REAL
);
CREATE INDEX IF NOT EXISTS registrations_by_instance ON registrations (app_instance_id);
CREATE TABLE IF NOT EXISTS subscriptions (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  app_instance_id TEXT,
  body BLOB NOT NULL,
  expires_at REAL
);
CREATE TABLE IF NOT EXISTS procedures (
  id TEXT PRIMARY KEY,
  source_id TEXT NOT NULL,
  body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
  app_instance_id TEXT PRIMARY KEY,
  app TEXT NOT NULL,
  body BLOB NOT NULL
);
"""


class StoreUnusable(SubscriberError):
    """Raised when the AMS database cannot be opened, read or written."""


@dataclass(frozen=True)
class Row:
    """One stored resource: its id, the instance it belongs to, its JSON document."""

    id: str
    app_instance_id: str | None
    body: dict[str, Any]
    expires_at: float | None = None


class Store:
    """The AMS database; an async context manager.

    Args:
        path: the SQLite file (created with its folder when missing).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ams-store")
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Store:
        await self._run(self._open)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    def _open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                db.close()
                raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'none'}")
            db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnusable(
                f"AMS store {self._path} cannot be used ({exc}); move it aside to start with "
                "no registrations (applications then register again)"
            ) from exc
        self._db = db

    async def _run(self, call: Callable[[], T]) -> T:
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _tx(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise StoreUnusable("the AMS store is closed")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnusable(f"AMS store {self._path}: {exc}") from exc
        return result

    # Registrations --------------------------------------------------------------------------

    async def registrations(self, app_instance_id: str | None = None) -> list[Row]:
        """Every registration, or those of one application instance."""
        sql = "SELECT id, app_instance_id, body, expires_at FROM registrations"
        args: tuple[str, ...] = ()
        if app_instance_id is not None:
            sql, args = sql + " WHERE app_instance_id = ?", (app_instance_id,)
        return await self._run(lambda: self._tx(lambda db: rows(db.execute(sql, args))))

    async def registration(self, rid: str) -> Row | None:
        """One registration, or None."""
        sql = "SELECT id, app_instance_id, body, expires_at FROM registrations WHERE id = ?"
        found = await self._run(lambda: self._tx(lambda db: rows(db.execute(sql, (rid,)))))
        return found[0] if found else None

    async def put_registration(
        self, row: Row, *, replaces_instance: bool = False, marks: Sequence[Row] = ()
    ) -> None:
        """Write a registration and the procedure ``marks`` it causes, in one transaction.

        With ``replaces_instance`` every other registration of the same instance goes.
        """

        def work(db: sqlite3.Connection) -> None:
            if replaces_instance:
                db.execute(
                    "DELETE FROM registrations WHERE app_instance_id = ? AND id != ?",
                    (row.app_instance_id, row.id),
                )
            db.execute(
                "INSERT OR REPLACE INTO registrations VALUES (?, ?, ?, ?)",
                (row.id, row.app_instance_id, dump(row.body), row.expires_at),
            )
            _put_procedures(db, marks)

        await self._run(lambda: self._tx(work))

    async def delete_registration(self, rid: str) -> bool:
        """Delete one registration; False when there was none."""
        sql = "DELETE FROM registrations WHERE id = ?"
        return await self._run(lambda: self._tx(lambda db: db.execute(sql, (rid,)).rowcount > 0))

    # Subscriptions --------------------------------------------------------------------------

    async def subscriptions(self, kind: str | None = None) -> list[Row]:
        """Every subscription, or those of one kind."""
        sql = "SELECT id, app_instance_id, body, expires_at FROM subscriptions"
        args: tuple[str, ...] = ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind,)
        return await self._run(lambda: self._tx(lambda db: rows(db.execute(sql, args))))

    async def subscription(self, sid: str) -> Row | None:
        """One subscription, or None."""
        sql = "SELECT id, app_instance_id, body, expires_at FROM subscriptions WHERE id = ?"
        found = await self._run(lambda: self._tx(lambda db: rows(db.execute(sql, (sid,)))))
        return found[0] if found else None

    async def put_subscription(self, row: Row, kind: str) -> None:
        """Write one subscription."""
        args = (row.id, kind, row.app_instance_id, dump(row.body), row.expires_at)
        sql = "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?)"
        await self._run(lambda: self._tx(lambda db: db.execute(sql, args)))

    async def delete_subscription(self, sid: str) -> bool:
        """Delete one subscription; False when there was none."""
        sql = "DELETE FROM subscriptions WHERE id = ?"
        return await self._run(lambda: self._tx(lambda db: db.execute(sql, (sid,)).rowcount > 0))

    async def count(self, table: str) -> int:
        """How many rows ``table`` holds (``registrations`` or ``subscriptions``)."""
        if table not in ("registrations", "subscriptions"):
            raise ValueError(table)
        sql = f"SELECT COUNT(*) FROM {table}"  # noqa: S608 - the name is one of two constants
        return await self._run(lambda: self._tx(lambda db: int(db.execute(sql).fetchone()[0])))

    # Procedures and instances ---------------------------------------------------------------

    async def procedures(self, source_id: str | None = None) -> list[Row]:
        """Every procedure in progress, or those moving one instance's devices."""
        sql = "SELECT id, source_id, body, NULL FROM procedures"
        args: tuple[str, ...] = ()
        if source_id is not None:
            sql, args = sql + " WHERE source_id = ?", (source_id,)
        return await self._run(lambda: self._tx(lambda db: rows(db.execute(sql, args))))

    async def begin_procedure(self, procedure: Row, registrations: Sequence[Row]) -> None:
        """Record a procedure and the registrations it resets, in one transaction."""

        def work(db: sqlite3.Connection) -> None:
            _put_procedures(db, [procedure])
            for r in registrations:
                db.execute("UPDATE registrations SET body = ? WHERE id = ?", (dump(r.body), r.id))

        await self._run(lambda: self._tx(work))

    async def end_procedure(self, pid: str) -> None:
        """Forget a procedure."""
        sql = "DELETE FROM procedures WHERE id = ?"
        await self._run(lambda: self._tx(lambda db: db.execute(sql, (pid,))))

    async def put_instance(self, app_instance_id: str, app: str, body: dict[str, Any]) -> None:
        """Remember where an application instance answers (for adjacent-instance queries)."""
        args = (app_instance_id, app, dump(body))
        sql = "INSERT OR REPLACE INTO instances VALUES (?, ?, ?)"
        await self._run(lambda: self._tx(lambda db: db.execute(sql, args)))

    async def instances(self, app: str) -> list[Row]:
        """The known instances of ``app``."""
        sql = "SELECT app_instance_id, app, body, NULL FROM instances WHERE app = ?"
        found = await self._run(lambda: self._tx(lambda db: rows(db.execute(sql, (app,)))))
        return found

    async def forget(self, app_instance_id: str) -> int:
        """Drop everything of a removed instance: its registrations, the subscriptions that
        filter on it, where it answered, and procedures moving its devices. Returns how many
        registrations and subscriptions went."""

        def work(db: sqlite3.Connection) -> int:
            gone = db.execute(
                "DELETE FROM registrations WHERE app_instance_id = ?", (app_instance_id,)
            ).rowcount
            gone += db.execute(
                "DELETE FROM subscriptions WHERE app_instance_id = ?", (app_instance_id,)
            ).rowcount
            db.execute("DELETE FROM instances WHERE app_instance_id = ?", (app_instance_id,))
            db.execute("DELETE FROM procedures WHERE source_id = ?", (app_instance_id,))
            return int(gone)

        return await self._run(lambda: self._tx(work))


def _put_procedures(db: sqlite3.Connection, procedures: Sequence[Row]) -> None:
    for p in procedures:
        db.execute(
            "INSERT OR REPLACE INTO procedures VALUES (?, ?, ?)",
            (p.id, p.app_instance_id, dump(p.body)),
        )


def dump(body: dict[str, Any]) -> bytes:
    """A document as stored."""
    return orjson.dumps(body)


def load(blob: bytes | str) -> dict[str, Any]:
    """A stored document."""
    data: dict[str, Any] = orjson.loads(blob)
    return data


def rows(cursor: sqlite3.Cursor, *, instance_col: bool = True) -> list[Row]:
    """``(id, app_instance_id, body, expires_at)`` rows as :class:`Row`."""
    out = []
    for rid, instance, body, expires in cursor.fetchall():
        out.append(Row(rid, instance if instance_col else None, load(body), expires))
    return out


def live(found: Sequence[Row], now: float) -> list[Row]:
    """The rows that have not expired by ``now``."""
    return [r for r in found if r.expires_at is None or r.expires_at > now]
