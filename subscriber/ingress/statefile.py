"""Small JSON state files in ``core.state_dir``, replaced atomically.

The NRF client keeps its instance id here, the subscription manager its subscriptions and the
poller the last known location of each UE. A crash mid-write leaves the previous file intact.
A file that cannot be read or has the wrong shape is moved aside (never deleted, never a crash
loop) by :func:`load_or_set_aside`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import structlog

log = structlog.get_logger()

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_or_set_aside(path: Path, parse: Callable[[Any], T], default: T) -> T:
    """``parse`` of the decoded file, or ``default`` when it is missing.

    A file that is unreadable, not JSON, or of a shape ``parse`` refuses (it raises
    ``ValueError``, ``TypeError``, ``KeyError`` or ``AttributeError``) is renamed to
    ``<name>.invalid-<unix time>`` with an error log, so the process starts fresh instead of
    failing on every start, and the old content is kept for an operator.
    """
    try:
        return parse(orjson.loads(path.read_bytes()))
    except FileNotFoundError:
        return default
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        aside = path.with_name(f"{path.name}.invalid-{int(time.time())}")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        log.error(
            "state_file_set_aside", file=path.name, moved_to=aside.name, error=type(exc).__name__
        )
        return default


class WatchedKeys(Generic[K, V]):
    """Keys read from a state file another process writes, reread when its mtime changes.

    A file that cannot be read or parsed keeps the keys known before and makes
    :meth:`is_ready` false until the file is good again; a missing file means no keys.

    Args:
        path: the file.
        parse: its bytes to the keys (raises ``ValueError``, ``TypeError`` or
            ``AttributeError`` on a bad file).
        unreadable_event: the error logged when the file cannot be read.
    """

    def __init__(
        self, path: Path, parse: Callable[[bytes], dict[K, V]], *, unreadable_event: str
    ) -> None:
        self.path = path
        self._parse = parse
        self._event = unreadable_event
        self._known: dict[K, V] = {}
        self._mtime_ns = -1
        self._ready = True

    def get(self, key: K) -> V | None:
        """The value of ``key``, from the file as it is now."""
        self._refresh()
        return self._known.get(key)

    def is_ready(self) -> bool:
        """False while the file cannot be read."""
        self._refresh()
        return self._ready

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = 0
        if mtime == self._mtime_ns:
            return
        self._mtime_ns = mtime
        if not mtime:
            self._known, self._ready = {}, True
            return
        try:
            self._known = self._parse(self.path.read_bytes())
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            self._ready = False
            log.error(self._event, file=self.path.name, error=type(exc).__name__)
            return
        self._ready = True
