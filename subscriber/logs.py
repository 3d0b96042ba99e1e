"""Logging setup: structlog, JSON off a terminal, and no subscriber identity in clear.

SUPIs, GPSIs and IP addresses identify people. Every log line passes through
:func:`mask_identities`, which replaces them with a keyed, stable pseudonym (HMAC-SHA256 with
``log.pseudonym_key``) so that lines about the same UE can still be correlated. Without a secret
key a pseudonym is only a hash of a guessable value (an IMSI range is enumerated in minutes), so
the processes that log identities refuse to start without one (:func:`require_pseudonym_key`).
"""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from multiprocessing import util as mp_util
from typing import Any, TextIO

import orjson
import structlog

from subscriber.errors import SubscriberError
from subscriber.settings import LogSettings

# imsi-/nai- SUPIs, msisdn-/extid- GPSIs, bare 15-digit IMSIs, IPv4 and IPv6 addresses.
_IDENTITY = re.compile(
    r"(?:imsi|nai|msisdn|extid|imei|imeisv)-[^\s\"',;}\]]+"
    r"|(?<![\d.])\d{15}(?![\d.])"
    r"|(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
    # IPv6: the full eight groups, or any form with '::' (never a clock time like 10:27:23).
    # (Not inside a word: Rust's "tonic::transport" in a Temporal error is no address.)
    r"|(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![0-9A-Za-z:])"
    r"|(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{0,4}::"
    r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?(?:/\d{1,3})?(?![0-9A-Za-z:])",
    re.IGNORECASE,
)
# Log fields whose values name a loopback service we run ourselves; safe and useful to keep.
_SAFE_KEYS = frozenset({"timestamp", "level", "logger", "event_id", "topic", "version"})

_key = b""
# Keys shipped in examples (the compose file's default) are as good as no key.
_EXAMPLE_KEYS = frozenset({"", "change-me", "changeme", "example", "secret", "test"})
_MIN_KEY_CHARS = 16


_PSEUDONYMS: dict[str, str] = {}
_PSEUDONYMS_MAX_ENTRIES = 65_536


def pseudonym(value: str) -> str:
    """A stable, keyed, non-reversible stand-in for a SUPI, GPSI or address.

    Kept per value (bounded, cleared when the key changes): the consumer names the UE of every
    report, and an HMAC each time was 4 % of its CPU.
    """
    alias = _PSEUDONYMS.get(value)
    if alias is None:
        if len(_PSEUDONYMS) >= _PSEUDONYMS_MAX_ENTRIES:
            _PSEUDONYMS.clear()
        alias = _PSEUDONYMS[value] = "~" + hmac.digest(_key, value.encode(), "sha256")[:6].hex()
    return alias


def require_pseudonym_key(settings: LogSettings) -> None:
    """Refuse to go on with an empty, example or short pseudonym key.

    ``log.insecure_pseudonyms`` (development only) lets it through.

    Raises:
        SubscriberError: the key would make pseudonyms reversible.
    """
    key = settings.pseudonym_key
    if settings.insecure_pseudonyms:
        return
    if key.strip().lower() in _EXAMPLE_KEYS or len(key) < _MIN_KEY_CHARS:
        raise SubscriberError(
            "log.pseudonym_key (SUBSCRIBER_LOG__PSEUDONYM_KEY, or the secret file "
            "subscriber_log__pseudonym_key) must be "
            f"a secret of at least {_MIN_KEY_CHARS} characters, not empty or an example: without "
            "it the pseudonyms in logs can be reversed; for development only, set "
            "log.insecure_pseudonyms = true"
        )


def mask_text(text: str) -> str:
    """``text`` with every SUPI, GPSI and IP address replaced by its pseudonym."""
    return _IDENTITY.sub(lambda m: pseudonym(m.group(0)), text)


# Most logged strings repeat (event names, kinds, outcomes, subscription names): their masked
# form is looked up instead of running the regex again (about 2 µs each). Bounded, and cleared
# when the key changes; short strings only, so the cache stays small.
_MASKED: dict[str, str] = {}
_MASKED_MAX_ENTRIES = 4096
_MASKED_MAX_CHARS = 64


