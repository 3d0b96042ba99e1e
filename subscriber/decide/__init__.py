"""Decide: the relocation policy engine.

Topology and policy files are parsed into a :class:`~subscriber.decide.bundle.Bundle`; the pure
:func:`~subscriber.decide.policy.decide` turns a location event, a placement and a UE state into
a :class:`~subscriber.decide.policy.Decision`; :mod:`subscriber.decide.state` keeps per-UE state;
:class:`~subscriber.decide.engine.PolicyHolder` reloads changed files while the daemon runs.
"""
