"""The traffic-influence subscriptions we hold, shared by the worker and the receiver.

The worker's steering activities keep one TS 29.522 subscription per application instance (its
UE, its app) at the NEF, and record it here *before* asking the NEF, so a notification racing
the NEF's answer finds it. The receiver binds each notification on ``/callbacks/ti/{key}`` to
its record and publishes it with the UE's identity and the app, which the notification itself
never names. Records live in ``core.state_dir/traffic-influence.json``, replaced atomically
under an exclusive lock (several worker processes may write); the receiver rereads the file
when it changes. Worker and receiver must therefore share ``core.state_dir``
(docs/deployment.md).

Each subscription's callback key is 192 random bits, never logged: the same scheme as the event
subscriptions'. free5GC's NEF forwards the SMF's notification, whose ``notifId`` is the NEF's own
correlation id, which the AF never learns (docs/free5gc.md): the first notification on a key pins
its notifId (:func:`pin_notif_id`, an exclusive create, so concurrent receiver processes agree),
and a later one naming another is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from subscriber.events import EventRecord
from subscriber.ingress.normalize import Binding, BodyKind, normalize_body
from subscriber.ingress.statefile import WatchedKeys, load_or_set_aside, write_atomic
from subscriber.sbi.smf import NsmfEventExposureNotification
from subscriber.sbi.traffic_influence import parse_influence_notification

if TYPE_CHECKING:
    from subscriber.ingress.subscriptions import SubscriptionRegistry

log = structlog.get_logger()

STATE_FILE = "traffic-influence.json"
PIN_DIR = "traffic-influence-pins"
_LOCK_FILE = ".traffic-influence.lock"
_MAX_NOTIF_ID = 256


def new_callback_key() -> str:
    """An unguessable callback key: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def record_name(app: str, instance: str) -> str:
    """The stable, non-secret name of an instance's subscription (logs, correlation)."""
    return f"ti.{app}.{instance}"


@dataclass(frozen=True, slots=True)
class InfluenceBinding:
    """What a notification on one callback key is about, and what it must name."""

    name: str
    ue: str
    """The UE's key (SUPI or GPSI) from the instances registry."""
    app: str
    instance: str
    subscription_id: str | None
    """The NEF's subscription id (the last segment of its Location); None before the answer."""
    af_trans_id: str
    """Our transaction id: the specification's EventNotification echoes it."""
    pin_id: str
    """Names the pin of the subscription's notifId (free5GC's shape)."""


@dataclass(slots=True)
class InfluenceRecord:
    """One traffic-influence subscription of ours.

    Attributes:
        name: :func:`record_name`; also our ``afTransId``.
        callback_key: the secret last segment of its notificationDestination.
        ue: the UE's key (SUPI or GPSI).
        app, instance: the application instance it steers.
        api_root: the NEF it lives at.
        resource_uri: the NEF's subscription resource (its Location); None until created.
        dnai: the DNAI last asked for.
        created_s: when the callback key was made (wall clock).
    """

    name: str
    callback_key: str
    ue: str
    app: str
    instance: str
    api_root: str = ""
    resource_uri: str | None = None
    dnai: str | None = None
    created_s: float = 0.0

    @property
    def subscription_id(self) -> str | None:
        """The NEF's id of the subscription."""
        if not self.resource_uri:
            return None
        return self.resource_uri.rstrip("/").rsplit("/", 1)[-1]

    def binding(self) -> InfluenceBinding:
        """What a notification on this record's key is bound to."""
        return InfluenceBinding(
            name=self.name,
            ue=self.ue,
            app=self.app,
            instance=self.instance,
            subscription_id=self.subscription_id,
            af_trans_id=self.name,
            pin_id=pin_id(self.callback_key),
        )


def pin_id(callback_key: str) -> str:
    """The pin file name of a key: a hash, so the key itself is never a file name."""
    return hashlib.blake2b(callback_key.encode(), digest_size=16).hexdigest()


def _parse(doc: Any) -> dict[str, InfluenceRecord]:
    records = {}
    for item in doc.get("records", []):
        fields = {k: v for k, v in item.items() if k in InfluenceRecord.__dataclass_fields__}
        record = InfluenceRecord(**fields)
        records[record.name] = record
    return records


