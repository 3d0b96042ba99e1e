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
from typing import Any, TypeVar

import orjson
import structlog

log = structlog.get_logger()

T = TypeVar("T")


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
