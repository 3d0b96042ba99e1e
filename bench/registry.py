"""The subscription registry the benchmarks serve with: every callback key is known.

Loaded by ``subscriber serve --registry bench.registry:accept_any`` (run from the repository
root) or passed to :func:`subscriber.app.receiver.serving_receiver`.
"""

from __future__ import annotations

from subscriber.ingress.normalize import Binding
from subscriber.settings import Settings


class AcceptAny:
    """Knows every ``(kind, key)``: the benchmarks measure the receiver, not the registry."""

    def binding(self, kind: str, key: str) -> Binding:
        """A binding that checks nothing of the body."""
        return Binding(name=key)

    def is_ready(self) -> bool:
        """Always."""
        return True


def accept_any(_settings: Settings) -> AcceptAny:
    """The registry for ``serve --registry``."""
    return AcceptAny()


class KeyIsCorrelationId(AcceptAny):
    """Knows every key, and binds it as the correlation id the body must carry.

    So the body-to-path check runs (and costs) as in production: ``bench.ingest`` posts the D1
    notification (``notifyCorrelationId`` ``loc-1``) to ``/callbacks/amf/loc-1``.
    """

    def binding(self, kind: str, key: str) -> Binding:
        """A binding whose body must name ``key`` as its correlation id."""
        return Binding(name=key, correlation_id=key)


def key_is_correlation_id(_settings: Settings) -> KeyIsCorrelationId:
    """The registry for ``serve --registry`` in ``bench.ingest``."""
    return KeyIsCorrelationId()