class InfluenceStore:
    """The worker's side: read, write and forget records under an exclusive lock.

    Args:
        state_dir: ``core.state_dir``, shared with the receiver.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE
        self._lock = state_dir / _LOCK_FILE
        self._pins = state_dir / PIN_DIR

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, InfluenceRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._read()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, InfluenceRecord]:
        # A damaged file is set aside for a person and the store starts over: the lost keys'
        # notifications are refused, and each later move makes a new subscription.
        return load_or_set_aside(self.path, _parse, {})

    def _write(self, records: dict[str, InfluenceRecord]) -> None:
        doc = {"records": [asdict(r) for r in records.values()]}
        write_atomic(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def get(self, app: str, instance: str) -> InfluenceRecord | None:
        """The record of an application instance, if we hold one."""
        with self._locked() as records:
            return records.get(record_name(app, instance))

    def save(self, record: InfluenceRecord) -> None:
        """Write ``record`` (replacing the one of the same name; its pin goes with its key)."""
        with self._locked() as records:
            old = records.get(record.name)
            records[record.name] = record
            self._write(records)
        if old is not None and old.callback_key != record.callback_key:
            self._unpin(old.callback_key)

    def remove(self, name: str) -> None:
        """Forget a record and its pin."""
        with self._locked() as records:
            old = records.pop(name, None)
            if old is not None:
                self._write(records)
        if old is not None:
            self._unpin(old.callback_key)

    def all(self) -> list[InfluenceRecord]:
        """Every record."""
        with self._locked() as records:
            return list(records.values())

    def _unpin(self, callback_key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._pins / pin_id(callback_key)).unlink()


def _bindings(data: bytes) -> dict[str, InfluenceBinding]:
    records = _parse(orjson.loads(data)).values()
    return {r.callback_key: r.binding() for r in records if r.callback_key}


class InfluenceRegistry(WatchedKeys[str, InfluenceBinding]):
    """The receiver's side: which callback keys are ours, from the file the worker writes.

    Rereads the file when its modification time changes. A file it cannot read keeps the keys
    it knew and makes it not ready until the file is good again.

    Args:
        state_dir: ``core.state_dir``, shared with the worker.
    """

    def __init__(self, state_dir: Path) -> None:
        super().__init__(
            state_dir / STATE_FILE, _bindings, unreadable_event="influence_records_unreadable"
        )
        self.pins = state_dir / PIN_DIR

    def binding(self, key: str) -> InfluenceBinding | None:
        """The subscription ``/callbacks/ti/{key}`` belongs to, or None."""
        return self.get(key)


def pin_notif_id(pins: Path, pin: str, notif_id: str) -> str:
    """The notifId pinned for ``pin``: ``notif_id`` if it is the first, else the earlier one.

    An exclusive create, so of several receiver processes racing on a first notification
    exactly one pins; the others read its value. A notifId longer than 256 characters is not
    pinned (and so never matches).

    Raises:
        OSError: the pin directory cannot be written.
    """
    if len(notif_id) > _MAX_NOTIF_ID:
        return ""
    path = pins / pin
    pins.mkdir(parents=True, exist_ok=True)
    # Written whole to a temporary file, then linked into place: the link is the exclusive
    # create, and nobody ever sees a pin without its content.
    fd, tmp = tempfile.mkstemp(dir=pins, prefix=".pin.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(notif_id)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text()
    finally:
        os.unlink(tmp)
    return notif_id


class CallbackRegistry:
    """The receiver's registry of every callback key of ours: event subscriptions (``amf``,
    ``smf``, ``nef``) from the tracker's file, traffic influence (``ti``) from the worker's.

    Args:
        subscriptions: the event subscriptions' registry.
        influence: the traffic-influence records' registry.
    """

    def __init__(self, subscriptions: SubscriptionRegistry, influence: InfluenceRegistry) -> None:
        self._subscriptions = subscriptions
        self._influence = influence

    def binding(self, kind: str, key: str) -> Binding | None:
        """The subscription ``/callbacks/{kind}/{key}`` belongs to, or None."""
        if kind != "ti":
            return self._subscriptions.binding(kind, key)
        bound = self._influence.binding(key)
        if bound is None:
            return None
        return Binding(
            bound.name,
            subscription_id=bound.subscription_id,
            ue=bound.ue,
            app=bound.app,
            instance=bound.instance,
            pin=str(self._influence.pins / bound.pin_id),
        )

    def is_ready(self) -> bool:
        """Both files readable."""
        return self._subscriptions.is_ready() and self._influence.is_ready()


def normalize_influence_callback(
    body: bytes, binding: Binding, received_at: datetime
) -> list[EventRecord]:
    """The event records of a notification on ``/callbacks/ti/{key}``, bound to its subscription.

    free5GC's shape carries the NEF's notifId, which we never learn from the NEF: the first one
    on a key is pinned, and a body naming another is foreign.

    Raises:
        InvalidCallback: malformed (``ForeignCallback``: it names another subscription).
        OSError: the pin cannot be written.
    """
    notification = parse_influence_notification(body)
    if isinstance(notification, NsmfEventExposureNotification) and binding.pin is not None:
        pin = Path(binding.pin)
        pinned = pin_notif_id(pin.parent, pin.name, notification.notif_id)
        binding = dataclasses.replace(binding, correlation_id=pinned or "\x00")
    return normalize_body(
        BodyKind.INFLUENCE_NOTIFICATION, body, ingest_time=received_at, binding=binding
    ).records
