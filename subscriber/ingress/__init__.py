"""Ingress: 3GPP callbacks and polls in, normalized events on Kafka out.

:mod:`subscriber.ingress.normalize` is the pure step that turns a parsed 3GPP body into
:class:`~subscriber.events.LocationEvent` values.
"""