def _mask_str(text: str) -> str:
    masked = _MASKED.get(text)
    if masked is None:
        masked = mask_text(text)
        if len(text) <= _MASKED_MAX_CHARS:
            if len(_MASKED) >= _MASKED_MAX_ENTRIES:
                _MASKED.clear()
            _MASKED[text] = masked
    return masked


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _mask_str(value)
    if isinstance(value, Mapping):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_identities(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace every SUPI, GPSI and IP address by its pseudonym."""
    for k, v in event_dict.items():  # values replaced in place: the keys do not change
        if type(v) is str:
            if k not in _SAFE_KEYS:
                event_dict[k] = _mask_str(v)
        elif not isinstance(v, int | float | None) and k not in _SAFE_KEYS:
            event_dict[k] = _mask(v)
    return event_dict


def _mask_exception(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    exc = event_dict.get("exception")
    if isinstance(exc, str):
        event_dict["exception"] = mask_text(exc)
    return event_dict


class _StdlibMasking(logging.Filter):
    """Masks records of libraries that log through the standard library (aiokafka, granian)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


_FLUSH_INTERVAL_S = 0.1
_BUFFER_MAX_CHARS = 256 * 1024


class LineBuffer:
    """Log lines written in batches, off the request path: one write per 100 ms, not per line.

    A thread flushes every ``_FLUSH_INTERVAL_S``; a buffer past ``_BUFFER_MAX_CHARS`` is written
    at once by the caller (back-pressure: no line is ever dropped), and so is every line at
    warning level or above, with everything before it. Process exit flushes too (``atexit``, and
    multiprocessing's exit hook for granian's forked workers); a ``kill -9`` loses at most the
    last interval's lines.
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lines: list[str] = []
        self._chars = 0
        self._lock = threading.Lock()
        self._flushing = False
        self._closed = threading.Event()
        atexit.register(self.flush)
        # A forked worker (granian) inherits the buffer but not its parent's thread.
        os.register_at_fork(after_in_child=self._forked)

    def write(self, line: str, *, urgent: bool = False) -> None:
        """Queue one line (with its newline); write everything now if ``urgent`` or full."""
        with self._lock:
            self._lines.append(line)
            self._chars += len(line)
            full = self._chars >= _BUFFER_MAX_CHARS
        if not self._flushing:
            self._start()
        if urgent or full:
            self.flush()

    def urgent_stream(self) -> _UrgentStream:
        """A file-like view whose every write goes out at once, after the queued lines."""
        return _UrgentStream(self)

    def flush(self) -> None:
        """Write out every queued line."""
        with self._lock:
            lines, self._lines, self._chars = self._lines, [], 0
            if lines:
                try:
                    self._out.write("".join(lines))
                    self._out.flush()
                except (OSError, ValueError):  # stream closed at exit: nowhere to write
                    pass

    def close(self) -> None:
        """Write out what is queued and stop the flushing thread (logging is configured anew)."""
        self._closed.set()
        self.flush()

    def _forked(self) -> None:
        self._flushing = False
        self._lock = threading.Lock()

    def _start(self) -> None:
        """Start the flushing thread in this process."""
        self._flushing = True
        mp_util.Finalize(self, self.flush, exitpriority=100)
        threading.Thread(target=self._flush_forever, name="log-flush", daemon=True).start()

    def _flush_forever(self) -> None:
        while not self._closed.wait(_FLUSH_INTERVAL_S):
            self.flush()


class _UrgentStream:
    """What the standard library's handler writes to: lines in order with structlog's."""

    def __init__(self, buffer: LineBuffer) -> None:
        self._buffer = buffer

    def write(self, text: str) -> None:
        self._buffer.write(text, urgent=True)

    def flush(self) -> None:
        self._buffer.flush()


class _BufferedLogger:
    """A structlog logger over a :class:`LineBuffer`: info and debug batched, the rest at once."""

    def __init__(self, buffer: LineBuffer) -> None:
        self._buffer = buffer

    def _batched(self, message: str) -> None:
        self._buffer.write(message + "\n")

    def _urgent(self, message: str) -> None:
        self._buffer.write(message + "\n", urgent=True)

    debug = info = msg = _batched
    warning = warn = error = critical = exception = fatal = failure = err = _urgent


_buffer: LineBuffer | None = None


def flush_logs() -> None:
    """Write out log lines still batched (see ``configure_logging(batched=True)``)."""
    if _buffer is not None:
        _buffer.flush()


def _orjson_dumps(value: Any, **_kw: Any) -> str:
    return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written.

    structlog caches a module's logger, with the stream it was made with, at its first use: a
    logger first used under one ``sys.stderr`` (a command run in-process, a captured test)
    would otherwise keep writing to it after it was replaced or closed.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def debug_enabled() -> bool:
    """Whether structlog, as configured now, writes debug lines: a hot path asks once and then
    skips building a line nobody would see."""
    wrapper = structlog.get_config()["wrapper_class"]
    level: int = wrapper(None, (), {}).get_effective_level()
    return level <= logging.DEBUG


def configure_logging(settings: LogSettings, *, stream: Any = None, batched: bool = False) -> None:
    """Configure structlog and the standard library once, at process start.

    Args:
        settings: level, output format and pseudonym key.
        stream: where lines go; stderr by default.
        batched: write lines in batches off the request path (:class:`LineBuffer`), for the
            receiver's per-callback line.
    """
    global _key, _buffer
    _key = settings.pseudonym_key.encode()
    _MASKED.clear()
    _PSEUDONYMS.clear()
    out: Any = stream or _Stderr()
    level = getattr(logging, settings.level.upper())
    use_json = settings.format == "json" or (settings.format == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    if _buffer is not None:
        _buffer.close()
    _buffer = None
    logger_factory: Any = structlog.PrintLoggerFactory(out)
    if batched:
        _buffer = LineBuffer(out)
        buffered = _BufferedLogger(_buffer)
        logger_factory = lambda *_args: buffered  # noqa: E731
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            mask_identities,
            _mask_exception,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_buffer.urgent_stream() if _buffer is not None else out)
    handler.addFilter(_StdlibMasking())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.INFO))
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("temporalio").setLevel(logging.WARNING)
