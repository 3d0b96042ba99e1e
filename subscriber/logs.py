"""Logging setup: structlog, JSON off a terminal, and no subscriber identity in clear.

SUPIs, GPSIs and IP addresses identify people. Every log line passes through
:func:`mask_identities`, which replaces them with a keyed, stable pseudonym (HMAC-SHA256 with
``log.pseudonym_key``) so that lines about the same UE can still be correlated. Without a secret
key a pseudonym is only a hash of a guessable value (an IMSI range is enumerated in minutes), so
the processes that log identities refuse to start without one (:func:`require_pseudonym_key`).
"""

from __future__ import annotations

import hmac
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

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


def pseudonym(value: str) -> str:
    """A stable, keyed, non-reversible stand-in for a SUPI, GPSI or address."""
    return "~" + hmac.digest(_key, value.encode(), "sha256")[:6].hex()


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


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_identities(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace every SUPI, GPSI and IP address by its pseudonym."""
    for k, v in list(event_dict.items()):
        if k not in _SAFE_KEYS:
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


def configure_logging(settings: LogSettings, *, stream: Any = None) -> None:
    """Configure structlog and the standard library once, at process start.

    Args:
        settings: level, output format and pseudonym key.
        stream: where lines go; stderr by default.
    """
    global _key
    _key = settings.pseudonym_key.encode()
    out = stream or sys.stderr
    level = getattr(logging, settings.level.upper())
    use_json = settings.format == "json" or (settings.format == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
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
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.addFilter(_StdlibMasking())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.INFO))
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("temporalio").setLevel(logging.WARNING)
